"""Sampled losses (CE⁻/CCE⁻, BCE, gBCE, SCE): fused vs float64 materialised reference, same negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.config import LossConfig
from seqrec.errors import ConfigError
from seqrec.losses import LOSSES, LossOptions, NegativeOptions, make_loss
from seqrec.losses.functional import bce_loss, gbce_loss, sampled_cross_entropy, sce_loss
from seqrec.losses.sampled import gbce_beta, materialized_sampled_loss, sampled_loss

torch.set_num_threads(1)
TOL = dict(atol=1e-6, rtol=1e-6)


def _inputs(n=33, d=8, v=41, pad=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g)
    weight = torch.randn(v, d, generator=g)
    targets = torch.randint(1, v, (n,), generator=g)
    targets[torch.rand(n, generator=g) < pad] = 0
    counts = np.random.default_rng(seed).integers(0, 50, size=v)
    counts[0] = 0
    return hidden, weight, targets, counts


def _vg(fn, hidden, weight, targets, *args, seed=1, **kw):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    loss = fn(h, w, targets, *args, generator=torch.Generator().manual_seed(seed), **kw)
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _check(fn, hidden, weight, targets, *args, **kw):
    out = _vg(fn, hidden, weight, targets, *args, fused=True, **kw)
    ref = _vg(fn, hidden.double(), weight.double(), targets, *args, fused=False, **kw)
    for a, b in zip(out, ref, strict=True):
        assert a.dtype == torch.float32 and b.dtype == torch.float64
        torch.testing.assert_close(a.double(), b, **TOL)
    assert torch.all(out[2][0] == 0)  # the padding item never gets gradient
    return out


@pytest.mark.parametrize("sampler", ["uniform", "popularity", "in_batch"])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [None, 5])
def test_sampled_ce_fused_matches_reference(sampler, shared, label_smoothing, chunk):
    hidden, weight, targets, counts = _inputs()
    logq = None if sampler != "uniform" else True
    negatives = NegativeOptions(9, sampler=sampler, shared=shared, item_counts=counts, logq=logq)
    options = LossOptions(chunk_size=chunk, label_smoothing=label_smoothing, kernel="torch")
    _check(sampled_cross_entropy, hidden, weight, targets, negatives, options=options)


@pytest.mark.parametrize("shared", [False, True])
def test_binary_losses_match_reference(shared):
    hidden, weight, targets, counts = _inputs()
    _check(bce_loss, hidden, weight, targets, NegativeOptions(1, shared=shared), options=LossOptions(chunk_size=4))
    _check(
        gbce_loss, hidden, weight, targets, NegativeOptions(6, shared=shared), t=0.5, options=LossOptions(chunk_size=7)
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_sce_matches_reference(label_smoothing):
    hidden, weight, targets, _ = _inputs()
    options = LossOptions(label_smoothing=label_smoothing)
    _check(sce_loss, hidden, weight, targets, 6, num_buckets=3, options=options)


def test_reference_formulas_are_the_textbook_ones():
    """The materialised reference equals F.cross_entropy / BCE-with-logits / gSASRec's transformed logit."""
    g = torch.Generator().manual_seed(3)
    h, w = (
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.randn(20, 4, generator=g, dtype=torch.float64),
    )
    t = torch.tensor([1, 2, 3, 4, 5, 6])
    neg = torch.randint(7, 20, (6, 5), generator=g)  # no accidental hits by construction
    z = torch.cat([(h * w[t]).sum(1, keepdim=True), torch.bmm(w[neg], h[:, :, None])[..., 0]], 1)  # (6, 6)
    ce = F.cross_entropy(z, torch.zeros(6, dtype=torch.long), reduction="none", label_smoothing=0.1)
    torch.testing.assert_close(materialized_sampled_loss(h, w, t, neg, label_smoothing=0.1), ce)
    labels = torch.zeros_like(z)
    labels[:, 0] = 1
    bce = F.binary_cross_entropy_with_logits(z, labels, reduction="none").sum(1)
    torch.testing.assert_close(materialized_sampled_loss(h, w, t, neg, mode="binary"), bce)
    beta = gbce_beta(5, 20, 0.75)
    p = torch.sigmoid(z[:, :1])
    transformed = torch.log(1.0 / (p ** (-beta) - 1.0))  # gSASRec's calibrated positive logit
    ref = F.binary_cross_entropy_with_logits(torch.cat([transformed, z[:, 1:]], 1), labels, reduction="none").sum(1)
    torch.testing.assert_close(materialized_sampled_loss(h, w, t, neg, mode="binary", beta=beta), ref)


def test_accidental_hits_are_masked():
    h, w = torch.randn(3, 4), torch.randn(10, 4)
    t = torch.tensor([1, 2, 3])
    neg = torch.tensor([[1, 4], [5, 2], [3, 3]])  # row 2: only hits -> loss = 0 (positive alone)
    loss = materialized_sampled_loss(h, w, t, neg)
    assert loss[2].item() == pytest.approx(0.0, abs=1e-6)
    z = (h[0] * w[4]).sum() - (h[0] * w[1]).sum()
    assert loss[0].item() == pytest.approx(F.softplus(z).item(), abs=1e-5)


@pytest.mark.parametrize("name", ["ce_neg", "cce_neg", "bce", "gbce", "sce"])
def test_all_padding_batch(name):
    hidden, weight, targets, counts = _inputs()
    targets.zero_()
    fn = make_loss(LossConfig(name=name, num_negatives=3), counts)
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    loss = fn(h, w, targets, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(h.grad == 0) and torch.all(w.grad == 0)


@pytest.mark.parametrize("name", list(LOSSES))
def test_make_loss_every_name_is_reproducible(name):
    hidden, weight, targets, counts = _inputs()
    fn = make_loss(LossConfig(name=name, num_negatives=4, sampler="popularity"), counts)
    a = fn(hidden, weight, targets, torch.Generator().manual_seed(5))
    b = fn(hidden, weight, targets, torch.Generator().manual_seed(5))
    assert torch.isfinite(a) and a.item() == b.item()


def test_cce_neg_and_ce_neg_agree_through_make_loss():
    hidden, weight, targets, counts = _inputs()
    for shared in (False, True):
        cfg = dict(num_negatives=8, shared_negatives=shared, sampler="in_batch")
        a = _vg(make_loss(LossConfig(name="cce_neg", **cfg)), hidden, weight, targets)
        b = _vg(make_loss(LossConfig(name="ce_neg", **cfg)), hidden.double(), weight.double(), targets)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x.double(), y, **TOL)


def test_label_smoothing_rejected_for_binary_losses():
    with pytest.raises(ConfigError, match="loss.label_smoothing"):
        make_loss(LossConfig(name="bce", label_smoothing=0.1))


def test_filter_eps_matches_filtered_reference():
    hidden, weight, targets, _ = _inputs(pad=0.0)
    eps = 0.02
    neg = torch.randint(1, weight.shape[0], (targets.shape[0], 7), generator=torch.Generator().manual_seed(0))

    def draw(t, h):
        return neg.int(), None

    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    sampled_loss(h, w, targets, draw, options=LossOptions(filter_eps=eps, chunk_size=6)).backward()
    # reference: gradient of the materialised logits with |softmax - onehot| < eps zeroed
    hd, wd = hidden.double().requires_grad_(True), weight.double().requires_grad_(True)
    z_pos = (hd * wd[targets]).sum(1, keepdim=True)
    z = torch.cat([z_pos, torch.bmm(wd[neg], hd[:, :, None])[..., 0]], 1)
    hit = torch.cat([torch.zeros(len(targets), 1, dtype=torch.bool), neg == targets[:, None]], 1)
    z = z.masked_fill(hit, float("-inf"))
    coef = torch.softmax(z, 1)
    coef[:, 0] -= 1
    coef = coef.masked_fill(coef.abs() < eps, 0.0) / len(targets)
    z_all = torch.cat([z_pos, torch.bmm(wd[neg], hd[:, :, None])[..., 0]], 1)
    z_all.backward(coef)
    torch.testing.assert_close(h.grad.double(), hd.grad, **TOL)
    torch.testing.assert_close(w.grad.double(), wd.grad, **TOL)


@pytest.mark.parametrize("name", ["cce_neg", "gbce", "sce"])
def test_bf16_autocast_within_same_dtype_error(name):
    hidden, weight, targets, counts = _inputs(n=64, d=16, v=300)
    neg, torch_kernel = NegativeOptions(16), LossOptions(kernel="torch")
    fns = {
        "cce_neg": lambda fused: (
            lambda h, w, t, generator: sampled_cross_entropy(
                h, w, t, neg, options=torch_kernel, generator=generator, fused=fused
            )
        ),
        "gbce": lambda fused: lambda h, w, t, generator: gbce_loss(h, w, t, neg, generator=generator, fused=fused),
        "sce": lambda fused: lambda h, w, t, generator: sce_loss(h, w, t, 16, generator=generator, fused=fused),
    }
    ref = _vg(fns[name](False), hidden.double(), weight.double(), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mat = _vg(fns[name](False), hidden, weight, targets)
        out = _vg(fns[name](True), hidden, weight, targets)
    assert out[0].dtype == torch.float32 and out[2].dtype == torch.float32
    for a, m, r in zip(out, mat, ref, strict=True):
        assert (a.double() - r).abs().max().item() <= (m.double() - r).abs().max().item() + 1e-2


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 12),
    v=st.integers(2, 60),
    k=st.integers(1, 20),
    shared=st.booleans(),
    chunk=st.integers(1, 50),
    seed=st.integers(0, 1000),
)
def test_odd_shapes(n, d, v, k, shared, chunk, seed):
    hidden, weight, targets, _ = _inputs(n=n, d=d, v=v, seed=seed)
    options = LossOptions(chunk_size=chunk, kernel="torch")
    _check(sampled_cross_entropy, hidden, weight, targets, NegativeOptions(k, shared=shared), options=options)


def test_triton_kernel_without_triton_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # CPU tensors: the kernels cannot run
    hidden, weight, targets, _ = _inputs()
    with pytest.raises(ValueError, match="kernel='triton' needs triton"):
        sampled_cross_entropy(hidden, weight, targets, NegativeOptions(4), options=LossOptions(kernel="triton"))
