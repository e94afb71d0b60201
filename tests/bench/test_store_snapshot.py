"""benchmarks/store_snapshot.py: a consistent, self-contained copy of a live results store, with its report."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from bench_helpers import fake_store, load_benchmark_script

from seqrec.bench.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
store_snapshot = load_benchmark_script("store_snapshot")


def _rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, status FROM cells ORDER BY ordinal").fetchall()
    finally:
        conn.close()


def _unpack(snap: Path, into: Path) -> Path:
    """What a new sitting does: gunzip -c SNAP/results.sqlite.gz > INTO/results.sqlite."""
    into.mkdir(parents=True, exist_ok=True)
    out = into / ResultStore.FILENAME
    out.write_bytes(gzip.decompress((snap / "results.sqlite.gz").read_bytes()))
    return out


def test_snapshot_of_an_open_store_is_one_file_with_a_report(tmp_path, capsys):
    live, dest = tmp_path / "live", tmp_path / "snap"
    fake_store(live)
    writer = ResultStore.open(live)  # the runner keeps the store open in WAL mode while cells run
    try:
        assert store_snapshot.main([str(live), str(dest)]) == 0
    finally:
        writer.close()
    copy = _unpack(dest, tmp_path / "unpacked")
    assert _rows(copy) == _rows(live / ResultStore.FILENAME)
    assert sorted(p.name for p in dest.iterdir()) == ["report.csv", "report.html", "report.md",
                                                      "results.sqlite.gz", "summary.json"]
    info = json.loads((dest / "summary.json").read_text())
    assert sum(info["status"].values()) == info["cells"] and info["status"]["done"] > 0
    assert info["wall_s"]["sum_over_done_cells"] > 0
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert "cells done" in capsys.readouterr().out


def test_snapshot_without_a_store_names_the_directory(tmp_path):
    with pytest.raises(SystemExit, match="no results store here"):
        store_snapshot.snapshot(tmp_path / "missing", tmp_path / "snap")


def test_report_leaves_a_store_file_untouched(tmp_path):
    live, dest = tmp_path / "live", tmp_path / "snap"
    fake_store(live)
    store_snapshot.main([str(live), str(dest)])
    copy = _unpack(dest, dest)
    before = copy.read_bytes()
    copy.chmod(0o444)  # a read-only checkout
    from seqrec.bench.report import write_report

    write_report(dest, output=tmp_path / "out")
    assert copy.read_bytes() == before and not copy.with_name(copy.name + "-wal").exists()


def test_summary_of_a_study_has_its_numbers(tmp_path):
    pytest.importorskip("sklearn")
    from bench_helpers import study_store

    study_store(tmp_path / "live")
    store_snapshot.main([str(tmp_path / "live"), str(tmp_path / "snap"), "--study", "--command", "seqrec bench X"])
    info = json.loads((tmp_path / "snap" / "summary.json").read_text())
    assert info["command"] == "seqrec bench X" and info["cells"] == 24
    study = info["study"]["ml-100k"]
    assert study["cells"] == 24 and study["forest"]["cells"] == 18 and study["budgets"]
    assert [r["feature"] for r in study["spearman"]][:3] == ["bs", "sl", "ns"]
