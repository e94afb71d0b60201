"""End-to-end CLI: train/evaluate/recommend on tiny synthetic data, and one-line errors that lose nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqrec.cli import app

runner = CliRunner()
TINY = [
    "--set", "data.synthetic.num_users=150", "--set", "data.synthetic.num_items=60",
    "--set", "data.synthetic.mean_length=12", "--set", "data.max_len=10", "--set", "train.epochs=2",
    "--set", "train.progress=false", "--set", "eval.bootstrap=20", "--set", "model.hidden=16",
]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    out = root / "run"
    res = runner.invoke(app, ["train", "--output", str(out), "--data-dir", str(root / "data"), *TINY])
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_run_directory(trained: Path):
    for name in ("metrics.json", "model.safetensors", "config.yaml", "history.jsonl", "items.json"):
        assert (trained / name).is_file()
    m = json.loads((trained / "metrics.json").read_text())
    keys = {"HR@10", "NDCG@10", "MRR@10", "Recall@10", "Coverage@10", "Surprisal@10"}
    assert keys <= set(m["valid"]) and keys <= set(m["test"])
    assert len((trained / "history.jsonl").read_text().splitlines()) == m["epochs_trained"] == 2
    assert m["params"] > 0 and "popularity" in m["baselines"]


def test_evaluate_reproduces_training_metrics(trained: Path):
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(trained), "--data-dir", str(trained.parent / "data")])
    assert res.exit_code == 0, res.output
    m = json.loads((trained / "metrics.json").read_text())
    printed = json.loads(res.output[res.output.index("{") :])
    for k, v in m["test"].items():
        assert printed["test"][k] == pytest.approx(v, abs=1e-9)


def test_recommend_returns_unseen_original_ids(trained: Path):
    items = json.loads((trained / "items.json").read_text())
    history = items[1:6]
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--history", ",".join(history), "--k", "10"])
    assert res.exit_code == 0, res.output
    recs = res.output.strip().split(",")
    assert len(recs) == 10 and len(set(recs)) == 10
    assert not set(recs) & set(history)
    assert set(recs) <= set(items[1:])


def test_recommend_for_users_file(trained: Path, tmp_path: Path):
    users = tmp_path / "users.txt"
    users.write_text("1\n2\n")
    res = runner.invoke(app, ["recommend", "--checkpoint", str(trained), "--users", str(users),
                              "--data-dir", str(trained.parent / "data")])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")[1].split(",")) == 10 for line in lines)


def _bad_file_cases(tmp: Path) -> dict[str, tuple[Path, list[str], str]]:
    good = "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{u * 100 + i}\n" for u in range(1, 8) for i in range(1, 9))
    malformed = tmp / "malformed.csv"
    malformed.write_text(good + "9,3\n")
    missing = tmp / "missing.csv"
    missing.write_text(good.replace("timestamp", "time"))
    empty = tmp / "empty.csv"
    empty.write_text("")
    nonint = tmp / "nonint.txt"
    nonint.write_text("1 2\n1 3\nabc 4\n")
    return {
        "malformed row": (malformed, ["--set", "data.format=csv"], "malformed.csv"),
        "missing column": (missing, ["--set", "data.format=csv"], "timestamp"),
        "empty file": (empty, ["--set", "data.format=csv"], "empty.csv"),
        "non-integer id": (nonint, ["--set", "data.format=sasrec"], "nonint.txt"),
    }


@pytest.mark.parametrize("case", ["malformed row", "missing column", "empty file", "non-integer id", "unknown key"])
def test_bad_input_one_line_error_loses_nothing(case: str, trained: Path, tmp_path: Path):
    data_dir = trained.parent / "data"
    run_dir = trained
    before_run, before_data = tree_digest(run_dir), tree_digest(data_dir)
    if case == "unknown key":
        args = ["--set", "train.learning_rate=0.1"]
        needle = "train.learning_rate"
    else:
        path, extra, needle = _bad_file_cases(tmp_path)[case]
        args = ["--set", "data.name=file", "--set", f"data.path={path}", *extra]
    res = runner.invoke(app, ["train", "--output", str(run_dir), "--data-dir", str(data_dir), *TINY, *args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in res.output
    assert tree_digest(run_dir) == before_run
    assert tree_digest(data_dir) == before_data
