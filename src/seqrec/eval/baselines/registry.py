"""The baselines by name: an explicit dict of fit functions, ``fit(data, **params) -> Scorer``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seqrec.data.sequences import PreparedData
from seqrec.errors import ConfigError
from seqrec.eval.baselines import ease, markov, popularity, repeat_last, sknn
from seqrec.eval.ranking import Scorer

BASELINES: dict[str, Callable[..., Scorer]] = {
    "popularity": popularity.fit,
    "repeat_last": repeat_last.fit,
    "markov": markov.fit,
    "sknn": sknn.fit,
    "ease": ease.fit,
}

# Hyper-parameters tried on the validation split (``tuning.tune``); the first value of each is the default.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "popularity": {},
    "repeat_last": {},
    "markov": {"smoothing": [1.0, 0.1, 10.0, 100.0]},
    "sknn": {"neighbours": [100, 20, 50, 200], "decay": [0.8, 1.0, 0.9, 0.6, 0.4]},
    "ease": {"l2": [500.0, 50.0, 100.0, 200.0, 1000.0, 2000.0, 5000.0]},
}


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ConfigError(f"eval.baselines: unknown baseline {unknown[0]!r} (expected one of {', '.join(BASELINES)})")


def fit_baseline(name: str, data: PreparedData, **params: Any) -> Scorer:
    """Fit one baseline on ``data.train``; may raise :class:`BaselineUnavailable` (e.g. EASE on a huge catalogue)."""
    check_names([name])
    return BASELINES[name](data, **params)
