"""Mixed precision, torch.compile fallback, activation checkpointing and gradient accumulation."""

from __future__ import annotations

import copy

import pytest
import torch
from rich.console import Console
from train_helpers import tiny_config

from seqrec.data import prepare_data
from seqrec.models import build_model
from seqrec.train.precision import CompiledForward, enable_activation_checkpointing
from seqrec.train.trainer import Trainer, estimate_memory


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny ops are slower with thread hand-offs
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare_data(tiny_config().data, tmp_path_factory.mktemp("data"))


def _trainer(data, *extra: str, console: Console | None = None) -> Trainer:
    cfg = tiny_config(*extra)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.num_items, cfg.data.max_len)
    return Trainer(model, data, cfg, torch.device("cpu"), console or Console(quiet=True))


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_steps_reduce_loss(data, precision):
    tr = _trainer(data, f"train.precision={precision}", "model.dropout=0")
    tr.gen.manual_seed(0)
    batch = [tr.rows[:32].argsort()]  # fixed 32 windows
    first, _ = tr.train_batches(batch)
    for _ in range(10):
        last, norm = tr.train_batches(batch)
    assert torch.isfinite(torch.tensor(last)) and last < first
    assert (tr.scaler is not None) == (precision == "16-mixed")
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())  # master weights stay fp32


def test_bf16_loss_close_to_fp32(data):
    a = _trainer(data, "model.dropout=0")
    b = _trainer(data, "model.dropout=0", "train.precision=bf16-mixed")
    w = a.window(a.rows[:32].argsort())
    a.gen.manual_seed(1)
    b.gen.manual_seed(1)
    la = float(a.forward_backward(w))
    lb = float(b.forward_backward(w))
    assert lb == pytest.approx(la, rel=2e-2)


def test_compile_failure_falls_back_with_one_line(monkeypatch):
    def broken(*_a, **_k):
        def call(*_x):
            raise RuntimeError("no backend here\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    console = Console(record=True, width=300)
    model = torch.nn.Linear(3, 2)
    fwd = CompiledForward(model, "reduce-overhead", console)
    x = torch.ones(1, 3)
    assert torch.equal(fwd(x), model(x)) and fwd.compiled is None
    text = console.export_text()
    assert "continuing uncompiled" in text and "second line" not in text and text.count("\n") == 1


def test_activation_checkpointing_matches_reference_gradients(data):
    ref = _trainer(data, "model.dropout=0")
    ckpt_model = copy.deepcopy(ref.model)
    n = enable_activation_checkpointing(ckpt_model)
    assert n == len(ref.model.blocks)
    assert ckpt_model.state_dict().keys() == ref.model.state_dict().keys()
    w = ref.window(ref.rows[:32].argsort())
    inputs, targets = ref.model.training_example(w)
    for m in (ref.model, ckpt_model):
        m.train()
        m(inputs).square().mean().backward()
    for (name, p), q in zip(ref.model.named_parameters(), ckpt_model.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_gradient_accumulation_steps_once_per_group(data):
    tr = _trainer(data, "train.accumulate_grad_batches=3", "train.batch_size=16")
    assert tr.steps_per_epoch == -(-tr.batches_per_epoch // 3)
    tr.gen.manual_seed(0)
    idx = tr.rows[:48].argsort()
    loss, _ = tr.train_batches([idx[:16], idx[16:32], idx[32:]])
    assert tr.scheduler.last_epoch == 1 and loss > 0
    assert all(p.grad is None for p in tr.model.parameters())


def test_memory_estimate_grows_with_batch_and_shrinks_with_checkpointing(data):
    cfg = tiny_config("model.layers=4")
    model = build_model(cfg.model, data.num_items, cfg.data.max_len)
    small = estimate_memory(model, cfg, data.num_items)
    big = estimate_memory(model, tiny_config("model.layers=4", "train.batch_size=512"), data.num_items)
    ck = estimate_memory(model, tiny_config("model.layers=4", "train.activation_checkpointing=true"), data.num_items)
    assert big["total_mb"] > small["total_mb"] and ck["activations_mb"] < small["activations_mb"]
    assert small["params"] == model.num_parameters()
