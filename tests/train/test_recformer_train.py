"""Recformer through the shared training pipeline: Recommender.fit / seqrec train write the same run directory
as the ID models, item text is attached (and cached) automatically, --resume continues either fine-tuning stage
exactly, no target ever reaches the text the model reads, and a loaded run re-attaches its text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from recformer_helpers import Interrupt, StopAt, rf_config

from seqrec import Dataset, Recommender
from seqrec.data import prepare_data
from seqrec.errors import ConfigError
from seqrec.eval.ranking import left_padded
from seqrec.train.callbacks import Callback


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run: stage 1 for epochs 1-2, stage 2 for epoch 3."""
    root = tmp_path_factory.mktemp("rf-ref")
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_CACHE_DIR", str(cache))
        Recommender(rf_config()).fit(output_dir=root / "run")
    return root / "run"


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_run_directory_history_stages_and_text_cache(reference: Path) -> None:
    for name in ("model.safetensors", "config.yaml", "items.json", "item_titles.json", "metrics.json",
                 "history.jsonl", "history.csv", "last"):
        assert (reference / name).exists(), name
    m = _metrics(reference)
    assert m["model"] == "recformer" and m["epochs_trained"] == 3 and "popularity" in m["baselines"]
    assert 0 <= m["test"]["NDCG@10"] <= 1 and m["num_test_users"] > 0
    history = [json.loads(x) for x in (reference / "history.jsonl").read_text().splitlines()]
    assert [h["stage"] for h in history] == [1, 1, 2] and history[1].get("stage_end") is True
    entries = list((reference.parent / "cache").glob("item-text-*"))
    assert len(entries) == 1 and (entries[0] / "tokens.npy").is_file()  # item tokens cached beside the data


def test_load_reattaches_text_and_reproduces_the_metrics(reference: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(reference.parent / "cache"))
    rec = Recommender.load(reference)
    assert rec.model.text is None  # text is data, not weights: attached when the data is known
    res = rec.evaluate("test")
    assert res.metrics == _metrics(reference)["test"]
    top = rec.recommend(users=["1", "2"], k=5)
    assert top.height == 10 and set(top.columns) >= {"user", "rank", "item", "score", "title"}
    one = Recommender.load(reference).recommend(histories=[["3", "5", "7"]], k=3)
    assert one.height == 3 and not set(one["item"]) & {"3", "5", "7"}


def _resume_after_interrupt(tmp_path: Path, epoch: int) -> Path:
    run = tmp_path / f"run-{epoch}"
    with pytest.raises(Interrupt):
        Recommender(rf_config()).fit(output_dir=run, callbacks=[StopAt(epoch)])
    assert (run / "last").is_dir() and not (run / "metrics.json").exists()
    Recommender(rf_config()).fit(output_dir=run, resume=True)
    return run


@pytest.mark.parametrize("epoch", [2, 3])  # resumed in stage 1 / right after the switch to stage 2
def test_resume_equals_the_uninterrupted_run(reference: Path, tmp_path: Path, epoch: int) -> None:
    run = _resume_after_interrupt(tmp_path, epoch)
    a, b = _metrics(reference), _metrics(run)
    assert a["valid"] == b["valid"] and a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    assert (reference / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()
    strip = [{k: v for k, v in json.loads(x).items() if k in ("train_loss", "valid", "stage", "stage_end")}
             for x in (run / "history.jsonl").read_text().splitlines()]
    assert strip == [{k: v for k, v in json.loads(x).items() if k in ("train_loss", "valid", "stage", "stage_end")}
                     for x in (reference / "history.jsonl").read_text().splitlines()]


def test_dataset_without_item_text_is_a_config_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"user_id": np.repeat(np.arange(30), 8), "item_id": rng.integers(0, 20, 240)})
    data = Dataset.from_polars(df, min_user_interactions=0, min_item_interactions=0, max_len=6)
    with pytest.raises(ConfigError, match="item text"):
        Recommender(rf_config()).fit(data)


class SpyText:
    """Wraps a model's text source and records each history it turns into text (with the tokens built)."""

    def __init__(self, inner: Any, log: list) -> None:
        self.inner, self.log = inner, log
        self.num_items, self.max_items, self.max_tokens = inner.num_items, inner.max_items, inner.max_tokens

    def __call__(self, histories: Any, pad_to: int | None = None) -> Any:
        batch = self.inner(histories, pad_to=pad_to)
        h = histories.detach().cpu().numpy() if isinstance(histories, torch.Tensor) else np.asarray(histories)
        self.log.append(("text", h.copy(), batch.tokens.clone(), batch.mask.clone()))
        return batch

    def alone(self, ids: Any) -> Any:
        return self.inner.alone(ids)

    def item_lengths(self) -> np.ndarray:
        return self.inner.item_lengths()


class Spy(Callback):
    def __init__(self) -> None:
        self.log: list = []

    def on_fit_start(self, trainer: Any) -> None:
        model = trainer.model
        model.text = SpyText(model.text, self.log)
        inner = model.training_example

        def training_example(window: torch.Tensor, generator: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
            inputs, targets = inner(window, generator)
            self.log.append(("train", inputs.clone(), targets.clone()))
            return inputs, targets

        model.training_example = training_example

    def on_fit_end(self, trainer: Any) -> None:
        self.log.append(("final",))


def _row_tokens_come_from(history: np.ndarray, tokens: torch.Tensor, mask: torch.Tensor, items: Any) -> bool:
    allowed = {101}.union(*(set(items.item(int(i))[0].tolist()) for i in history if i))
    return set(tokens[mask].tolist()) <= allowed


def test_a_target_never_reaches_the_input_text_in_training_or_evaluation(tmp_path: Path) -> None:
    spy = Spy()
    rec = Recommender(rf_config("train.epochs=2", "model.stage1_epochs=1")).fit(callbacks=[spy])
    items = rec.model.text.inner.items
    log, trained, i = spy.log, 0, 0
    while log[i][0] != "final":
        if log[i][0] == "train":
            _, inputs, targets = log[i]
            kind, hist, tokens, mask = log[i + 1]  # the forward right after training_example reads its inputs
            assert kind == "text" and np.array_equal(hist, inputs.numpy())
            for b in range(len(hist)):
                t = int(targets[b, 0])
                if t:
                    assert t not in hist[b] and _row_tokens_come_from(hist[b], tokens[b], mask[b], items)
                    trained += 1
            i += 1
        i += 1
    assert trained > 100
    data = prepare_data(rec.config.data)
    final = [entry for entry in log[i + 1 :] if entry[0] == "text"]  # validation then test, in user order
    rows = np.concatenate([e[1] for e in final])
    for ev, offset in ((data.valid, 0), (data.test, len(data.valid))):
        expected = left_padded(ev.inputs, np.arange(len(ev)), rec.config.data.max_len)
        got = rows[offset : offset + len(ev)]
        assert np.array_equal(got, expected)  # exactly the evaluation inputs ...
        assert not (got == np.asarray(ev.targets)[:, None]).any()  # ... which never hold the target
    tokens = [(e[1][b], e[2][b], e[3][b]) for e in final for b in range(len(e[1]))]
    assert all(_row_tokens_come_from(h, t, m, items) for h, t, m in tokens)


def test_resume_of_a_finished_recformer_run_refuses_to_start_over(reference: Path, tmp_path: Path) -> None:
    copy = tmp_path / "done"
    shutil.copytree(reference, copy)
    from seqrec.errors import DataError

    with pytest.raises(DataError, match="finished run"):
        Recommender(rf_config()).fit(output_dir=copy)


def test_in_memory_frame_with_titles_trains_and_recommends() -> None:
    """Dataset.from_polars with an item_text table: the titles are the items' text (key 'title')."""
    n_items = 30
    rows = [(f"u{u}", f"sku{(u + t * (1 + u % 3)) % n_items}", t) for u in range(40) for t in range(8)]
    df = pl.DataFrame(rows, schema=["user", "item", "t"], orient="row").sample(fraction=1.0, seed=1, shuffle=True)
    titles = pl.DataFrame({"item": [f"sku{i}" for i in range(n_items)],
                           "title": [f"{['red', 'blue', 'green'][i % 3]} thing {i}" for i in range(n_items)]})
    data = Dataset.from_polars(df, user_col="user", item_col="item", time_col="t", item_text=titles,
                               min_user_interactions=0, min_item_interactions=0)
    rec = Recommender(rf_config("train.epochs=1", "model.stage1_epochs=1")).fit(data)
    assert rec.model.text.num_items == data.data.num_items
    top = rec.recommend(users=["u1"], k=3, dataset=data)
    assert top.height == 3 and top["title"].str.contains("thing").all()
