"""seqrec: sequential recommenders that are fast, lean and evaluated correctly.

Public API: :class:`Dataset` and :class:`Recommender` (see :mod:`seqrec.api`); the CLI ``seqrec`` calls them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from seqrec.version import __version__

# OpenMP threads that finish early sleep at the barrier instead of spinning (unless the user chose a policy).
# With one of two cores busy with another process, spinning keeps the OS from moving the descheduled thread
# onto the idle core, and every small op waits for a time slice: the ML-100K SASRec epoch took 13.8 s
# spinning vs 6.6 s passive (4.1 / 4.9 s idle), and the chunked CE 30.1 s vs 14.5 s
# (benchmarks/busy_core.py). libgomp reads this once, when torch loads, so it must be set before that.
if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__all__ = ["Dataset", "EvalResult", "Recommender", "__version__"]

if TYPE_CHECKING:
    from seqrec.api import Dataset, Recommender
    from seqrec.eval.ranking import EvalResult


def __getattr__(name: str) -> Any:
    # Lazy: `import seqrec` (and `seqrec --help`) stays fast; torch loads when the API is first used.
    if name in ("Dataset", "Recommender"):
        from seqrec import api

        return getattr(api, name)
    if name == "EvalResult":
        from seqrec.eval.ranking import EvalResult

        return EvalResult
    raise AttributeError(f"module 'seqrec' has no attribute {name!r}")
