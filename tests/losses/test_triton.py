"""Triton CCE⁻ kernels in interpreter mode (CPU, fp32, small shapes); skipped without triton."""

from __future__ import annotations

import os

import pytest
import torch

os.environ["TRITON_INTERPRET"] = "1"  # must be set before the kernels are decorated (module import)
pytest.importorskip("triton")

from seqrec.losses import LossOptions, NegativeOptions  # noqa: E402
from seqrec.losses.functional import sampled_cross_entropy  # noqa: E402

torch.set_num_threads(1)


def _vg(hidden, weight, targets, negatives, options, fused=True):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(2)
    loss = sampled_cross_entropy(h, w, targets, negatives, options=options, generator=gen, fused=fused)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("sampler", ["uniform", "in_batch"])
def test_triton_matches_float64_reference(shared, label_smoothing, sampler):
    g = torch.Generator().manual_seed(0)
    n, d, v = 13, 10, 23  # D not a power of two, rows not a multiple of the block
    hidden, weight = torch.randn(n, d, generator=g), torch.randn(v, d, generator=g)
    targets = torch.randint(1, v, (n,), generator=g)
    targets[[2, 7]] = 0
    negatives = NegativeOptions(11, sampler=sampler, shared=shared)
    out = _vg(hidden, weight, targets, negatives, LossOptions(label_smoothing=label_smoothing, kernel="triton"))
    ref = _vg(hidden.double(), weight.double(), targets, negatives, LossOptions(label_smoothing=label_smoothing), False)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=1e-6, rtol=1e-6)


def test_triton_filter_matches_torch_fused():
    g = torch.Generator().manual_seed(1)
    hidden, weight = torch.randn(9, 8, generator=g), torch.randn(30, 8, generator=g)
    targets = torch.randint(1, 30, (9,), generator=g)
    negatives = NegativeOptions(12)
    out = _vg(hidden, weight, targets, negatives, LossOptions(filter_eps=0.03, kernel="triton"))
    ref = _vg(hidden, weight, targets, negatives, LossOptions(filter_eps=0.03, kernel="torch"))
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
