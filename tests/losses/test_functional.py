"""Functional API: linear_cross_entropy dispatches to the exact or sampled loss; make_loss binds the same options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.config import LossConfig
from seqrec.losses import LossOptions, NegativeOptions, make_loss
from seqrec.losses.ce import chunked_cross_entropy
from seqrec.losses.functional import bce_loss, gbce_loss, linear_cross_entropy, sampled_cross_entropy, sce_loss

torch.set_num_threads(1)


def _inputs(n=29, d=6, v=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden, weight = torch.randn(n, d, generator=g), torch.randn(v, d, generator=g)
    targets = torch.randint(1, v, (n,), generator=g)
    targets[torch.rand(n, generator=g) < 0.25] = 0
    counts = np.random.default_rng(seed).integers(0, 30, size=v)
    return hidden, weight, targets, counts


def _vg(fn, hidden, weight, targets):
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    loss = fn(h, w, targets, torch.Generator().manual_seed(3))
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_linear_cross_entropy_exact_is_chunked_ce():
    hidden, weight, targets, _ = _inputs()
    opts = LossOptions(chunk_size=5, label_smoothing=0.1, filter_eps=1e-3)
    a = _vg(lambda h, w, t, g: linear_cross_entropy(h, w, t, options=opts, generator=g), hidden, weight, targets)
    b = _vg(
        lambda h, w, t, g: chunked_cross_entropy(h, w, t, chunk_size=5, label_smoothing=0.1, filter_eps=1e-3),
        hidden,
        weight,
        targets,
    )
    _equal(a, b)


def test_linear_cross_entropy_sampled_is_fused_sampled_ce():
    hidden, weight, targets, counts = _inputs()
    neg = NegativeOptions(6, sampler="popularity", item_counts=counts, shared=True)
    opts = LossOptions(chunk_size=4, reduction="sum")
    a = _vg(lambda h, w, t, g: linear_cross_entropy(h, w, t, neg, options=opts, generator=g), hidden, weight, targets)
    b = _vg(lambda h, w, t, g: sampled_cross_entropy(h, w, t, neg, options=opts, generator=g), hidden, weight, targets)
    _equal(a, b)


# config -> the functional call it must be (same option values, same generator draws)
CASES = {
    "cce_neg": (
        dict(num_negatives=5, sampler="popularity", chunk_size=3, label_smoothing=0.1, filter_eps=0.01),
        lambda c: (
            lambda h, w, t, g: sampled_cross_entropy(
                h,
                w,
                t,
                NegativeOptions(5, sampler="popularity", shared=True, item_counts=c),
                options=LossOptions(chunk_size=3, label_smoothing=0.1, filter_eps=0.01),
                generator=g,
            )
        ),
    ),
    "ce_neg": (
        dict(num_negatives=5, sampler="in_batch", shared_negatives=False, logq=False),
        lambda c: (
            lambda h, w, t, g: sampled_cross_entropy(
                h, w, t, NegativeOptions(5, sampler="in_batch", logq=False), generator=g, fused=False
            )
        ),
    ),
    "bce": ({}, lambda c: lambda h, w, t, g: bce_loss(h, w, t, generator=g)),
    "gbce": (
        dict(gbce_t=0.5, chunk_size=7),
        lambda c: lambda h, w, t, g: gbce_loss(h, w, t, t=0.5, options=LossOptions(chunk_size=7), generator=g),
    ),
    "sce": (
        dict(num_negatives=8, sce_buckets=3),
        lambda c: lambda h, w, t, g: sce_loss(h, w, t, 8, num_buckets=3, generator=g),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_make_loss_is_the_functional_call(name):
    hidden, weight, targets, counts = _inputs()
    cfg, fn = CASES[name]
    bound = make_loss(LossConfig(name=name, **cfg), counts)
    _equal(_vg(bound, hidden, weight, targets), _vg(fn(counts), hidden, weight, targets))
