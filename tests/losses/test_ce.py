"""Exact CE: chunked (CCE) vs a float64 materialised reference, fp32 and bf16 autocast."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.config import LossConfig
from seqrec.losses import make_loss
from seqrec.losses.ce import chunked_cross_entropy, materialized_cross_entropy

torch.set_num_threads(1)


def _inputs(n=37, d=8, v=53, pad=0.3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, dtype=dtype)
    weight = torch.randn(v, d, generator=g, dtype=dtype)
    targets = torch.randint(1, v, (n,), generator=g)
    targets[torch.rand(n, generator=g) < pad] = 0
    return hidden, weight, targets


def _value_and_grads(fn, hidden, weight, targets, **kw):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    loss = fn(h, w, targets, **kw)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [None, 7, 16, 52, 1000])
def test_chunked_matches_float64_reference(label_smoothing, chunk):
    hidden, weight, targets = _inputs()
    ref = _value_and_grads(
        materialized_cross_entropy, hidden.double(), weight.double(), targets, label_smoothing=label_smoothing
    )
    out = _value_and_grads(
        chunked_cross_entropy, hidden, weight, targets, chunk_size=chunk, label_smoothing=label_smoothing
    )
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=1e-6, rtol=1e-6)
    assert torch.all(out[2][0] == 0)  # padding row never gets gradient


@pytest.mark.parametrize("fn", [chunked_cross_entropy, materialized_cross_entropy])
def test_all_padding_gives_zero(fn):
    hidden, weight, targets = _inputs()
    targets.zero_()
    loss, gh, gw = _value_and_grads(fn, hidden, weight, targets)
    assert loss.item() == 0.0
    assert torch.all(gh == 0) and torch.all(gw == 0)


def test_reduction_none_and_sum():
    hidden, weight, targets = _inputs()
    a = chunked_cross_entropy(hidden, weight, targets, reduction="none", chunk_size=10)
    b = materialized_cross_entropy(hidden.double(), weight.double(), targets, reduction="none")
    torch.testing.assert_close(a.double(), b, atol=1e-6, rtol=1e-6)
    assert torch.all(a[targets == 0] == 0)
    s = chunked_cross_entropy(hidden, weight, targets, reduction="sum")
    torch.testing.assert_close(s.double(), b.sum(), atol=1e-5, rtol=1e-6)


def test_bf16_autocast_within_same_dtype_error():
    hidden, weight, targets = _inputs(n=64, d=16, v=300)
    ref = _value_and_grads(materialized_cross_entropy, hidden.double(), weight.double(), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mat = _value_and_grads(materialized_cross_entropy, hidden, weight, targets)
        out = _value_and_grads(chunked_cross_entropy, hidden, weight, targets, chunk_size=64)
    assert out[0].dtype == torch.float32 and out[1].dtype == torch.float32
    for a, m, r in zip(out, mat, ref, strict=True):
        tol = (m.double() - r).abs().max().item() + 1e-2
        assert (a.double() - r).abs().max().item() <= tol


def test_make_loss_names():
    hidden, weight, targets = _inputs()
    for name in ["ce", "ce_materialized"]:
        fn = make_loss(LossConfig(name=name, label_smoothing=0.1))
        loss = fn(hidden, weight, targets, None)
        ref = materialized_cross_entropy(hidden.double(), weight.double(), targets, label_smoothing=0.1)
        torch.testing.assert_close(loss.double(), ref, atol=1e-6, rtol=1e-6)


def test_filter_eps_matches_filtered_reference():
    hidden, weight, targets = _inputs(pad=0.2)
    eps = 0.01
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    chunked_cross_entropy(h, w, targets, filter_eps=eps, chunk_size=9).backward()
    valid = targets != 0
    hd, wd = hidden.double().requires_grad_(True), weight.double().requires_grad_(True)
    z = hd[valid] @ wd[1:].T
    coef = torch.softmax(z.detach(), 1)
    coef[torch.arange(int(valid.sum())), targets[valid] - 1] -= 1
    coef = coef.masked_fill(coef.abs() < eps, 0.0) / int(valid.sum())
    z.backward(coef)
    torch.testing.assert_close(h.grad.double(), hd.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(w.grad.double(), wd.grad, atol=1e-6, rtol=1e-6)


def test_agrees_with_torch_linear_cross_entropy():
    """PyTorch's own fused op on the real items (column 0 excluded, see seqrec.losses.ce)."""
    hidden, weight, targets = _inputs(pad=0.0)
    ref = torch.nn.functional.linear_cross_entropy(hidden, weight[1:], targets - 1, label_smoothing=0.1)
    ours = chunked_cross_entropy(hidden, weight, targets, label_smoothing=0.1, chunk_size=11)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 12),
    v=st.integers(2, 80),
    chunk=st.integers(1, 90),
    ls=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 1000),
)
def test_odd_shapes(n, d, v, chunk, ls, seed):
    hidden, weight, targets = _inputs(n=n, d=d, v=v, seed=seed)
    ref = _value_and_grads(materialized_cross_entropy, hidden.double(), weight.double(), targets, label_smoothing=ls)
    out = _value_and_grads(chunked_cross_entropy, hidden, weight, targets, chunk_size=chunk, label_smoothing=ls)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=1e-6, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 12),
    v=st.integers(2, 120),
    ls=st.sampled_from([0.0, 0.1]),
    reduction=st.sampled_from(["mean", "sum"]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 1000),
)
def test_row_and_column_chunking_match_the_reference(n, d, v, ls, reduction, dtype, seed):
    """Both fast paths of chunked_cross_entropy (PyTorch's row-chunked linear_cross_entropy, CCE's catalogue
    chunks) against the float64 materialised reference; rows > 64 per chunk are exercised by n up to 300."""
    hidden, weight, targets = _inputs(n=n, d=d, v=v, seed=seed, dtype=dtype)
    ref = _value_and_grads(materialized_cross_entropy, hidden.double(), weight.double(), targets,
                           label_smoothing=ls, reduction=reduction)
    for method in ("rows", "columns") if ls == 0 else ("columns",):  # PyTorch's chunked path: no smoothing
        # CCE keeps its log-sum-exp in fp32 whatever the input dtype; PyTorch's path computes in the input's
        tol = 1e-10 if dtype == torch.float64 and method == "rows" else 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # PyTorch warns when it falls back to its reference path
            out = _value_and_grads(chunked_cross_entropy, hidden, weight, targets, label_smoothing=ls,
                                   reduction=reduction, method=method)
        assert out[1].dtype == dtype and out[2].dtype == dtype
        for a, b in zip(out, ref, strict=True):
            torch.testing.assert_close(a.double(), b, atol=tol * max(1, n if reduction == "sum" else 1), rtol=tol)
        assert torch.all(out[2][0] == 0)  # the padding row never gets gradient


def test_auto_picks_rows_for_small_catalogues_and_columns_beyond(monkeypatch):
    import seqrec.losses.ce as ce

    calls = []
    real = ce._torch_linear_cross_entropy
    monkeypatch.setattr(ce, "_torch_linear_cross_entropy", lambda *a: calls.append(a[1].shape[0]) or real(*a))
    assert torch.get_num_threads() == 1  # set at the top of this module: the rows path is single-thread only
    for v, expect in ((50, [49]), (ce.TORCH_LCE_MAX_ITEMS + 2, [])):
        calls.clear()
        hidden, weight, targets = _inputs(n=5, d=2, v=v)
        chunked_cross_entropy(hidden, weight, targets)
        assert calls == expect
    calls.clear()
    hidden, weight, targets = _inputs()
    chunked_cross_entropy(hidden, weight, targets, reduction="none")
    chunked_cross_entropy(hidden, weight, targets, chunk_size=8)
    chunked_cross_entropy(hidden, weight, targets, filter_eps=1e-3)
    chunked_cross_entropy(hidden, weight, targets, label_smoothing=0.1)
    torch.set_num_threads(2)
    try:
        chunked_cross_entropy(hidden, weight, targets)  # two threads: CCE (faster there)
    finally:
        torch.set_num_threads(1)
    assert calls == []
    with pytest.raises(ValueError, match="method='rows' needs"):
        chunked_cross_entropy(hidden, weight, targets, reduction="none", method="rows")
    with pytest.raises(ValueError, match="method must be"):
        chunked_cross_entropy(hidden, weight, targets, method="fast")
