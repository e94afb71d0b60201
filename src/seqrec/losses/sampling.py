"""Negative samplers for the sampled losses, reproducible from a ``torch.Generator``.

Three proposal distributions ``q`` over the real items ``1..V-1`` (item 0, the padding item, is never drawn):

* ``uniform``: ``q_j = 1 / (V - 1)``.
* ``popularity``: ``q_j ∝ count_j ** alpha`` (alpha-smoothed, word2vec-style; alpha = 0 is uniform).
  Items never seen in training keep a tiny floor mass so that every item can be drawn.
* ``in_batch``: negatives are the targets of other rows of the batch, drawn uniformly over positions, so
  ``q_j = (occurrences of j among the batch targets) / M``; these are exactly the in-batch negatives of
  two-tower training (Yi et al. 2019, "Sampling-bias-corrected neural modeling").

Negatives are either ``shared`` ``(K,)`` (one set for the whole batch, scored with one plain matmul) or
per row ``(M, K)``. Indices are int32 (half the memory of int64, indexed directly). The
returned ``log_q`` is ``log(K * q_j)``, the sampled-softmax ("logQ") correction subtracted from negative
logits (Bengio & Senecal 2008; Jean et al. 2015), with the same shape as the negatives.

Sampling happens on the generator's device (CPU generator -> CPU sampling) and is moved to the data's device,
so a run is reproducible for a given generator state regardless of where the model lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

SAMPLERS = ("uniform", "popularity", "in_batch")


@dataclass
class Negatives:
    ids: Tensor  # (K,) shared or (M, K) per row, int32 item ids in [1, V)
    log_q: Tensor  # same shape, fp32: log(K * q(id)), the logQ correction


class NegativeSampler:
    """Draws ``num_negatives`` negatives per row (or shared) from ``uniform``/``popularity``/``in_batch``."""

    def __init__(
        self,
        sampler: str,
        num_items: int,  # V = weight rows, including the padding row 0
        item_counts: np.ndarray | Tensor | None = None,  # (V,) training counts; needed for "popularity"
        alpha: float = 0.75,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if num_items < 2:
            raise ValueError(f"need at least one real item (V >= 2), got V={num_items}")
        self.sampler = sampler
        self.num_items = num_items
        self._cdf: Tensor | None = None  # (V-1,) float64 cumulative distribution over items 1..V-1
        self._log_q: Tensor | None = None  # (V,) float32 log q, entry 0 unused
        if sampler == "popularity":
            if item_counts is None:
                raise ValueError("the popularity sampler needs item_counts (training popularity, shape (V,))")
            counts = torch.as_tensor(np.asarray(item_counts), dtype=torch.float64).reshape(-1)
            if counts.numel() != num_items:
                raise ValueError(f"item_counts has {counts.numel()} entries, weight has {num_items} rows")
            mass = counts[1:].clamp(min=0) ** alpha
            mass = mass + max(float(mass.sum()), 1.0) * 1e-12  # floor: unseen items stay drawable
            probs = mass / mass.sum()
            self._cdf = probs.cumsum(0)
            self._cdf[-1] = 1.0
            self._log_q = torch.cat([torch.zeros(1, dtype=torch.float64), probs.log()]).float()

    def __call__(
        self,
        num_negatives: int,
        targets: Tensor,  # (M,) int64 targets of the valid rows (ids in [1, V))
        *,
        shared: bool,
        generator: torch.Generator | None = None,
    ) -> Negatives:
        device = targets.device
        gen_device = generator.device if generator is not None else device
        M, K, V = targets.shape[0], num_negatives, self.num_items
        shape = (K,) if shared else (M, K)
        if self.sampler == "uniform":
            ids = torch.randint(1, V, shape, generator=generator, device=gen_device, dtype=torch.int32).to(device)
            # a constant: a stride-0 view, so unused corrections cost no memory
            log_q = torch.full((), float(np.log(K / (V - 1))), device=device).expand(shape)
        elif self.sampler == "popularity":
            assert self._cdf is not None and self._log_q is not None
            cdf = self._cdf.to(gen_device)
            u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64)
            ids = torch.searchsorted(cdf, u, right=True, out_int32=True).clamp_(max=V - 2).add_(1).to(device)
            del u
            log_q = self._log_q.to(device)[ids] + float(np.log(K))
        else:  # in_batch
            if M == 0:
                ids = torch.ones(shape, dtype=torch.int32, device=device)
                return Negatives(ids, torch.zeros((), device=device).expand(shape))
            pos = torch.randint(0, M, shape, generator=generator, device=gen_device, dtype=torch.int32).to(device)
            ids = targets.to(torch.int32)[pos]
            del pos
            freq = torch.bincount(targets, minlength=V).to(torch.float32)  # (V,)
            log_q = (freq[ids] / M).log_() + float(np.log(K))
        return Negatives(ids.to(torch.int32), log_q.to(torch.float32))
