"""Strong simple baselines behind the model evaluation interface: each fits on ``data.train`` and returns a
:data:`~seqrec.eval.ranking.Scorer` (left-padded histories (B, T) -> scores (B, V + 1)) for ``evaluate``.

``BASELINES`` maps a name to its ``fit(data, **params)``; ``run_baselines`` tunes on validation and evaluates.
"""

from seqrec.eval.baselines.common import BaselineUnavailable
from seqrec.eval.baselines.registry import BASELINES, GRIDS, check_names, fit_baseline
from seqrec.eval.baselines.suite import BaselineReport, run_baselines
from seqrec.eval.baselines.tuning import Tuned, tune

__all__ = [
    "BASELINES",
    "GRIDS",
    "BaselineReport",
    "BaselineUnavailable",
    "Tuned",
    "check_names",
    "fit_baseline",
    "run_baselines",
    "tune",
]
