"""benchmarks/published_ml1m.py: runs recorded per (row, seed), protocol checked, the README table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_helpers import load_benchmark_script

published = load_benchmark_script("published_ml1m")


def _run(tmp: Path, seed: int, ndcg: float, ranking: str = "full",
         train: str = "batch_size: 128, patience: 10") -> Path:
    d = tmp / f"run{seed}-{ranking}-{len(list(tmp.iterdir()))}"
    d.mkdir()
    (d / "config.yaml").write_text(f"train: {{seed: {seed}, {train}}}\nloss: {{name: ce}}\nmodel: {{name: sasrec}}\n"
                                   "data: {name: ml-1m, max_len: 200}\n")
    metrics = {
        "protocol": {"split": "leave_one_out", "ranking": ranking, "filter_seen": True, "max_len": 200},
        "dataset": "ml-1m", "num_test_users": 6040, "model": "sasrec",
        "test": {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "MRR@10": ndcg / 2},
        "test_ci95": {"NDCG@10": [ndcg - 0.01, ndcg + 0.01], "HR@10": [0.3, 0.33]},
        "valid": {"NDCG@10": ndcg}, "epochs_trained": 50, "best_epoch": 40, "train_time_s": 100.0,
        "total_time_s": 120.0, "environment": {"threads": 1},
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_runs_accumulate_per_seed_and_replace_a_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(published, "RESULTS", tmp_path / "published.json")
    published.main(["--add", f"sasrec-ce={_run(tmp_path, 42, 0.18)}"])
    published.main(["--add", f"sasrec-ce={_run(tmp_path, 43, 0.19)}"])
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    published.main(["--add", f"sasrec-ce={_run(rerun, 43, 0.17)}"])
    doc = json.loads((tmp_path / "published.json").read_text())
    assert [(r["seed"], r["test"]["NDCG@10"]) for r in doc["runs"]] == [(42, 0.18), (43, 0.17)]  # 43 re-run
    table = published.table(doc)
    assert "| 2 | 0.1750 ± 0.0071 |" in table and "42: 0.1800 [0.1700, 0.1900]" in table
    assert "not run yet" in table  # the rows without runs are listed


def test_a_run_off_the_published_protocol_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(published, "RESULTS", tmp_path / "published.json")
    with pytest.raises(SystemExit, match="ranking='sampled'"):
        published.main(["--add", f"sasrec-ce={_run(tmp_path, 42, 0.18, ranking='sampled')}"])
    with pytest.raises(SystemExit, match="ROW=RUN_DIR"):
        published.main(["--add", f"nope={tmp_path}"])
    assert not (tmp_path / "published.json").exists()


def test_a_run_of_another_recipe_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(published, "RESULTS", tmp_path / "published.json")
    ce_run = _run(tmp_path, 42, 0.18)
    with pytest.raises(SystemExit, match=r"model.hidden=None, row 'gsasrec' is configs/gsasrec-ml-1m.yaml with "
                                         r"model.hidden=128"):
        published.main(["--add", f"gsasrec={ce_run}"])
    # the SASRec CE recipes differ only in training settings: each run lands in its own recipe's row
    fast_run = _run(tmp_path, 42, 0.18, train="batch_size: 32, scheduler: cosine, patience: 50, length_grouping: 50")
    with pytest.raises(SystemExit, match=r"train.batch_size=32, row 'sasrec-ce' is configs/sasrec-ml-1m.yaml"):
        published.main(["--add", f"sasrec-ce={fast_run}"])
    assert published.run_entry("sasrec-ce-fast", fast_run)["row"] == "sasrec-ce-fast"
    with pytest.raises(SystemExit, match=r"train.patience=10, row 'sasrec-ce-long'"):
        published.main(["--add", f"sasrec-ce-long={ce_run}"])
    for row, spec in published.ROWS.items():  # every row names a recipe that exists
        assert (published.ROOT / spec["recipe"]).is_file(), row
    assert not (tmp_path / "published.json").exists()
