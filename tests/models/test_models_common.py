"""Contract tests every ID sequence model must pass.

Presets, exact parameter counts, NaN-free padding, shapes, and chance-level accuracy with random weights. Text
models (Recformer: inputs are item texts, presets tiny..base) have their own in tests/models/test_recformer.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from model_helpers import MAX_LEN, make_batch, tiny

from seqrec.models import MODELS, build_model, model_config_from_section

ID_MODELS = [name for name, cls in MODELS.items() if not hasattr(cls, "attach_text")]


def test_all_models_registered() -> None:
    assert {"sasrec", "bert4rec", "gru4rec", "xlstm"} <= set(ID_MODELS)
    assert "recformer" in MODELS


@pytest.mark.parametrize("name", ID_MODELS)
def test_presets_build(name: str) -> None:
    for size in MODELS[name].PRESETS:
        assert {"small", "base"} <= set(MODELS[name].PRESETS)
        # Larger presets are built on the meta device: same modules and shapes, no memory or init time.
        with torch.device("cpu" if size == "small" else "meta"):
            model = build_model({"name": name, "size": size}, num_items=30, max_len=8)
        assert model.num_parameters() > 0
        assert model.item_weight().shape == (31, model.config.hidden)


def _transformer_blocks(D: int, L: int, ffn_mult: int) -> int:
    per_block = 2 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * D + (D * ffn_mult * D + ffn_mult * D)
    per_block += ffn_mult * D * D + D
    return L * per_block


def expected_parameters(name: str, cfg, n: int, max_len: int) -> int:
    """Parameter counts written out from each architecture's definition (tied item tables counted once)."""
    D = cfg.hidden
    if name == "sasrec":
        return (n + 1) * D + max_len * D + _transformer_blocks(D, cfg.layers, cfg.ffn_mult) + 2 * D
    if name == "bert4rec":  # one more embedding row: [MASK]
        return (n + 2) * D + max_len * D + _transformer_blocks(D, cfg.layers, cfg.ffn_mult) + 2 * D
    if name == "gru4rec":
        H = cfg.gru_hidden
        gru = (3 * H * D + 3 * H * H + 6 * H) + (cfg.layers - 1) * (3 * H * H + 3 * H * H + 6 * H)
        return (n + 1) * D + gru + H * D + D
    if name == "xlstm":
        I, Hh, K = round(cfg.proj_factor * D), cfg.heads, cfg.conv_kernel
        bs = cfg.qkv_blocksize or I
        mlstm = 2 * D + (D * 2 * I + 2 * I) + (I * K + I) + 3 * I * bs + 2 * (3 * I * Hh + Hh)
        mlstm += 2 * I + (I * D + D)  # head norm, skip, down-projection
        dh, Fh = D // Hh, math.ceil(cfg.ffn_factor * D)
        slstm = 2 * D + (D * K + D) + 4 * D * dh + 4 * D * dh + 4 * D + D + 2 * D + (D * 2 * Fh + 2 * Fh)
        slstm += Fh * D + D
        s = len(cfg.slstm_at)
        return (n + 1) * D + (cfg.layers - s) * mlstm + s * slstm + 2 * D
    raise AssertionError(name)


@pytest.mark.parametrize("name", ID_MODELS)
@pytest.mark.parametrize("size", ["small", "base"])
def test_parameter_count_exact(name: str, size: str) -> None:
    section = {"name": name, "size": size}
    if name == "xlstm":
        section["slstm_at"] = [1]  # count both block kinds
    model = build_model(section, num_items=1682, max_len=50)
    cfg = model_config_from_section(section)
    assert model.num_parameters() == expected_parameters(name, cfg, 1682, 50)
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize("name", ID_MODELS)
def test_fully_padded_rows_no_nan_forward_backward(name: str) -> None:
    model = tiny(name).train()
    window = make_batch(6, MAX_LEN + 1)
    window[2] = 0  # a second fully padded row
    inputs, targets = model.training_example(window, torch.Generator().manual_seed(0))
    hidden = model(inputs)  # (B, T, D)
    assert hidden.shape == (6, MAX_LEN, model.config.hidden)
    assert torch.isfinite(hidden).all()
    logits = hidden @ model.item_weight().T  # (B, T, N + 1)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0) + hidden.pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname
    # prediction on an empty history is finite too
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model.prediction_hidden(torch.zeros(2, MAX_LEN, dtype=torch.long))).all()


@pytest.mark.parametrize("name", ID_MODELS)
def test_prediction_hidden_shape(name: str) -> None:
    model = tiny(name).eval()
    with torch.no_grad():
        for T in (MAX_LEN, 5):
            out = model.prediction_hidden(make_batch(4, T))
            assert out.shape == (4, model.config.hidden)


@pytest.mark.parametrize("name", ID_MODELS)
def test_training_example_shapes(name: str) -> None:
    model = tiny(name)
    window = make_batch(5, MAX_LEN + 1)
    inputs, targets = model.training_example(window, torch.Generator().manual_seed(1))
    assert inputs.shape == targets.shape == (5, MAX_LEN)
    assert (targets[inputs == 0] == 0).all()  # padding never has a target
    assert (targets[1] == 0).all()  # the fully padded row predicts nothing


@pytest.mark.parametrize("name", ID_MODELS)
def test_random_model_hit_rate_is_chance(name: str) -> None:
    """Untrained model, full-catalogue ranking: HR@10 must be 10 / num_items within 3 standard errors."""
    n_items, users, k = 500, 2000, 10
    torch.manual_seed(0)
    model = build_model({"name": name, "size": "small", "hidden": 32}, n_items, 12).eval()
    g = torch.Generator().manual_seed(123)
    history = make_batch(users, 12, num_items=n_items, seed=7)
    targets = torch.randint(1, n_items + 1, (users,), generator=g)
    with torch.no_grad():
        scores = model.prediction_hidden(history) @ model.item_weight().T  # (U, N + 1)
    scores[:, 0] = float("-inf")  # padding is never a candidate
    rank = (scores > scores.gather(1, targets.unsqueeze(1))).sum(dim=1)  # items scored above the target
    hr = (rank < k).float().mean().item()
    p = k / n_items
    assert abs(hr - p) <= 3 * math.sqrt(p * (1 - p) / users), hr
