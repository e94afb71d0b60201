"""A non-finite score never helps: NaN/inf-scoring models rank their targets last, Coverage@K <= 1 for any K."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ranking import make_data

from seqrec.eval.metrics import coverage
from seqrec.eval.ranking import evaluate, rank_targets, topk_real


def _constant(value: float, num_items: int):
    def score(history: torch.Tensor) -> torch.Tensor:
        return torch.full((history.shape[0], num_items + 1), value)

    return score


def test_nan_scores_rank_last_never_first():
    """#10 row 1: a NaN model scored NDCG@10 = HR@10 = 1.0 (NaN never compares greater, so every rank was 0)."""
    data, es = make_data(num_users=300, num_items=200)
    for value in (float("nan"), float("inf"), -float("inf")):
        res = evaluate(_constant(value, data.num_items), es, data, 20, ks=[10], bootstrap=50)
        assert res.metrics["HR@10"] <= 0.06 and res.metrics["NDCG@10"] <= 0.03, (value, res.metrics)
        assert all(np.isfinite(v) for v in res.metrics.values())
    ranks, _ = rank_targets(_constant(float("nan"), data.num_items), es, data.num_items, 20)
    assert (ranks == data.num_items).all()  # last, the worst case


def test_nan_items_are_never_recommended_and_a_nan_target_is_last():
    data, es = make_data(num_users=50, num_items=30)
    target = torch.as_tensor(np.asarray(es.targets))

    def partly_nan(history: torch.Tensor) -> torch.Tensor:
        s = torch.rand(history.shape[0], data.num_items + 1, generator=torch.Generator().manual_seed(0))
        s[:, 1::2] = float("nan")  # odd items: NaN
        return s

    ranks, top = rank_targets(partly_nan, es, data.num_items, 20, topk=30)
    odd = (target % 2 == 1).numpy()
    assert (ranks[odd] == data.num_items).all()
    assert not np.isin(top, np.arange(1, data.num_items + 1, 2)).any()  # no NaN item in any top-k list


@settings(max_examples=60, deadline=None)
@given(
    num_items=st.integers(2, 40), users=st.integers(1, 12), k=st.integers(1, 200),
    nan_share=st.floats(0, 1), seed=st.integers(0, 10_000),
)
def test_coverage_never_exceeds_one(num_items, users, k, nan_share, seed):
    """#10 row 7: Coverage@5000 on a 1,000-item catalogue was 1.0010 (the padding id counted as an item)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(users, num_items + 1, generator=gen)
    scores[torch.rand(users, num_items + 1, generator=gen) < nan_share] = float("nan")
    scores = torch.nan_to_num(scores, nan=-torch.inf)
    scores[:, 0] = -torch.inf
    top = topk_real(scores, k).numpy()
    assert top.shape == (users, k) and (top >= 0).all() and (top <= num_items).all()
    assert 0.0 <= coverage(top, num_items, k) <= 1.0
    finite = np.isfinite(scores.numpy()[:, 1:]).sum(axis=1)
    assert ((top > 0).sum(axis=1) == np.minimum(finite, k)).all()  # every real candidate, nothing else
