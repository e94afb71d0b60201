"""Ragged integer sequences stored as CSR arrays, and the containers a split produces.

Every per-user sequence in seqrec lives in two flat arrays (``offsets`` and ``values``) rather than a list of
Python lists: they are compact, can be memory-mapped from ``.npy`` files and sliced without copying.
Item ids are dense and 1-based; 0 is reserved for padding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sequences:
    """``len(offsets) - 1`` sequences; sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0, non-decreasing
    values: np.ndarray  # (nnz,) int32 item ids (or int64 timestamps when used for times)

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError("Sequences.offsets must be a 1-D array starting at 0")
        if int(self.offsets[-1]) != len(self.values):
            raise ValueError("Sequences.offsets[-1] must equal len(values)")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nnz(self) -> int:
        return len(self.values)

    @classmethod
    def from_lists(cls, seqs: list[list[int]] | list[np.ndarray], dtype: type = np.int32) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = (
            np.concatenate([np.asarray(s, dtype=dtype) for s in seqs]) if len(seqs) else np.zeros(0, dtype)
        )
        return cls(offsets, values.astype(dtype, copy=False))

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, values: np.ndarray) -> Sequences:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(offsets, values)

    def tolist(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str, mmap: bool = True) -> Sequences:
        directory = Path(directory)
        mode = "r" if mmap else None
        return cls(
            np.load(directory / f"{name}.offsets.npy", mmap_mode=mode, allow_pickle=False),
            np.load(directory / f"{name}.values.npy", mmap_mode=mode, allow_pickle=False),
        )


@dataclass(frozen=True)
class EvalSet:
    """One held-out target per evaluated user, with exactly the history the model may see.

    ``inputs[i]`` is everything the split allows as model input for user ``users[i]`` (chronological, never
    containing the target or anything after it). Seen-item filtering removes ``inputs[i]`` from the ranking.
    """

    users: np.ndarray  # (n,) int64 dense user index
    inputs: Sequences  # n histories
    targets: np.ndarray  # (n,) int64 dense item id (1..num_items)

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class PreparedData:
    """A preprocessed, split dataset: what training and evaluation consume."""

    name: str
    num_users: int
    num_items: int  # items are 1..num_items; 0 is padding
    train: Sequences  # (num_users rows) chronological training sequence of each user (may be empty)
    valid: EvalSet
    test: EvalSet
    item_ids: np.ndarray  # (num_items + 1,) original item id as str; index 0 is "<pad>"
    user_ids: np.ndarray  # (num_users,) original user id as str
    item_popularity: np.ndarray  # (num_items + 1,) int64 training interactions per item (index 0 = 0)
    split: str = "leave_one_out"
    item_features: object | None = None  # polars.DataFrame keyed by dense item id (column "item"), if any
    stats: dict = field(default_factory=dict)
    cold: EvalSet | None = None  # data.cold_item_fraction > 0: test users whose target was held out of training

    def item_index(self) -> dict[str, int]:
        """Original item id → dense id."""
        return {str(v): i for i, v in enumerate(self.item_ids) if i > 0}
