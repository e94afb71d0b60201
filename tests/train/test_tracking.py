"""history.csv always; each tracker backend read back with its own reader (skipped if not installed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from train_helpers import tiny_config, train_run

from seqrec.errors import ConfigError
from seqrec.train.tracking import HistoryWriter, flatten_record, make_tracker


def test_history_csv_has_one_row_per_epoch_with_flat_valid_metrics(tmp_path):
    w = HistoryWriter(tmp_path / "h.csv")
    w.append({"epoch": 1, "train_loss": 2.0})
    w.append({"epoch": 2, "train_loss": 1.5, "valid": {"NDCG@10": 0.25}})
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[1]["valid/NDCG@10"] == "0.25" and rows[0]["valid/NDCG@10"] == ""
    assert flatten_record({"a": {"b": 1}}) == {"a/b": 1}


def _train(tmp_path: Path, tracker: str) -> Path:
    run = tmp_path / "run"
    train_run(tiny_config("train.epochs=2", f"train.tracker={tracker}"), run, data_dir=tmp_path / "data")
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 2
    return run


def test_missing_backend_is_one_line_config_error(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_wandb(name, *a, **k):
        if name == "wandb":
            raise ImportError("no wandb")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ConfigError, match="package 'wandb' is not installed"):
        make_tracker(tiny_config("train.tracker=wandb"), tmp_path)


def test_tensorboard_event_file_parsed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(tmp_path, "tensorboard")
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "valid/NDCG@10" in tags
    ndcg = [e.value for e in acc.Scalars("valid/NDCG@10")]
    history = [json.loads(x)["valid"]["NDCG@10"] for x in (run / "history.jsonl").read_text().splitlines()]
    assert ndcg == pytest.approx(history, rel=1e-6)


def test_mlflow_run_queried(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = _train(tmp_path, "mlflow")
    client = mlflow.tracking.MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("seqrec")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    hist = client.get_metric_history(runs[0].info.run_id, "valid/NDCG_at_10")
    assert len(hist) == 2
    assert runs[0].data.params["train/tracker"] == "mlflow"


@pytest.mark.slow  # wandb starts a service process (~15 s)
def test_wandb_offline_run_written(tmp_path, monkeypatch):
    """wandb >= 0.2x ships no public reader for offline ``.wandb`` logs: check the protobuf log holds our keys."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = _train(tmp_path, "wandb")
    files = list((run / "wandb").rglob("*.wandb"))
    assert files, "no offline wandb run file"
    raw = files[0].read_bytes()
    assert b"valid/NDCG@10" in raw and b"train/loss" in raw
