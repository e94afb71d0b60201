"""The baselines by name: an explicit dict of fit functions, ``fit(data, **params) -> Scorer``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from seqrec.data.sequences import PreparedData
from seqrec.errors import ConfigError
from seqrec.eval.baselines import ease, markov, popularity, repeat_last, sknn
from seqrec.eval.baselines.grid import GRIDS
from seqrec.eval.ranking import Scorer

__all__ = ["BASELINES", "GRIDS", "GRID_FITTERS", "check_names", "fit_baseline"]

BASELINES: dict[str, Callable[..., Scorer]] = {
    "popularity": popularity.fit,
    "repeat_last": repeat_last.fit,
    "markov": markov.fit,
    "sknn": sknn.fit,
    "ease": ease.fit,
}

# Baselines that fit a whole validation grid cheaper than one fit per point (one Gram matrix / neighbour table):
# ``fit_grid(data, grid)`` yields (params, scorer) equal to ``fit(data, **params)`` for every grid point.
GRID_FITTERS: dict[str, Callable[..., Iterator[tuple[dict[str, Any], Scorer]]]] = {
    "sknn": sknn.fit_grid,
    "ease": ease.fit_grid,
}


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ConfigError(f"eval.baselines: unknown baseline {unknown[0]!r} (expected one of {', '.join(BASELINES)})")


def fit_baseline(name: str, data: PreparedData, **params: Any) -> Scorer:
    """Fit one baseline on ``data.train``; may raise :class:`BaselineUnavailable` (e.g. EASE on a huge catalogue)."""
    check_names([name])
    return BASELINES[name](data, **params)
