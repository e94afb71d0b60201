"""Repeat diagnostics of an evaluation set: how many targets the seen-item filter makes unreachable.

With ``eval.filter_seen=true`` the user's input items are removed from the ranking, so a target the user already
consumed is a guaranteed miss: HR@K and NDCG@K can be at most the share of targets NOT in the input. On a
repeat-heavy log (music, groceries) that cap can be very low (83% repeat targets cap HR@10 at 0.17), and every
model looks bad for a reason that has nothing to do with it. These numbers say so, next to the metric.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from seqrec.data.sequences import EvalSet

UNREACHABLE_WARNING = 0.2  # warn when the seen-filter removes more than this share of targets


@dataclass(frozen=True)
class RepeatDiagnostics:
    num_targets: int
    target_in_input: float  # share of targets somewhere in the user's input
    target_is_last: float  # share of targets equal to the last input item (consecutive repeats)
    filter_seen: bool  # whether the seen-filter is on in the evaluation these numbers describe
    reachable: float  # share of targets the ranking can still hit (1 - target_in_input under filter_seen)

    def to_dict(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def warning(self, threshold: float = UNREACHABLE_WARNING) -> str | None:
        """One line when the seen-filter makes more than ``threshold`` of the targets unreachable, else None."""
        unreachable = 1.0 - self.reachable
        if not self.filter_seen or unreachable <= threshold:
            return None
        return (
            f"{unreachable:.0%} of the targets are already in the user's input and eval.filter_seen=true removes "
            f"them from the ranking: HR/NDCG@K are at most {self.reachable:.3f}; "
            f"set eval.filter_seen=false to evaluate repeat consumption"
        )

    def phrase(self, name: str, value: float) -> str:
        """``"HR@10 0.045 of at most 0.17 reachable"`` (just ``"HR@10 0.045"`` when nothing is unreachable)."""
        return capped(name, value, self.reachable)


def capped(name: str, value: float, cap: float) -> str:
    """A metric phrased against its ceiling: ``capped("HR@10", 0.045, 0.17)`` -> ``"HR@10 0.045 of at most 0.17
    reachable"``; a cap of 1 (nothing filtered) gives just ``"HR@10 0.045"``."""
    if cap >= 1.0:
        return f"{name} {value:.3f}"
    return f"{name} {value:.3f} of at most {cap:.3g} reachable"


def repeat_diagnostics(eval_set: EvalSet, filter_seen: bool = True) -> RepeatDiagnostics:
    """Repeat shares of ``eval_set`` (vectorised over the CSR inputs, no per-user loop)."""
    n = len(eval_set)
    if n == 0:
        return RepeatDiagnostics(0, 0.0, 0.0, filter_seen, 1.0)
    offsets = np.asarray(eval_set.inputs.offsets, dtype=np.int64)
    values = np.asarray(eval_set.inputs.values, dtype=np.int64)
    targets = np.asarray(eval_set.targets, dtype=np.int64)
    lengths = np.diff(offsets)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)  # (nnz,) which user each input item belongs to
    hit = np.zeros(n, dtype=bool)
    hit[row_of[values == targets[row_of]]] = True  # any input position equal to that user's target
    nonempty = lengths > 0
    last = np.zeros(n, dtype=np.int64)  # (n,) last input item, 0 for an empty input
    last[nonempty] = values[offsets[1:][nonempty] - 1]
    in_input = float(hit.mean())
    return RepeatDiagnostics(
        num_targets=n,
        target_in_input=in_input,
        target_is_last=float((nonempty & (last == targets)).mean()),
        filter_seen=filter_seen,
        reachable=1.0 - in_input if filter_seen else 1.0,
    )


def repeat_diagnostics_reference(eval_set: EvalSet, filter_seen: bool = True) -> RepeatDiagnostics:
    """Plain-Python reference of :func:`repeat_diagnostics` (for the tests)."""
    n = len(eval_set)
    if n == 0:
        return RepeatDiagnostics(0, 0.0, 0.0, filter_seen, 1.0)
    seen = last = 0
    for i in range(n):
        history, target = eval_set.inputs[i].tolist(), int(eval_set.targets[i])
        seen += target in history
        last += bool(history) and history[-1] == target
    return RepeatDiagnostics(n, seen / n, last / n, filter_seen, 1.0 - seen / n if filter_seen else 1.0)
