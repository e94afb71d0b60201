"""Item-kNN over sequences (SKNN-style): cosine item neighbours, scored against a recency-weighted history.

Similarity is the cosine of two items' user sets in the binary training matrix X (users x items):
``sim(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|)``, self-similarity excluded, and only the ``neighbours`` most
similar items of each item are kept (a sparse (V + 1, k) table, so memory is V x k whatever the catalogue).
A history ``h_1 .. h_T`` (h_T the last) scores ``s(j) = sum_t decay ** (T - t) * sim(h_t, j)`` (a repeated
history item counts at each position). Items with no similarity to the history (s = 0) rank below every item
with s > 0, ordered among themselves by popularity: they score ``tiebreak - 1`` in [-1, 0).

The Gram matrix is computed in column blocks (``item_gram_blocks``), each reduced to its top-k right away, so the
dense V x V matrix never exists. Neighbours are ordered by similarity, then item id (``stable_topk``): that is
deterministic, and a table fitted with more neighbours truncates exactly to one with fewer (``fit_grid`` tunes
``neighbours`` from a single fit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.common import (
    item_gram_blocks,
    popularity_tiebreak,
    recency_weights,
    stable_topk,
    train_user_items,
)
from seqrec.eval.baselines.grid import grid_points

POSITIONS_PER_STEP = 32  # history positions scattered at once: bounds the (B, 32 * k) scatter buffers


class Sknn:
    def __init__(self, neighbours: Tensor, similarity: Tensor, tiebreak: Tensor, decay: float) -> None:
        self.neighbours = neighbours  # (V + 1, k) int64 neighbour item ids (row 0 and missing slots: 0)
        self.similarity = similarity  # (V + 1, k) float32 cosine, 0 where there is no neighbour
        self.tiebreak = tiebreak  # (V + 1,) in [0, 1)
        self.decay = decay

    def __call__(self, history: Tensor) -> Tensor:
        if self.neighbours.device != history.device:
            self.neighbours, self.similarity = self.neighbours.to(history.device), self.similarity.to(history.device)
            self.tiebreak = self.tiebreak.to(history.device)
        B, T = history.shape
        weights = recency_weights(history, self.decay)  # (B, T)
        scores = torch.zeros(B, len(self.tiebreak), device=history.device)  # (B, V + 1)
        for t0 in range(0, T, POSITIONS_PER_STEP):
            h = history[:, t0 : t0 + POSITIONS_PER_STEP]  # (B, t)
            src = weights[:, t0 : t0 + POSITIONS_PER_STEP, None] * self.similarity[h]  # (B, t, k)
            scores.scatter_add_(1, self.neighbours[h].reshape(B, -1), src.reshape(B, -1))
        scores[:, 0] = 0.0
        return torch.where(scores > 0, scores, self.tiebreak - 1.0)

    def variant(self, neighbours: int = 100, decay: float = 0.8) -> Sknn:
        """This table cut to ``neighbours`` per item, scored with ``decay``: equal to ``fit`` with those values
        (when ``neighbours`` <= the fitted width); shares memory with this one."""
        _check(neighbours, decay)
        if neighbours > self.neighbours.shape[1] and self.neighbours.shape[1] < len(self.tiebreak):
            raise ValueError(f"sknn variant: {neighbours} neighbours > the fitted {self.neighbours.shape[1]}")
        return Sknn(self.neighbours[:, :neighbours], self.similarity[:, :neighbours], self.tiebreak, float(decay))


def fit(data: PreparedData, neighbours: int = 100, decay: float = 0.8) -> Sknn:
    _check(neighbours, decay)
    n = data.num_items + 1
    k = min(neighbours, n)
    pairs = train_user_items(data)
    counts = torch.bincount(torch.from_numpy(pairs[1]), minlength=n).float()  # (V + 1,) |U_i|, the Gram diagonal
    inv_norm = torch.where(counts > 0, counts.rsqrt(), torch.zeros(()))
    nbr = torch.zeros(n, k, dtype=torch.int64)
    sim = torch.zeros(n, k)
    for first, block in item_gram_blocks(data, pairs):  # block: (V + 1, w) = G[:, first:first + w]
        cols = torch.arange(first, first + block.shape[1])
        # G is symmetric: column j of the block is row j, so the transposed block holds the items' similarity rows
        cos = (block * inv_norm[:, None] * inv_norm[cols][None, :]).T.contiguous()  # (w, V + 1)
        cos[torch.arange(len(cols)), cols] = 0.0  # no self-similarity
        cos[:, 0] = 0.0
        val, idx = stable_topk(cos, k)  # (w, k) by similarity, then item id
        sim[cols] = val
        nbr[cols] = torch.where(val > 0, idx, torch.zeros((), dtype=torch.int64))
    sim[0] = 0.0
    nbr[0] = 0
    return Sknn(nbr, sim, popularity_tiebreak(data.item_popularity), float(decay))


def fit_grid(data: PreparedData, grid: dict[str, list[Any]]) -> Iterator[tuple[dict[str, Any], Sknn]]:
    """Every grid point from ONE neighbour table (the largest ``neighbours``): the same scorers as ``fit`` per
    point, because neighbours are ordered (similarity, item id) and so truncate exactly."""
    points = grid_points(grid)
    model = fit(data, **{**points[0], "neighbours": max(p.get("neighbours", 100) for p in points)})
    for params in points:
        yield params, model.variant(**params)


def _check(neighbours: int, decay: float) -> None:
    if neighbours < 1:
        raise ValueError(f"sknn neighbours must be >= 1, got {neighbours}")
    if not 0 < decay <= 1:
        raise ValueError(f"sknn decay must be in (0, 1], got {decay}")
