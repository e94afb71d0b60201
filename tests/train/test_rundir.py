"""Run-directory lock: one trainer per directory, released when its process dies (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqrec.errors import DataError
from seqrec.train.rundir import LOCK, RunLock

SRC = Path(__file__).resolve().parents[2] / "src"
HOLD = """
import sys, time
from pathlib import Path
from seqrec.train.rundir import RunLock
with RunLock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(60)
"""


def _holder(run: Path, marker: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(marker)],
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "lock holder did not start"
        time.sleep(0.05)
    return proc


def test_second_trainer_gets_one_line_error_and_lock_dies_with_kill_9(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run, tmp_path / "marker")
    try:
        with pytest.raises(DataError, match="another seqrec process") as err, RunLock(run):
            pass
        assert "\n" not in str(err.value) and str(run) in str(err.value)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunLock(run):  # the kernel dropped the dead process's lock
        assert (run / LOCK).exists()


def test_a_run_that_never_started_leaves_no_directory(tmp_path):
    run = tmp_path / "new"
    with pytest.raises(RuntimeError), RunLock(run):
        raise RuntimeError("bad data")
    assert not run.exists()


def test_unfinished_run_needs_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    (run / "last").mkdir(parents=True)
    with pytest.raises(DataError, match="--resume"), RunLock(run):
        pass
    with RunLock(run, overwrite=True) as lock:
        lock.clear()
    assert not (run / "last").exists()
