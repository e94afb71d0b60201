"""Pick a baseline's hyper-parameters on the VALIDATION split (never the test split): grid search on one metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.grid import GRIDS, grid_points
from seqrec.eval.baselines.registry import GRID_FITTERS, check_names, fit_baseline
from seqrec.eval.ranking import evaluate


@dataclass
class Tuned:
    name: str
    params: dict[str, Any]  # the chosen values
    metric: str  # what was maximised on validation, e.g. "NDCG@10"
    trials: list[dict[str, Any]] = field(default_factory=list)  # [{"params": {...}, "NDCG@10": x}] in grid order


def tune(
    name: str,
    data: PreparedData,
    max_len: int,
    *,
    grid: dict[str, list[Any]] | None = None,
    metric: str = "NDCG@10",
    **eval_kwargs: Any,
) -> Tuned:
    """Evaluate every grid point on ``data.valid`` (``eval_kwargs`` go to ``evaluate``; no bootstrap) and keep the
    best by ``metric`` (the earliest grid point on ties, so the listed default wins a tie)."""
    grid = GRIDS[name] if grid is None else grid
    if not grid:  # nothing to choose (popularity, repeat_last)
        return Tuned(name=name, params={}, metric=metric)
    k = int(metric.split("@")[1])
    kwargs = {**eval_kwargs, "bootstrap": 0, "ks": sorted({*eval_kwargs.get("ks", ()), k})}
    check_names([name])
    if name in GRID_FITTERS:
        fitted = GRID_FITTERS[name](data, grid)
    else:
        fitted = ((params, fit_baseline(name, data, **params)) for params in grid_points(grid))
    trials = []
    for params, scorer in fitted:
        result = evaluate(scorer, data.valid, data, max_len, **kwargs)
        trials.append({"params": params, metric: result.metrics[metric]})
    best = max(range(len(trials)), key=lambda i: (trials[i][metric], -i))
    return Tuned(name=name, params=trials[best]["params"], metric=metric, trials=trials)
