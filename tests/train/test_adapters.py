"""Adapters: iLoRA against peft's LoRA (K = 1; uniform gate with identical experts), merged LoRA scores, which
parameters receive gradients, adapter files, the peft config section and the trainable share on the presets."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")  # the [peft] extra (CI installs it)
from peft.tuners.lora import LoraLayer  # noqa: E402

from seqrec.config import build_config
from seqrec.errors import CheckpointError, ConfigError
from seqrec.models import build_model
from seqrec.train.adapters import (
    adapter_state,
    apply_adapters,
    is_adapter_key,
    load_adapter,
    merge_and_unload,
    param_counts,
    save_adapter,
)
from seqrec.train.ilora import ILoRALinear

NUM_ITEMS, MAX_LEN = 40, 10


def _config(model: str = "bert4rec", **peft):
    return build_config({"model": {"name": model, "hidden": 16, "heads": 2, "dropout": 0.0},
                         "data": {"max_len": MAX_LEN}, "peft": peft})


def _model(config, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config.model, NUM_ITEMS, MAX_LEN)


def _batch(seed: int = 1) -> torch.Tensor:  # (6, T) left-padded, one row fully padded
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (6, MAX_LEN), generator=g)
    lengths = torch.tensor([MAX_LEN, 0, 3, 7, 1, 5])
    return items.masked_fill(torch.arange(MAX_LEN) < (MAX_LEN - lengths).unsqueeze(1), 0)


def _lora_layers(model) -> dict[str, LoraLayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def _ilora_layers(model) -> dict[str, ILoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, ILoRALinear)}


def _randomise_lora(model, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in _lora_layers(model).values():
            for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("model_name", ["bert4rec", "sasrec"])
def test_ilora_with_one_expert_equals_lora_of_the_same_rank(model_name):
    lora = apply_adapters(_model(_config(model_name, method="lora", rank=4, alpha=8.0)),
                          _config(model_name, method="lora", rank=4, alpha=8.0).peft)
    ilora_cfg = _config(model_name, method="ilora", rank=4, alpha=8.0, experts=1)
    ilora = apply_adapters(_model(ilora_cfg), ilora_cfg.peft)
    _randomise_lora(lora)
    with torch.no_grad():
        for name, layer in _ilora_layers(ilora).items():
            peft_layer = _lora_layers(lora)[name]
            layer.ilora_A.copy_(peft_layer.lora_A["default"].weight)
            layer.ilora_B.copy_(peft_layer.lora_B["default"].weight)
    assert len(_ilora_layers(ilora)) == len(_lora_layers(lora)) == 8
    lora.eval(), ilora.eval()
    items = _batch()
    with torch.no_grad():
        assert torch.allclose(lora(items), ilora(items), atol=1e-6, rtol=0)
        assert torch.allclose(lora.prediction_hidden(items), ilora.prediction_hidden(items), atol=1e-6, rtol=0)
        base = _model(ilora_cfg)
        base.eval()
        assert not torch.allclose(base(items), lora(items), atol=1e-3)  # the adapters do change the output


def test_uniform_gate_with_identical_experts_equals_lora_of_rank_r_over_k():
    experts, rank = 2, 4
    cfg = _config(method="ilora", rank=rank, alpha=8.0, experts=experts)
    ilora = apply_adapters(_model(cfg), cfg.peft)
    lora_cfg = _config(method="lora", rank=rank // experts, alpha=8.0)
    lora = apply_adapters(_model(lora_cfg), lora_cfg.peft)
    _randomise_lora(lora)
    with torch.no_grad():
        ilora.ilora_router.weight.zero_()  # logits 0 -> softmax gives the uniform gate 1/K
        ilora.ilora_router.bias.zero_()
        for name, layer in _ilora_layers(ilora).items():
            a, b = _lora_layers(lora)[name].lora_A["default"].weight, _lora_layers(lora)[name].lora_B["default"].weight
            layer.ilora_A.copy_(a.repeat(experts, 1))  # (r, in): expert k = rows k r/K ..
            layer.ilora_B.copy_(b.repeat(1, experts))  # (out, r): expert k = the same columns
    # float64: the two sums differ only in rounding order (4 vs 2 rank terms), which fp32 shows at ~1e-6
    lora, ilora = lora.double().eval(), ilora.double().eval()
    items = _batch()
    with torch.no_grad():
        assert torch.allclose(lora(items), ilora(items), atol=1e-10, rtol=0)


def test_ilora_gates_differ_per_sequence_and_come_from_the_frozen_base():
    cfg = _config(method="ilora", rank=4, experts=2)
    model = apply_adapters(_model(cfg), cfg.peft)
    with torch.no_grad():
        model.ilora_router.weight.normal_(std=1.0)
    items = _batch()
    model.eval()
    with torch.no_grad():
        model(items)
        gates = next(iter(_ilora_layers(model).values())).state.gate  # (B, K)
    assert gates.shape == (6, 2) and torch.allclose(gates.sum(-1), torch.ones(6))
    assert not torch.allclose(gates[0], gates[2])
    with torch.no_grad():  # the gates do not depend on the adapters: changing B leaves them alone
        for layer in _ilora_layers(model).values():
            layer.ilora_B.normal_()
        model(items)
    assert torch.equal(next(iter(_ilora_layers(model).values())).state.gate, gates)


@pytest.mark.parametrize("model_name", ["bert4rec", "sasrec"])
def test_merged_lora_scores_equal_unmerged(model_name):
    cfg = _config(model_name, method="lora", rank=4, alpha=16.0)
    model = apply_adapters(_model(cfg), cfg.peft)
    _randomise_lora(model)
    model.eval()
    items = _batch()
    with torch.no_grad():
        before = model.prediction_hidden(items) @ model.item_weight().T  # (B, V + 1)
        merged = merge_and_unload(model)
        after = merged.prediction_hidden(items) @ merged.item_weight().T
    assert not _lora_layers(merged) and all(p.requires_grad for p in merged.parameters())
    assert set(merged.state_dict()) == set(_model(_config(model_name)).state_dict())  # plain keys again
    assert torch.allclose(before, after, atol=1e-5, rtol=0)


def test_ilora_cannot_be_merged():
    cfg = _config(method="ilora", rank=4, experts=2)
    with pytest.raises(ConfigError, match="cannot be merged"):
        merge_and_unload(apply_adapters(_model(cfg), cfg.peft))


@pytest.mark.parametrize("method", ["lora", "ilora"])
def test_only_adapters_and_modules_to_save_receive_gradients(method):
    cfg = _config(method=method, rank=4, experts=2, modules_to_save=["item_emb"])
    model = apply_adapters(_model(cfg), cfg.peft)
    with torch.no_grad():  # B starts at zero, which would leave A's (and the router's) gradient exactly zero
        for name, p in model.named_parameters():
            if "lora_B" in name or "ilora_B" in name:
                p.normal_()
    model.train()
    window = torch.cat([_batch(), _batch(3)[:, :1]], dim=1)  # (B, T + 1)
    inputs, targets = model.training_example(window, torch.Generator().manual_seed(0))
    hidden = model(inputs)
    loss = torch.nn.functional.cross_entropy(
        (hidden.reshape(-1, hidden.shape[-1]) @ model.item_weight().T)[targets.reshape(-1) > 0],
        targets.reshape(-1)[targets.reshape(-1) > 0])
    loss.backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    want = {n for n, _ in model.named_parameters() if is_adapter_key(n) or n == "item_emb.weight"}
    assert got == want
    assert all(p.requires_grad == (n in want) for n, p in model.named_parameters())
    if method == "ilora":
        assert {"ilora_router.weight", "ilora_router.bias"} <= got


def test_trainer_step_changes_only_trainable_parameters():
    from train_helpers import tiny_config

    from seqrec.data import prepare_data
    from seqrec.train.trainer import Trainer

    cfg = tiny_config("model.name=bert4rec", "peft.method=lora")
    data = prepare_data(cfg.data)
    model = apply_adapters(build_model(cfg.model, data.num_items, cfg.data.max_len), cfg.peft)
    trainer = Trainer(model, data, cfg, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train_batches([torch.arange(32).numpy()])
    trainer.train_batches([torch.arange(32, 64).numpy()])  # LoRA B starts at 0: A moves from the second step
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {n for n in before if is_adapter_key(n)}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(changed)


@pytest.mark.parametrize("method", ["lora", "ilora"])
def test_adapter_save_load_round_trip(tmp_path, method):
    cfg = _config(method=method, rank=4, experts=2, modules_to_save=["item_emb"])
    model = apply_adapters(_model(cfg), cfg.peft)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    path = save_adapter(tmp_path / "adapter.safetensors", model, cfg)
    fresh = apply_adapters(_model(cfg), cfg.peft)  # same base weights (seed), untrained adapters
    items = _batch()
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert not torch.allclose(model(items), fresh(items))
        load_adapter(path, fresh, cfg)
        assert torch.equal(model(items), fresh(items))
    assert set(adapter_state(fresh)) == {n for n, p in fresh.named_parameters() if p.requires_grad}
    other = _config(method=method, rank=8, experts=2, modules_to_save=["item_emb"])
    with pytest.raises(CheckpointError, match="adapter for"):
        load_adapter(path, apply_adapters(_model(other), other.peft), other)


def test_adapter_file_is_small_against_the_model(tmp_path):
    cfg = build_config({"model": {"name": "bert4rec", "size": "5m"}, "peft": {"method": "lora"}})
    model = apply_adapters(build_model(cfg.model, 100, 50), cfg.peft)
    path = save_adapter(tmp_path / "a.safetensors", model, cfg)
    trainable, total = param_counts(model)
    assert path.stat().st_size < 4 * trainable + 20_000  # fp32 tensors + a small header
    assert path.stat().st_size < 0.03 * 4 * total


@pytest.mark.parametrize("size", ["85m", "130m", "430m"])
@pytest.mark.parametrize("method", ["lora", "ilora"])
def test_trainable_share_is_under_one_percent_on_the_large_presets(size, method):
    cfg = build_config({"model": {"name": "bert4rec", "size": size}, "peft": {"method": method}})
    with torch.device("meta"):  # shapes only: no memory, no init
        model = apply_adapters(build_model(cfg.model, 1682, 50), cfg.peft)
    trainable, total = param_counts(model)
    assert 0.003 * total < trainable < 0.01 * total


@pytest.mark.parametrize(
    "peft, needle",
    [
        ({"method": "dora"}, "peft.method"),
        ({"method": "lora", "rank": 0}, "peft.rank"),
        ({"method": "lora", "dropout": 1.0}, "peft.dropout"),
        ({"method": "ilora", "rank": 6, "experts": 4}, "peft.experts"),
        ({"method": "lora", "target_modules": ["attention"]}, "'attention' matches no module"),
        ({"method": "lora", "target_modules": ["ln1"]}, "not an nn.Linear"),
        ({"method": "lora", "modules_to_save": ["item_table"]}, "peft.modules_to_save"),
        ({"method": "none", "modules_to_save": ["item_emb"]}, "peft.method"),
        ({"method": "lora", "rnak": 4}, "peft.rnak"),
    ],
)
def test_peft_config_errors_name_the_key(peft, needle):
    with pytest.raises(ConfigError) as info:
        build_config({"model": {"name": "bert4rec"}, "peft": peft})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_target_modules_by_suffix_and_default_per_model():
    cfg = _config(method="lora", target_modules=["qkv"])
    model = apply_adapters(_model(cfg), cfg.peft)
    assert sorted(_lora_layers(model)) == ["blocks.0.qkv", "blocks.1.qkv"]
    for name in ("sasrec", "gru4rec", "xlstm"):
        section = {"name": name, "hidden": 16}
        if name == "sasrec":
            section["heads"] = 2
        c = build_config({"model": section, "peft": {"method": "ilora", "rank": 2}})
        m = apply_adapters(build_model(c.model, NUM_ITEMS, MAX_LEN), c.peft)
        assert _ilora_layers(m), name
        with torch.no_grad():
            assert m.prediction_hidden(_batch()).shape == (6, 16)


def test_ilora_gradients_are_the_same_with_activation_checkpointing():
    from seqrec.train.precision import enable_activation_checkpointing

    cfg = _config(method="ilora", rank=4, experts=2)
    grads = []
    for checkpointed in (False, True):
        model = apply_adapters(_model(cfg), cfg.peft)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "ilora_B" in name:
                    p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape))
        if checkpointed:
            enable_activation_checkpointing(model)
        model.train()
        model(_batch()).square().mean().backward()  # the recomputed blocks must see the same gates
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "ilora_router.weight" in grads[0]
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
