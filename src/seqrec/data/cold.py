"""Cold-start split (``data.cold_item_fraction``, default 0 = off): items no model ever trains on.

A seeded ``fraction`` of the catalogue (at least one item, drawn uniformly from a stream of its own, so the rest of
the split does not move) is held out entirely from training: every occurrence is removed from the training
sequences (neighbours on either side become consecutive), so no such item is a training input or target. The
catalogue keeps them, so rankings stay full-catalogue.

Evaluation then has three sets from the split it starts from (leave-one-out or global temporal):

- ``valid`` and ``test``: the users whose target is a warm (trained) item, as before;
- ``cold``: the test users whose target is a cold item, with their usual test input.

Evaluation inputs are left as the split made them (a held-out item can be in a history, as a new item would be
at serving time): they are never training data. A text model can score a cold item from its text; an ID model
only has the untrained (and, under a softmax loss, pushed-down) embedding, so its hits there are ~0.
"""

from __future__ import annotations

import numpy as np

from seqrec.data.sequences import EvalSet, Sequences
from seqrec.data.split import Split

COLD_STREAM = 0xC01D  # seeds the cold-item draw apart from the data seed's other uses


def cold_items(num_items: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted dense ids (1..num_items) of the held-out items: round(fraction * num_items), at least one."""
    if not 0 < fraction < 1:
        raise ValueError(f"cold item fraction must be in (0, 1), got {fraction}")
    n = min(num_items, max(1, round(fraction * num_items)))
    rng = np.random.default_rng([seed, COLD_STREAM])
    return np.sort(rng.choice(np.arange(1, num_items + 1, dtype=np.int64), size=n, replace=False))


def _subset(ev: EvalSet, keep: np.ndarray) -> EvalSet:
    rows = np.flatnonzero(keep)
    lengths = ev.inputs.lengths()[rows]
    idx = np.repeat(ev.inputs.offsets[rows], lengths) + (
        np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    inputs = Sequences.from_lengths(lengths, np.asarray(ev.inputs.values)[idx])
    return EvalSet(users=np.asarray(ev.users)[rows], inputs=inputs, targets=np.asarray(ev.targets)[rows])


def without_items(seqs: Sequences, drop: np.ndarray) -> Sequences:
    """``seqs`` with every value flagged in ``drop`` ((V + 1,) bool) removed, row order and count kept."""
    values = np.asarray(seqs.values)
    keep = ~drop[values]
    rows = np.repeat(np.arange(len(seqs)), seqs.lengths())
    lengths = np.bincount(rows[keep], minlength=len(seqs)).astype(np.int64)
    return Sequences.from_lengths(lengths, values[keep])


def hold_out_cold_items(split: Split, num_items: int, fraction: float, seed: int) -> tuple[Split, EvalSet]:
    """(split with cold items out of training and cold targets out of valid/test, the cold-target test set)."""
    cold = cold_items(num_items, fraction, seed)
    is_cold = np.zeros(num_items + 1, dtype=bool)
    is_cold[cold] = True
    test_cold = is_cold[np.asarray(split.test.targets, dtype=np.int64)]
    valid_cold = is_cold[np.asarray(split.valid.targets, dtype=np.int64)]
    info = {**split.info, "cold_items": len(cold), "cold_test_users": int(test_cold.sum()),
            "cold_valid_users_dropped": int(valid_cold.sum())}
    out = Split(without_items(split.train, is_cold), _subset(split.valid, ~valid_cold),
                _subset(split.test, ~test_cold), info)
    return out, _subset(split.test, test_cold)


def hold_out_reference(
    train: list[list[int]], valid: list[tuple], test: list[tuple], cold: set[int]
) -> tuple[list[list[int]], list[tuple], list[tuple], list[tuple]]:
    """Plain-Python :func:`hold_out_cold_items` on lists: (train, valid, warm test, cold test)."""
    return ([[i for i in s if i not in cold] for s in train], [v for v in valid if v[2] not in cold],
            [t for t in test if t[2] not in cold], [t for t in test if t[2] in cold])
