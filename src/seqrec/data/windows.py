"""Training windows: every position of every training sequence is a target exactly once per epoch.

A user sequence of length n is cut, from its end, into windows of ``max_len + 1`` items that overlap by one
item (the last input of a window is the first target of the next): window ends are n, n - L, n - 2L, ... .
Models that predict only the newest item of a window (Recformer reads a whole history as one text) take
``stride=1`` instead: one window per target position, ends n, n - 1, ..., 2, each ending at its target.
Windows are built as index arrays once, then gathered per batch with vectorised numpy (no Python lists).

Batches can be cut to their longest row (:func:`trim_leading_padding`) for models whose real positions do not
see the padding (``SequenceModel.padding_invariant``); :func:`length_grouped_batches` makes that cut large by
batching windows of similar length together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

from seqrec.data.sequences import Sequences

if TYPE_CHECKING:
    import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, "torch.Tensor")


def window_index(seqs: Sequences, max_len: int, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, ends): one entry per window; window = seqs[row][max(0, end - L - 1): end], L = max_len.

    ``stride``: distance between consecutive window ends of a row (None = ``max_len``: every target in exactly
    one window; 1: one window per target position).
    """
    step = max_len if stride is None else stride
    if step < 1:
        raise ValueError(f"window stride must be >= 1, got {step}")
    lengths = seqs.lengths()
    n_targets = np.maximum(lengths - 1, 0)  # positions that have a previous item
    n_windows = -(-n_targets // step)  # ceil
    rows = np.repeat(np.arange(len(seqs), dtype=np.int64), n_windows)
    # k-th window of a row (k = 0 is the newest) ends at length - k * step.
    first = np.cumsum(n_windows) - n_windows
    k = np.arange(int(n_windows.sum()), dtype=np.int64) - np.repeat(first, n_windows)
    ends = lengths[rows] - k * step
    return rows, ends


def gather_windows(seqs: Sequences, rows: np.ndarray, ends: np.ndarray, max_len: int) -> np.ndarray:
    """(B, max_len + 1) int64, left-padded with 0."""
    width = max_len + 1
    starts = np.asarray(seqs.offsets[rows], dtype=np.int64)
    abs_end = starts + ends
    idx = abs_end[:, None] - width + np.arange(width)[None, :]  # (B, L + 1)
    valid = idx >= starts[:, None]
    values = np.asarray(seqs.values)
    return np.where(valid, values[np.clip(idx, 0, max(len(values) - 1, 0))], 0).astype(np.int64)


def trim_leading_padding(batch: ArrayOrTensor, spare: int = 1) -> ArrayOrTensor:
    """Cut the leading all-padding columns of a left-padded ``batch`` (B, W), numpy or torch, but ``spare`` of them.

    One spare column keeps the cut exact for every padding-invariant model: BERT4Rec drops a window's or a
    history's oldest column (to shift in [MASK]), which must then be padding, never the longest row's first item.
    """
    width = batch.shape[1]
    longest = int((batch != 0).sum(1).max()) if batch.shape[0] else width  # real items are never 0
    return batch[:, max(width - longest - spare, 0) :]


def length_grouped_batches(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, group: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of ``order`` (a permutation of window ids) that group windows of similar ``lengths``.

    ``group`` = 0: consecutive slices of ``order``. ``group`` = G: each run of G * batch_size ids of ``order`` is
    stably sorted by length (longest first) and sliced; the full batches are then shuffled with ``rng`` and any
    short one stays last. Every id appears in exactly one batch either way.
    """
    if group > 0:
        run = np.arange(len(order)) // (group * batch_size)  # (n,) which run each position belongs to
        order = order[np.lexsort((-lengths[order], run))]  # by run, then longest first, ties keep order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group > 0:
        full = len(order) // batch_size
        batches[:full] = [batches[i] for i in rng.permutation(full)]
    return batches
