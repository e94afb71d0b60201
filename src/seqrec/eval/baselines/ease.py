"""EASE (Steck, WWW 2019): a closed-form item-item linear model, ``B = I - P / diag(P)``, ``P = (X^T X + l2 I)^-1``.

``X`` is the binary training matrix (users x items); ``B`` has a zero diagonal, and a history scores
``x @ B`` with ``x`` its binary item vector (the left-padded history, as a model sees it). A fully padded history
gets the popularity tie-breaker. The inverse is dense V x V (float64 for the solve, float32 kept): the fit peaks at
two or three float64 V x V matrices (6-10 GB at 20,000 items, a minute or more of CPU), so catalogues above
``max_items`` (default 20,000) raise :class:`BaselineUnavailable` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.common import BaselineUnavailable, item_gram, popularity_tiebreak
from seqrec.eval.baselines.grid import grid_points

MAX_ITEMS = 20_000


class Ease:
    def __init__(self, weights: Tensor, tiebreak: Tensor) -> None:
        self.weights = weights  # (V + 1, V + 1) float32 B, row/column 0 and the diagonal zero
        self.tiebreak = tiebreak  # (V + 1,) in [0, 1)

    def __call__(self, history: Tensor) -> Tensor:
        if self.weights.device != history.device:
            self.weights, self.tiebreak = self.weights.to(history.device), self.tiebreak.to(history.device)
        B = history.shape[0]
        x = torch.zeros(B, len(self.tiebreak), device=history.device)  # (B, V + 1) binary history
        x.scatter_(1, history, 1.0)
        x[:, 0] = 0.0
        scores = x @ self.weights  # (B, V + 1)
        empty = (history == 0).all(dim=1)  # (B,) cold users: popularity
        return torch.where(empty[:, None], self.tiebreak.expand(B, -1), scores)


def fit(data: PreparedData, l2: float = 500.0, max_items: int = MAX_ITEMS) -> Ease:
    return next(fit_grid(data, {"l2": [l2], "max_items": [max_items]}))[1]


def fit_grid(data: PreparedData, grid: dict[str, list[Any]]) -> Iterator[tuple[dict[str, Any], Ease]]:
    """One Gram matrix, one solve per grid point (``l2``, ``max_items``): what ``fit`` gives for each point."""
    points = grid_points(grid)
    for params in points:
        if not params.get("l2", 500.0) > 0:
            raise ValueError(f"ease l2 must be > 0, got {params['l2']}")
    gram = None
    for n, params in enumerate(points):
        l2, max_items = params.get("l2", 500.0), params.get("max_items", MAX_ITEMS)
        if data.num_items > max_items:
            raise BaselineUnavailable(
                "ease", f"{data.num_items} items > max_items={max_items} (EASE needs a dense items x items inverse)"
            )
        if gram is None:
            gram = item_gram(data)[1:, 1:].double()  # (V, V)
        last = n == len(points) - 1  # the last solve may consume the Gram matrix: one V x V copy less
        weights = _solve(gram if last else gram.clone(), float(l2), data.num_items)
        yield params, Ease(weights, popularity_tiebreak(data.item_popularity))


def _solve(gram: Tensor, l2: float, num_items: int) -> Tensor:
    """(V + 1, V + 1) float32 B from a (V, V) float64 Gram matrix, which is overwritten (regularised)."""
    gram.diagonal().add_(l2)
    chol = torch.linalg.cholesky(gram)
    del gram
    precision = torch.cholesky_inverse(chol)  # P = (X^T X + l2 I)^-1, symmetric positive definite
    del chol
    diag = precision.diagonal().clone()  # a copy: the in-place division below rewrites the diagonal
    weights = precision.div_(-diag[None, :])  # B_ij = -P_ij / P_jj
    weights.diagonal().zero_()
    full = torch.zeros(num_items + 1, num_items + 1)
    full[1:, 1:] = weights
    return full
