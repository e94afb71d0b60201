"""Ranking metrics from per-user target ranks, beyond-accuracy metrics, and bootstrap confidence intervals.

Every evaluated user has one held-out target, so with a 0-based rank ``r`` of the target:
HR@K = Recall@K = [r < K], NDCG@K = [r < K] / log2(r + 2), MRR@K = [r < K] / (r + 1).
Coverage@K (share of the catalogue that appears in at least one top-K list) and Surprisal@K (mean normalised
self-information of recommended items, -log2(p_i) / log2(#users) with p_i the share of training users who
interacted with item i) follow Vasilev et al. (2024) as used in the memory-efficient-losses paper.
"""

from __future__ import annotations

import numpy as np

ACCURACY = ("HR", "NDCG", "MRR", "Recall")


def accuracy_per_user(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user HR/NDCG/MRR/Recall@k from 0-based target ranks (float ranks allowed for mid-rank ties)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks < k
    hr = hit.astype(np.float64)
    return {
        f"HR@{k}": hr,
        f"NDCG@{k}": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
        f"MRR@{k}": np.where(hit, 1.0 / (ranks + 1.0), 0.0),
        f"Recall@{k}": hr,  # one relevant item per user
    }


def item_self_information(item_user_counts: np.ndarray, num_users: int) -> np.ndarray:
    """(V,) normalised self-information in [0, 1]; items never seen in training get the maximum, 1."""
    n = max(int(num_users), 2)
    p = np.maximum(np.asarray(item_user_counts, dtype=np.float64), 1.0) / n
    return np.clip(-np.log2(p) / np.log2(n), 0.0, 1.0)


def surprisal_per_user(topk_items: np.ndarray, self_info: np.ndarray, k: int) -> np.ndarray:
    """Mean self-information of each user's recommended items (0 entries are empty slots and do not count)."""
    top = topk_items[:, :k]
    real = top > 0
    total = np.where(real, self_info[top], 0.0).sum(axis=1)
    return np.where(real.any(axis=1), total / np.maximum(real.sum(axis=1), 1), 0.0)


def coverage(topk_items: np.ndarray, num_items: int, k: int) -> float:
    """Share of items 1..num_items recommended to at least one user in the top-k (0 = empty slot, not an item)."""
    recommended = np.unique(topk_items[:, :k])
    return float(np.count_nonzero(recommended)) / num_items


def bootstrap_ci(
    per_user: dict[str, np.ndarray], resamples: int, seed: int, alpha: float = 0.05, block: int = 64
) -> dict[str, list[float]]:
    """Percentile bootstrap CIs of per-user means, resampling users (all metrics share the resamples)."""
    names = list(per_user)
    if resamples <= 0 or not names:
        return {}
    values = np.stack([per_user[n] for n in names], axis=1)  # (U, M)
    n = values.shape[0]
    if n == 0:
        return {name: [float("nan"), float("nan")] for name in names}
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, len(names)))
    # Resample in blocks so memory stays at block x U indices, whatever the number of users.
    for start in range(0, resamples, block):
        b = min(block, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        means[start : start + b] = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(names)}


def standard_errors(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, v in per_user.items():
        out[name] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return out
