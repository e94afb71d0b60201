"""Benchmark runs that train (each cell is a subprocess, a few seconds each): done/failed cells in the store and
resuming after ``kill -9`` in the middle of a cell. Marked slow; CI runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from seqrec.bench.pivot import COLUMNS
from seqrec.bench.report import write_report
from seqrec.bench.runner import run_bench
from seqrec.bench.store import ResultStore

pytestmark = pytest.mark.slow

TINY = {
    "data": {"name": "synthetic", "synthetic": {"num_users": 150, "num_items": 60, "mean_length": 12}},
    "train": {"epochs": 2, "threads": 1, "progress": False},
    "eval": {"bootstrap": 20},
    "model": {"hidden": 16},
}


def write_grid(path: Path, sweep: dict, fixed: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({"name": "tiny", "fixed": fixed or TINY, "sweep": sweep}))
    return path


def statuses(out: Path) -> dict[str, str]:
    db = out / "results.sqlite"
    if not db.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        rows = conn.execute("SELECT id, status FROM cells").fetchall()
        conn.close()
    except sqlite3.Error:
        return {}
    return dict(rows)


def test_done_failed_and_skipped_cells(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,i1,notatime\n")
    fixed = {**TINY, "data": {**TINY["data"], "path": str(bad), "format": "csv"}}
    grid = write_grid(tmp_path / "g.yaml", {"data.name": ["synthetic", "file", "ml-1m"]}, fixed)
    out = tmp_path / "out"
    summary = run_bench(grid, out, data_dir=tmp_path / "data")
    assert len(summary.ran) == 2 and len(summary.failed) == 1 and len(summary.skipped) == 1
    store = ResultStore.open(out, create=False)
    cells = {c.config["data"]["name"]: c for c in store.cells()}
    assert cells["synthetic"].status == "done"
    assert cells["file"].status == "failed" and "bad.csv" in (cells["file"].reason or "")
    assert cells["ml-1m"].status == "skipped"
    done = cells["synthetic"]
    m = store.metrics(done.id)
    for name in ("epoch_time_max_s", "epoch_time_avg_s", "epoch_time_sum_s", "peak_memory_mb", "utilisation_pct",
                 "grad_norm_max", "lr", "train_loss", "params", "epochs_trained", "HR@10", "NDCG@10", "MRR@10",
                 "Recall@10", "Coverage@10", "Surprisal@10", "throughput_seq_s", "loss_memory_mb"):
        assert m[name][0] is not None, name
    assert m["NDCG@10"][1] is not None and m["NDCG@10"][2] is not None
    assert len(store.epochs(done.id)) == 2
    assert m["kcore_min_user"][0] == 5 and m["kcore_min_item"][0] == 5  # the synthetic default, resolved
    env = done.environment
    assert env["torch"] and env["device"] == "cpu" and "git_commit" in env and env["python"]
    store.close()
    again = run_bench(grid, out, data_dir=tmp_path / "data")  # done and failed are not re-run
    assert not again.ran and len(again.cached) == 2
    assert "k-core users ≥ 5, items ≥ 5" in write_report(out).markdown.read_text()


def comparable(csv_text: str) -> list[dict[str, str]]:
    cost = {c.key for c in COLUMNS if c.cost}
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    return [{k: v for k, v in r.items() if k.rsplit("_ci_", 1)[0] not in cost} for r in rows]


def kill_bench_when(grid: Path, out: Path, data: Path, ready, what: str, timeout: float = 120,
                    poll: float = 0.1) -> None:
    """Run ``seqrec bench`` in a subprocess, SIGKILL it as soon as ``ready()`` holds (failing the test if the bench
    finishes first or ``timeout`` passes: ``what`` names the awaited state), and give its cell time to die."""
    cmd = [sys.executable, "-c", "from seqrec.cli import main; main()", "bench", str(grid), "--output", str(out),
           "--data-dir", str(data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if ready():
                break
            assert proc.poll() is None, "the bench finished before it could be killed"
            time.sleep(poll)
        else:
            pytest.fail(f"no {what} seen")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # the cell process dies with its parent (PR_SET_PDEATHSIG)


def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path: Path):
    grid = write_grid(tmp_path / "g.yaml", {"model.name": ["sasrec"], "data.max_len": [6, 8, 10]})
    data = tmp_path / "data"
    out = tmp_path / "killed"

    def one_done_next_running() -> bool:
        st = statuses(out)
        return "done" in st.values() and "running" in st.values()

    kill_bench_when(grid, out, data, one_done_next_running, "running cell")
    before = statuses(out)
    done_before = {k for k, v in before.items() if v == "done"}
    assert "running" in before.values() and done_before
    resumed = run_bench(grid, out, data_dir=data)
    assert set(resumed.cached) == done_before  # finished cells are not re-run
    after = statuses(out)
    assert len(after) == 3 and set(after.values()) == {"done"}
    assert set(resumed.ran) == set(after) - done_before
    assert {k for k, v in before.items() if v == "running"} <= set(resumed.ran)  # the killed cell ran again
    clean = tmp_path / "clean"
    run_bench(grid, clean, data_dir=data)
    a, b = write_report(out), write_report(clean)
    assert comparable(a.csv.read_text()) == comparable(b.csv.read_text())


def test_an_interrupted_cell_continues_from_its_epoch_checkpoint(tmp_path: Path):
    """Killed after a few epochs, the cell resumes from ``run/last`` in the next sitting (not from scratch), its
    wall time adds the checkpoint's training seconds, and every number but the timings equals an uninterrupted
    run."""
    slow = {**TINY, "train": {**TINY["train"], "epochs": 40, "patience": 40}}
    grid = write_grid(tmp_path / "g.yaml", {"model.name": ["sasrec"]}, slow)
    data = tmp_path / "data"
    out = tmp_path / "killed"

    def third_checkpoint() -> bool:
        for state in out.glob("cells/*/run/last/state.json"):
            try:
                return json.loads(state.read_text())["state"]["loop"]["epoch"] >= 3
            except (OSError, ValueError):
                return False  # being swapped in
        return False

    kill_bench_when(grid, out, data, third_checkpoint, "checkpoint", timeout=180, poll=0.05)
    assert set(statuses(out).values()) == {"running"}
    cell_dir = next(out.glob("cells/*"))
    after = json.loads((cell_dir / "run" / "last" / "state.json").read_text())["state"]["loop"]["epoch"]
    resumed = run_bench(grid, out, data_dir=data)
    assert len(resumed.ran) == 1 and set(statuses(out).values()) == {"done"}
    assert f"after epoch {after} (" in (cell_dir / "stdout.log").read_text()
    result = json.loads((cell_dir / "cell.json").read_text())
    assert result["resumed"]["after_epoch"] == after and result["resumed"]["earlier_train_s"] > 0
    store = ResultStore.open(out, create=False)
    (cell,) = store.cells()
    assert cell.environment["resumed"]["after_epoch"] == after
    assert cell.wall_s > result["wall_s"]  # this sitting's wall plus the training the checkpoint held
    assert [e["epoch"] for e in store.epochs(cell.id)] == list(range(1, 41))
    store.close()
    clean = tmp_path / "clean"
    run_bench(grid, clean, data_dir=data)
    a, b = write_report(out), write_report(clean)
    assert comparable(a.csv.read_text()) == comparable(b.csv.read_text())


def test_parallel_cells_equal_sequential_cells(tmp_path: Path):
    """``--jobs 2`` trains two cells at once; everything but the timings equals a one-at-a-time run."""
    grid = write_grid(tmp_path / "g.yaml", {"model.name": ["sasrec", "gru4rec"], "data.max_len": [6, 8]})
    data = tmp_path / "data"
    parallel = run_bench(grid, tmp_path / "parallel", data_dir=data, jobs=2)
    assert len(parallel.ran) == 4 and not parallel.failed
    serial = run_bench(grid, tmp_path / "serial", data_dir=data, jobs=1)
    assert len(serial.ran) == 4 and not serial.failed
    a, b = write_report(tmp_path / "parallel"), write_report(tmp_path / "serial")
    assert comparable(a.csv.read_text()) == comparable(b.csv.read_text())
    store = ResultStore.open(tmp_path / "parallel", create=False)
    assert store.get_meta("jobs") == 2
    store.close()


def test_grid_resumes_from_a_store_snapshot_in_a_fresh_directory(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("store_snapshot", Path(__file__).resolve().parents[2]
                                                  / "benchmarks" / "store_snapshot.py")
    assert spec and spec.loader
    snap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snap)
    grid = write_grid(tmp_path / "g.yaml", {"model.hidden": [8, 16]})
    first = run_bench(grid, tmp_path / "a", data_dir=tmp_path / "data")
    assert len(first.ran) == 2
    snap.snapshot(tmp_path / "a", tmp_path / "repo")  # what a sitting commits
    fresh = tmp_path / "b"  # the next sitting: no cells/ directory, only the store
    fresh.mkdir()
    (fresh / "results.sqlite").write_bytes((tmp_path / "repo" / "results.sqlite").read_bytes())
    again = run_bench(grid, fresh, data_dir=tmp_path / "data")
    assert not again.ran and sorted(again.cached) == sorted(first.ran)
    assert write_report(fresh).csv.read_text().count("\n") == 1 + 2 + 1  # header, 2 cells, popularity
