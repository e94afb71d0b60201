"""Shared by both peer runners (each runs in its own virtualenv, so this file imports only the stdlib, numpy, torch).

The per-epoch test evaluation must not move any random stream, or it would change the training that follows.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the body and put Python's, NumPy's and torch's global random states back as they were."""
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
