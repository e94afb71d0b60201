"""Option groups: frozen, defaults of the functional losses, bad values rejected at construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seqrec.losses import LossOptions, NegativeOptions


def test_defaults():
    assert LossOptions() == LossOptions(
        chunk_size=None, ignore_index=0, label_smoothing=0.0, filter_eps=None, reduction="mean", kernel="auto"
    )
    neg = NegativeOptions(7)
    assert (neg.sampler, neg.shared, neg.item_counts) == ("uniform", False, None)
    assert (neg.popularity_alpha, neg.logq) == (0.75, None)


def test_frozen_and_replace():
    opts = LossOptions(chunk_size=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.chunk_size = 8  # type: ignore[misc]
    assert dataclasses.replace(opts, reduction="sum") == LossOptions(chunk_size=4, reduction="sum")


def test_item_counts_do_not_break_equality():
    counts = np.arange(10)
    assert NegativeOptions(3, sampler="popularity", item_counts=counts) == NegativeOptions(3, sampler="popularity")


@pytest.mark.parametrize(("key", "value"), [("kernel", "cuda"), ("reduction", "avg")])
def test_bad_values_raise(key, value):
    with pytest.raises(ValueError, match=key):
        LossOptions(**{key: value})
