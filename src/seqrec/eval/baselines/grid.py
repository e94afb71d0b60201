"""The hyper-parameter grids tried on the validation split, and their points."""

from __future__ import annotations

import itertools
from typing import Any

# Hyper-parameters tried on the validation split (``tuning.tune``); the first value of each is the default.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "repeat_last": {},
    "markov": {"smoothing": [1.0, 0.1, 10.0, 100.0]},
    "sknn": {"neighbours": [100, 20, 50, 200], "decay": [0.8, 1.0, 0.6, 0.4, 0.2]},
    "ease": {"l2": [500.0, 50.0, 150.0, 1500.0, 5000.0]},  # ~x3 steps: each point is one V x V solve
}


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """All combinations in grid order, the first key varying slowest (``itertools.product``)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
