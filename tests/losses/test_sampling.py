"""Negative samplers: never item 0, reproducible, right distribution and logQ; SCE buckets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.losses.sampling import NegativeSampler
from seqrec.losses.sce import sce_negatives


@pytest.mark.parametrize("sampler", ["uniform", "popularity", "in_batch"])
@pytest.mark.parametrize("shared", [False, True])
def test_reproducible_and_never_padding(sampler, shared):
    counts = np.arange(30)
    s = NegativeSampler(sampler, 30, counts, alpha=0.5)
    t = torch.randint(1, 30, (17,), generator=torch.Generator().manual_seed(0))
    a = s(11, t, shared=shared, generator=torch.Generator().manual_seed(4))
    b = s(11, t, shared=shared, generator=torch.Generator().manual_seed(4))
    assert a.ids.dtype == torch.int32 and a.ids.shape == ((11,) if shared else (17, 11))
    assert torch.equal(a.ids, b.ids) and torch.equal(a.log_q, b.log_q)
    assert int(a.ids.min()) >= 1 and int(a.ids.max()) < 30
    if sampler == "in_batch":
        assert set(a.ids.flatten().tolist()) <= set(t.tolist())


def test_popularity_distribution_and_log_q():
    counts = np.array([0, 1, 4, 9, 0, 16])
    s = NegativeSampler("popularity", 6, counts, alpha=0.5)
    t = torch.ones(1, dtype=torch.long)
    neg = s(200_000, t, shared=True, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(neg.ids.long(), minlength=6).double() / 200_000
    expected = torch.tensor([0, 1, 2, 3, 0, 4], dtype=torch.float64) / 10
    torch.testing.assert_close(freq, expected, atol=4e-3, rtol=0)
    # log_q = log(K q)
    ids = neg.ids[:5].long()
    torch.testing.assert_close(neg.log_q[:5].double(), torch.log(200_000 * expected[ids]), atol=1e-5, rtol=0)


def test_uniform_log_q_and_in_batch_frequency():
    t = torch.tensor([3, 3, 5, 7])
    u = NegativeSampler("uniform", 11, None)(4, t, shared=False, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(u.log_q, torch.full((4, 4), float(np.log(4 / 10))))
    b = NegativeSampler("in_batch", 11, None)(6, t, shared=True, generator=torch.Generator().manual_seed(0))
    q = {3: 0.5, 5: 0.25, 7: 0.25}
    for i, lq in zip(b.ids.tolist(), b.log_q.tolist(), strict=True):
        assert lq == pytest.approx(np.log(6 * q[i]), abs=1e-6)


def test_popularity_needs_counts():
    with pytest.raises(ValueError, match="item_counts"):
        NegativeSampler("popularity", 10, None)


def test_sce_negatives_are_the_top_items_of_the_row_bucket():
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(20, 6, generator=g), torch.randn(50, 6, generator=g)
    ids = sce_negatives(h, w, 5, num_buckets=4, generator=torch.Generator().manual_seed(1))
    again = sce_negatives(h, w, 5, num_buckets=4, generator=torch.Generator().manual_seed(1))
    assert ids.shape == (20, 5) and ids.dtype == torch.int32 and torch.equal(ids, again)
    assert int(ids.min()) >= 1
    omega = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    bucket = (h @ omega).argmax(1)
    proj = w @ omega
    for i in range(20):
        top = set((proj[1:, bucket[i]].topk(5).indices + 1).tolist())
        assert set(ids[i].tolist()) == top
