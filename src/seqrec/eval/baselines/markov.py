"""First-order Markov chain: next-item transition counts of the training sequences, smoothed by popularity.

``score(b | a) = (C[a, b] + smoothing * p(b)) / (n_a + smoothing)`` with ``C[a, b]`` the number of times item
``b`` directly follows item ``a`` in a training sequence, ``n_a = sum_b C[a, b]`` and ``p`` the training
popularity distribution (uniform when there is no training data). ``a`` is the history's last item; an item
never seen as a predecessor, and a fully padded history (a = 0), get exactly ``p``: a Dirichlet back-off to
popularity. ``C`` stays sparse (CSR over predecessors, one entry per observed transition).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.common import sorted_unique


class Markov:
    def __init__(self, offsets: Tensor, nexts: Tensor, counts: Tensor, prior: Tensor, smoothing: float) -> None:
        self.offsets = offsets  # (V + 2,) int64 CSR row starts by predecessor item
        self.nexts = nexts  # (nnz,) int64 successor item
        self.counts = counts  # (nnz,) float32 transition count
        self.prior = prior  # (V + 1,) float32 popularity distribution (prior[0] = 0)
        self.row_totals = torch.zeros(len(offsets) - 1).index_add_(
            0, torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff()), counts
        )  # (V + 1,) n_a
        self.smoothing = smoothing

    def __call__(self, history: Tensor) -> Tensor:
        dev = history.device
        last = history[:, -1].cpu()  # (B,) left padding: the last column is the last item, 0 if empty
        starts, lens = self.offsets[last], self.offsets[last + 1] - self.offsets[last]
        rows = torch.repeat_interleave(torch.arange(len(last)), lens)
        begin = torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
        pos = torch.repeat_interleave(starts, lens) + torch.arange(int(lens.sum())) - begin  # flat CSR positions
        scores = (self.smoothing * self.prior).expand(len(last), -1).clone()  # (B, V + 1)
        scores.index_put_((rows, self.nexts[pos]), self.counts[pos], accumulate=True)
        scores /= (self.row_totals[last] + self.smoothing)[:, None]
        return scores.to(dev)


def fit(data: PreparedData, smoothing: float = 1.0) -> Markov:
    if not smoothing > 0:
        raise ValueError(f"markov smoothing must be > 0, got {smoothing}")
    V = data.num_items
    offsets = np.asarray(data.train.offsets, dtype=np.int64)
    values = np.asarray(data.train.values, dtype=np.int64)
    follows = np.ones(max(len(values) - 1, 0), dtype=bool)  # pair (values[i], values[i + 1]) is a transition ...
    ends = offsets[1:-1] - 1  # ... unless position i ends a user's sequence
    follows[ends[(ends >= 0) & (ends < len(follows))]] = False
    prev, nxt = values[:-1][follows], values[1:][follows]
    keys, counts = sorted_unique(prev * (V + 1) + nxt)  # sorted by predecessor, then successor
    row_offsets = np.zeros(V + 2, dtype=np.int64)
    np.cumsum(np.bincount(keys // (V + 1), minlength=V + 1), out=row_offsets[1:])
    pop = np.asarray(data.item_popularity, dtype=np.float64).copy()
    pop[0] = 0.0
    prior = pop / pop.sum() if pop.sum() > 0 else np.r_[0.0, np.full(V, 1.0 / V)]
    return Markov(
        torch.from_numpy(row_offsets),
        torch.from_numpy(keys % (V + 1)),
        torch.from_numpy(counts.astype(np.float32)),
        torch.from_numpy(prior).float(),
        float(smoothing),
    )
