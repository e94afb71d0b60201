"""Never a wrong number with exit 0: diverged training stops with one line, early stopping ignores NaN epochs,
and training time accumulates over resumed sittings."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from rich.console import Console
from train_helpers import tiny_config, train_run
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.data import prepare_data
from seqrec.errors import TrainingDiverged
from seqrec.models import build_model
from seqrec.train.resume import LAST, PREV
from seqrec.train.trainer import Trainer


def test_infinite_lr_stops_with_one_line_naming_epoch_and_step(tmp_path):
    """#10 row 1: lr=inf gave loss nan and valid/test NDCG@10 = 1.0000 with exit 0."""
    args = ["train", "--output", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data"),
            "--set", "train.lr=inf", "--set", "train.epochs=2", "--set", "train.progress=false",
            "--set", "data.synthetic.num_users=150", "--set", "data.synthetic.num_items=60",
            "--set", "data.synthetic.mean_length=12", "--set", "data.max_len=10", "--set", "model.hidden=16"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.output
    assert "epoch 1, step" in errors[0] and "non-finite" in errors[0] and "train.detect_anomaly" in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()  # no result was written


def test_nan_gradient_raises_before_the_optimizer_step(tmp_path):
    cfg = tiny_config("train.grad_clip=null")
    data = prepare_data(cfg.data, tmp_path)
    model = build_model(cfg.model, data.num_items, cfg.data.max_len)
    trainer = Trainer(model, data, cfg, torch.device("cpu"), Console(quiet=True))
    with torch.no_grad():
        model.item_emb.weight[3, 0] = float("nan")  # poisons every forward that reads item 3
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = [trainer.rows.argsort()[:64]]
    with pytest.raises(TrainingDiverged, match="non-finite"):
        trainer.train_batches(batch)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) or torch.isnan(before[k]).any() for k in before)
    assert trainer.scheduler.last_epoch == 0  # no step was taken


def test_early_stopping_never_selects_a_non_finite_epoch(tmp_path):
    cfg = tiny_config()
    data = prepare_data(cfg.data, tmp_path)
    trainer = Trainer(build_model(cfg.model, data.num_items, cfg.data.max_len), data, cfg, torch.device("cpu"))
    assert trainer.observe(0.1, 1)
    assert not trainer.observe(float("nan"), 2)
    assert not trainer.observe(float("inf"), 3)
    assert trainer.state.best_epoch == 1 and trainer.state.best_score == 0.1 and trainer.state.bad_epochs == 2


def test_training_time_accumulates_over_resumes(tmp_path):
    """#10 row 10: metrics.json's train_time_s counted only the resumed part (0.0007 s resuming a finished run)."""
    full = train_run(tiny_config(), tmp_path / "full", data_dir=tmp_path / "data")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "full" / PREV, resumed / LAST)  # the state after epoch 2 of 3
    state = json.loads((resumed / LAST / "state.json").read_text())["state"]["loop"]
    before = state["train_time_s"]
    assert before > 0
    again = train_run(tiny_config(), resumed, data_dir=tmp_path / "data", resume=True)
    assert again["train_time_s"] > before
    assert again["test"] == full["test"]
    last = json.loads((tmp_path / "full" / LAST / "state.json").read_text())["state"]["loop"]["train_time_s"]
    finished = train_run(tiny_config(), tmp_path / "full", data_dir=tmp_path / "data", resume=True)
    # resuming a finished run adds ~nothing to the recorded time (the last checkpoint cannot count its own write)
    assert last <= finished["train_time_s"] <= full["train_time_s"] * 1.5 and finished["train_time_s"] > 0.5 * full[
        "train_time_s"]


def test_a_diverged_resume_leaves_last_resumable(tmp_path):
    """The numerics guard stops before writing anything: last/ stays the epoch-2 state and resumes normally."""
    import hashlib

    from seqrec.errors import TrainingDiverged
    from seqrec.train.resume import resume_config

    full = train_run(tiny_config(), tmp_path / "full", data_dir=tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(tmp_path / "full" / PREV, run / LAST)  # the state after epoch 2 of 3

    def digest() -> str:
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted((run / LAST).iterdir()))).hexdigest()

    before = digest()
    from seqrec.api import Recommender

    with pytest.raises(TrainingDiverged, match="epoch 3"):
        Recommender(resume_config(run, ["train.lr=inf"])).fit(output_dir=run, data_dir=tmp_path / "data", resume=True)
    assert digest() == before and not (run / "metrics.json").exists()
    again = train_run(resume_config(run), run, data_dir=tmp_path / "data", resume=True)
    assert again["test"] == full["test"]
