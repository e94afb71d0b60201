"""The learning-rate schedule: warm-up, cosine, and a cosine longer than training (``train.schedule_epochs``)."""

from __future__ import annotations

import math

import pytest
from train_helpers import tiny_config, train_run

from seqrec.errors import ConfigError
from seqrec.train.trainer import lr_lambda, schedule_steps


def test_cosine_over_schedule_epochs_not_train_epochs():
    config = tiny_config("train.scheduler=cosine", "train.warmup_steps=2", "train.epochs=3", "train.schedule_epochs=6")
    steps = schedule_steps(config, steps_per_epoch=10)
    assert steps == 60
    factor = lr_lambda(config, steps)
    assert factor(0) == pytest.approx(0.5) and factor(1) == pytest.approx(1.0)  # linear warm-up over 2 steps
    assert factor(31) == pytest.approx(0.5)  # half-way down the 6-epoch cosine, at the end of epoch 3
    assert factor(59) == pytest.approx(0.5 * (1 + math.cos(math.pi * 57 / 58)))
    assert schedule_steps(tiny_config("train.epochs=3"), 10) == 30  # default: the schedule spans train.epochs


def test_schedule_shorter_than_training_is_refused():
    with pytest.raises(ConfigError, match="schedule_epochs"):
        tiny_config("train.epochs=4", "train.schedule_epochs=3")


def test_stopping_part_way_equals_the_longer_run_up_to_there(tmp_path):
    """Epochs 1..2 of a 3-epoch cosine are the first two epochs of the full 3-epoch run, step for step."""
    common = ("train.scheduler=cosine", "train.warmup_steps=3", "train.patience=50")
    full = train_run(tiny_config(*common, "train.epochs=3"), tmp_path / "full", data_dir=tmp_path / "data")
    part = train_run(tiny_config(*common, "train.epochs=2", "train.schedule_epochs=3"), tmp_path / "part",
                     data_dir=tmp_path / "data")
    lines = [(tmp_path / run / "history.csv").read_text().splitlines() for run in ("full", "part")]
    keep = lambda line: line.split(",")[:4]  # noqa: E731  epoch, train_loss, grad_norm_max, lr
    assert [keep(line) for line in lines[1]] == [keep(line) for line in lines[0][:3]]
    assert part["epochs_trained"] == 2 and full["epochs_trained"] == 3
