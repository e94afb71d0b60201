"""Test fixtures: an isolated cache folder and the shared real datasets (skipped if absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test writes its data cache under its own tmp folder, never into ~/.cache."""
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "seqrec-cache"))


def _shared_candidates() -> list[Path]:
    out = []
    env = os.environ.get("SEQREC_DATA_DIR")
    if env:
        out.append(Path(env))
    out += [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / ".." / "shared" / "data"]
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding ``ml-100k/ml-100k.inter`` etc. (``$SEQREC_DATA_DIR`` or ``../shared/data``)."""
    for cand in _shared_candidates():
        if (cand / "ml-100k" / "ml-100k.inter").is_file():
            return cand.resolve()
    pytest.skip("shared datasets not found (set SEQREC_DATA_DIR or provide ../shared/data)")
