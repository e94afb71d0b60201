"""seqrec: sequential recommenders that are fast, lean and evaluated correctly.

Public API: :class:`Dataset` and :class:`Recommender` (see :mod:`seqrec.api`); the CLI ``seqrec`` calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqrec.version import __version__

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
