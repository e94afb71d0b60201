"""Checkpoint/resume: a resumed run ends with exactly the metrics of an uninterrupted one; corruption falls back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from train_helpers import TINY, tiny_config, train_run

from seqrec.errors import CheckpointError
from seqrec.train.resume import LAST, PREV, TENSORS, load_checkpoint, resume_config

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted 3-epoch run (its ``last.prev`` is the epoch-2 checkpoint)."""
    root = tmp_path_factory.mktemp("ref")
    train_run(tiny_config(), root / "run", data_dir=root / "data")
    return root / "run", root / "data"


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _same_results(a: Path, b: Path) -> None:
    ma, mb = _metrics(a), _metrics(b)
    assert ma["test"] == mb["test"] and ma["valid"] == mb["valid"] and ma["test_ci95"] == mb["test_ci95"]
    assert ma["best_epoch"] == mb["best_epoch"] and ma["epochs_trained"] == mb["epochs_trained"]
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    hist = [json.loads(x)["train_loss"] for x in (b / "history.jsonl").read_text().splitlines()]
    assert hist == [json.loads(x)["train_loss"] for x in (a / "history.jsonl").read_text().splitlines()]


def test_checkpoint_layout_and_resume_from_epoch_boundary(reference, tmp_path):
    run, data = reference
    assert (run / LAST / TENSORS).is_file() and (run / PREV / TENSORS).is_file()
    state, _ = load_checkpoint(run)
    assert state["loop"]["epoch"] == 3 and len(state["loop"]["history"]) == 3
    resumed = tmp_path / "run"
    resumed.mkdir()
    shutil.copytree(run / PREV, resumed / LAST)  # state after epoch 2
    cfg = resume_config(resumed)
    assert cfg == tiny_config()
    train_run(cfg, resumed, data_dir=data, resume=True)
    _same_results(run, resumed)


def test_corrupted_checkpoint_falls_back_to_previous(reference, tmp_path):
    run, data = reference
    resumed = tmp_path / "run"
    resumed.mkdir()
    shutil.copytree(run / PREV, resumed / PREV)  # good epoch-2 state
    shutil.copytree(run / LAST, resumed / LAST)
    tensors = resumed / LAST / TENSORS
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])  # truncated
    console = Console(record=True, width=400)
    train_run(resume_config(resumed), resumed, data_dir=data, resume=True, console=console)
    text = console.export_text()
    warning = next(line for line in text.splitlines() if line.startswith("warning:"))
    assert "corrupted or truncated" in warning and str(tensors) in warning
    assert "resumed from" in text and f"{PREV} after epoch 2" in text
    _same_results(run, resumed)


def test_no_usable_checkpoint_is_one_line_error(reference, tmp_path):
    run, _ = reference
    bad = tmp_path / "run"
    shutil.copytree(run / LAST, bad / LAST)
    (bad / LAST / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value) and "state.json" in str(err.value)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


KILLABLE = """
import sys, time
from pathlib import Path
from seqrec.config import build_config
from seqrec.api import Recommender
from seqrec.train.trainer import Trainer

out, data, marker = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
original = Trainer.train_batches

def slow_after_first_checkpoint(self, batches):
    done = self.scheduler.last_epoch  # optimizer steps so far
    if (out / "last").exists() and done > self.steps_per_epoch and done % self.steps_per_epoch:
        # at least one step into epoch 2 or later, not at its boundary; written then renamed, so the
        # test never sees the file before its text (a plain write_text raced the reader on CI)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(done))
        tmp.replace(marker)
        time.sleep(30)
    return original(self, batches)

Trainer.train_batches = slow_after_first_checkpoint
Recommender(build_config({}, sys.argv[4:])).fit(output_dir=out, data_dir=data)
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(reference, tmp_path):
    run, data = reference
    out, marker = tmp_path / "run", tmp_path / "mid-epoch"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(out), str(data), str(marker), *TINY], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert int(marker.read_text()) > 0
    assert not (out / "metrics.json").exists() and (out / LAST).is_dir()
    res = subprocess.run(
        [sys.executable, "-m", "seqrec.cli", "train", "--resume", str(out), "--data-dir", str(data)],
        env=env, capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    _same_results(run, out)
