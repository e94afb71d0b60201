"""Fixtures of the benchmark tests: fabricated results stores (see bench_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import fake_store, seed_like_store


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """Two seeds per row, one dataset done and one skipped, popularity stored (tests/bench/bench_helpers.py)."""
    fake_store(tmp_path / "a")
    return tmp_path / "a"


@pytest.fixture
def seed_like(tmp_path: Path) -> Path:
    """The seed grid's shape: 18 done cells on two datasets, 9 skipped."""
    seed_like_store(tmp_path / "seed")
    return tmp_path / "seed"
