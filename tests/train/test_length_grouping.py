"""``train.length_grouping``: batches of similar-length windows, cut to their longest row, stay seeded and resumable."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch
from train_helpers import tiny_config, train_run

from seqrec.data.prepare import prepare_data
from seqrec.models import build_model
from seqrec.train.resume import LAST, PREV, resume_config
from seqrec.train.trainer import Trainer

GROUPED = ["train.length_grouping=3", "data.max_len=20", "data.synthetic.mean_length=15"]


def _trainer(*extra: str) -> Trainer:
    config = tiny_config(*GROUPED, *extra)
    data = prepare_data(config.data)
    model = build_model(config.model, data.num_items, config.data.max_len)
    return Trainer(model, data, config, torch.device("cpu"))


def test_grouped_epoch_covers_every_window_once_and_cuts_padding():
    grouped, plain = _trainer(), _trainer("train.length_grouping=0")
    for trainer in (grouped, plain):
        batches = trainer.epoch_batches()
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(trainer.rows)))
    width = {name: sum(t.window(b).shape[1] * len(b) for b in t.epoch_batches())
             for name, t in (("grouped", grouped), ("plain", plain))}
    assert width["grouped"] < width["plain"]


def test_grouped_run_is_seeded_and_resumes_exactly(tmp_path):
    config = tiny_config(*GROUPED)
    first = train_run(config, tmp_path / "a", data_dir=tmp_path / "data")
    again = train_run(config, tmp_path / "b", data_dir=tmp_path / "data")
    assert first["test"] == again["test"] and first["valid"] == again["valid"]
    resumed = tmp_path / "c"
    resumed.mkdir()
    shutil.copytree(tmp_path / "a" / PREV, resumed / LAST)  # the state after epoch 2
    train_run(resume_config(resumed), resumed, data_dir=tmp_path / "data", resume=True)
    assert json.loads((resumed / "metrics.json").read_text())["test"] == first["test"]
    assert (resumed / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()


def test_batch_weights_make_every_position_count_the_same():
    """Weighted batch means sum to the epoch's mean over positions: batch b weighs (its positions) / average."""
    grouped, plain = _trainer(), _trainer("train.length_grouping=0")
    batches = grouped.epoch_batches()
    weights = np.array([grouped.batch_weight(b) for b in batches])
    positions = np.array([int(np.maximum(grouped.window_lengths[b] - 1, 0).sum()) for b in batches])
    assert abs(weights.sum() - len(batches)) < 1e-9
    np.testing.assert_allclose(weights / weights.sum(), positions / positions.sum())
    assert {plain.batch_weight(b) for b in plain.epoch_batches()} == {1.0}
