"""Fit, tune (validation) and evaluate (validation + test) a list of baselines: one report per baseline.

This is what a CLI command, ``train`` (baselines beside the model) or a benchmark grid calls; each report's
``to_dict()`` is JSON-ready (metrics, 95% CIs, chosen parameters, validation trials, fit seconds, skip reason).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from seqrec.data.sequences import PreparedData
from seqrec.eval.baselines.common import BaselineUnavailable
from seqrec.eval.baselines.registry import check_names, fit_baseline
from seqrec.eval.baselines.tuning import tune
from seqrec.eval.ranking import EvalResult, evaluate


@dataclass
class BaselineReport:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0  # wall-clock of the final fit with the chosen parameters
    fit_cpu_seconds: float = 0.0  # its process CPU time (all threads): robust to a busy shared machine
    tune_seconds: float = 0.0  # the whole validation grid (fits + evaluations)
    valid: EvalResult | None = None
    test: EvalResult | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why the baseline could not run (then valid/test are None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "params": self.params,
            "fit_seconds": round(self.fit_seconds, 4),
            "fit_cpu_seconds": round(self.fit_cpu_seconds, 4),
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        for split, res in (("valid", self.valid), ("test", self.test)):
            if res is not None:
                out[split] = {"metrics": res.metrics, "ci": res.ci, "num_users": res.num_users}
        if self.trials:
            out["tuning"] = {"seconds": round(self.tune_seconds, 3), "trials": self.trials}
        return out


def run_baselines(
    names: list[str],
    data: PreparedData,
    max_len: int,
    *,
    tune_on_valid: bool = True,
    params: dict[str, dict[str, Any]] | None = None,
    metric: str = "NDCG@10",
    splits: tuple[str, ...] = ("valid", "test"),
    **eval_kwargs: Any,
) -> list[BaselineReport]:
    """One :class:`BaselineReport` per name, in order. ``params[name]`` fixes a baseline's parameters (no tuning);
    otherwise, with ``tune_on_valid``, they are chosen on ``data.valid`` by ``metric`` (``tuning.GRIDS``).
    ``eval_kwargs`` go to :func:`evaluate` (ks, filter_seen, batch_size, protocol, bootstrap, seed, device)."""
    check_names(names)
    params = params or {}
    reports = []
    for name in names:
        report = BaselineReport(name)
        try:
            if name in params or not tune_on_valid:
                report.params = dict(params.get(name, {}))
            else:
                t0 = time.perf_counter()
                tuned = tune(name, data, max_len, metric=metric, **eval_kwargs)
                report.tune_seconds = time.perf_counter() - t0
                report.params, report.trials = tuned.params, tuned.trials
            t0, c0 = time.perf_counter(), time.process_time()
            scorer = fit_baseline(name, data, **report.params)
            report.fit_seconds, report.fit_cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        except BaselineUnavailable as err:
            report.skipped = str(err)
            reports.append(report)
            continue
        for split in splits:
            setattr(report, split, evaluate(scorer, getattr(data, split), data, max_len, **eval_kwargs))
        reports.append(report)
    return reports
