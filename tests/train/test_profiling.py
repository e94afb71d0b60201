"""--profile writes a Chrome trace and prints the top-ops table; --dry-run runs one step and prints estimates."""

from __future__ import annotations

import json
from pathlib import Path

from train_helpers import TINY
from typer.testing import CliRunner

from seqrec.cli import app

runner = CliRunner()


def _args(tmp: Path, *extra: str) -> list[str]:
    sets = [x for kv in TINY for x in ("--set", kv)]
    return ["train", "--output", str(tmp / "run"), "--data-dir", str(tmp / "data"), *sets, *extra]


def test_profile_writes_trace_and_top_ops_table(tmp_path):
    res = runner.invoke(app, [*_args(tmp_path, "--set", "train.profile_steps=2"), "--profile"])
    assert res.exit_code == 0, res.output
    trace = tmp_path / "run" / "profile" / "trace.json"
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("name", "").startswith("aten::") for e in events)
    assert "Self CPU" in res.output and "CPU Mem" in res.output and "aten::" in res.output
    assert (tmp_path / "run" / "profile" / "top_ops.txt").is_file()
    assert not (tmp_path / "run" / "metrics.json").exists()  # profiling does not train a run


def test_dry_run_prints_params_estimate_and_one_step(tmp_path):
    res = runner.invoke(app, [*_args(tmp_path), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dry run:" in res.output and "params" in res.output and "MiB per step" in res.output
    assert "one step" in res.output and "peak memory" in res.output
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_is_one_line_error(tmp_path):
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "nothing")])
    assert res.exit_code == 2
    assert "no checkpoint to resume from" in res.output and "Traceback" not in res.output
