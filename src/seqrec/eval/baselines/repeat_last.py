"""Repeat-last: recommend the user's own recent items again, most recent first, then popular items.

The baseline for repeat-heavy logs (music, groceries, e-commerce re-orders): a history item at padded position
``t`` (0-based, the last column is the most recent) scores ``t + 1`` >= 1 (its most recent occurrence if it
repeats); every other item scores its popularity tie-breaker in [0, 1), so it always ranks below the history.
With ``eval.filter_seen=true`` the history is filtered and this is exactly popularity.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.common import popularity_tiebreak


class RepeatLast:
    def __init__(self, tiebreak: Tensor) -> None:
        self.tiebreak = tiebreak  # (V + 1,) in [0, 1)

    def __call__(self, history: Tensor) -> Tensor:
        B, T = history.shape
        tiebreak = self.tiebreak.to(history.device)
        position = torch.arange(1, T + 1, device=history.device, dtype=torch.float32).expand(B, T)  # (B, T)
        recency = torch.zeros(B, len(tiebreak), device=history.device)  # (B, V + 1)
        recency.scatter_reduce_(1, history, torch.where(history > 0, position, 0.0), reduce="amax")
        recency[:, 0] = 0.0  # padding positions scattered into column 0
        return torch.where(recency > 0, recency, tiebreak.expand(B, -1))


def fit(data: PreparedData) -> RepeatLast:
    return RepeatLast(popularity_tiebreak(data.item_popularity))
