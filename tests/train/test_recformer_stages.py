"""Two-stage fine-tuning (the seed's Algorithm 1) and its ablation variants: stage-1 re-encoding equals encoding
every item from scratch, and each model.item_matrix variant does what its row of the seed's table says."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from recformer_helpers import WatchItems, rf_config

from seqrec import Recommender
from seqrec.data import prepare_data
from seqrec.data.text import collate
from seqrec.errors import ConfigError
from seqrec.models import build_model
from seqrec.models.recformer import ITEM_MATRIX_VARIANTS
from seqrec.train.callbacks import Callback
from seqrec.train.runtime import seed_everything
from seqrec.train.text_setup import catalogue_tokens


class KeepWeights(Callback):
    """Copies the weights (I included) right after the first validation."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.state is None:
            self.state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_stage1_reencoding_equals_encoding_every_item_from_scratch() -> None:
    keep = KeepWeights()
    rec = Recommender(rf_config("train.epochs=1", "model.stage1_epochs=1")).fit(callbacks=[keep])
    assert keep.state is not None
    data = prepare_data(rec.config.data)
    fresh = build_model(rec.config.model, data.num_items, rec.config.data.max_len)
    fresh.load_state_dict({k: v for k, v in keep.state.items() if k != "item_matrix"}, strict=False)
    fresh.eval()
    items = catalogue_tokens(data, fresh.config)
    with torch.no_grad():
        for i in range(1, data.num_items + 1):  # one at a time: no batching, no length ordering, no cache
            cls = fresh.encode_sequences(collate([[i]], items, max_items=1, max_tokens=fresh.config.max_tokens))
            torch.testing.assert_close(keep.state["item_matrix"][i], torch.nn.functional.normalize(cls[0], dim=0),
                                       rtol=1e-5, atol=1e-6)
    assert torch.equal(keep.state["item_matrix"][0], torch.zeros(fresh.config.hidden))


def _run(variant: str, *extra: str) -> tuple[WatchItems, Recommender, dict]:
    watch = WatchItems()
    rec = Recommender(rf_config(f"model.item_matrix={variant}", "train.epochs=4", "model.stage1_epochs=2",
                                *extra)).fit(callbacks=[watch])
    return watch, rec, rec.metrics


def _changed(a: torch.Tensor, b: torch.Tensor) -> bool:
    return not torch.equal(a, b)


@pytest.mark.parametrize("variant", list(ITEM_MATRIX_VARIANTS))
def test_each_variant_does_what_the_table_says(variant: str) -> None:
    stage1, train1, stage2, train2 = ITEM_MATRIX_VARIANTS[variant]
    watch, rec, metrics = _run(variant)
    epochs = watch.epochs
    stages = [e["stage"] for e in epochs]
    expected = ([1, 1] if stage1 else []) + ([2] * (4 - 2 * stage1) if stage2 else [])
    assert stages == expected, stages
    for prev, e in zip([None, *epochs], epochs, strict=False):
        trains = train1 if e["stage"] == 1 else train2
        assert e["trainable"] == trains
        assert _changed(e["start"], e["end"]) == trains  # updated by the optimizer within the epoch, or fixed
        if e["stage"] == 1 and prev is not None:
            assert _changed(prev["end"], e["start"])  # stage 1: re-encoded between epochs
        if e["stage"] == 2 and prev is not None and prev["stage"] == 2:
            assert torch.equal(prev["end"], e["start"])  # stage 2: never re-encoded
        assert torch.equal(e["start"][0], torch.zeros_like(e["start"][0]))  # padding row stays zero
    if stage1 and stage2:
        # stage 2 starts from the best stage-1 weights and its item matrix I'
        assert epochs[1]["record"].get("stage_end") is True
    if not stage1:
        # finetune_only: I encoded once, from the initial weights, before the first step
        seed_everything(rec.config.train.seed)  # the run's initial weights
        init = build_model(rec.config.model, rec.model.num_items, rec.config.data.max_len)
        init.attach_text(rec.model.text)
        init.refresh_item_matrix()
        torch.testing.assert_close(epochs[0]["start"], init.item_matrix.detach(), rtol=0, atol=0)
    assert not rec.model.mlm_head.dense.weight.requires_grad  # fine-tuning never trains the MLM head
    assert metrics["epochs_trained"] == len(expected)


def test_stage2_has_its_own_patience_and_must_beat_every_earlier_epoch() -> None:
    """Stage 2 (patience 1 here, train.patience 10) goes on while each epoch beats the best so far, stage 1's
    included (Algorithm 1's p' > p), and stops at the first that does not; the best epoch is kept."""
    watch, rec, metrics = _run("fix", "model.stage2_patience=1", "train.epochs=8")
    monitor = rec.config.train.monitor
    scores = [e["record"]["valid"][monitor] for e in watch.epochs]
    stages = [e["stage"] for e in watch.epochs]
    assert stages[:2] == [1, 1] and set(stages[2:]) == {2}
    best = max(scores[:2])
    for score in scores[2:-1]:
        assert score > best  # every stage-2 epoch but the last improved ...
        best = score
    assert scores[-1] <= best or len(scores) == 8  # ... and the last did not (or the budget ran out)
    assert metrics["best_epoch"] == 1 + max(range(len(scores)), key=lambda i: (scores[i], -i))


def test_stage1_epochs_must_be_a_multiple_of_eval_every() -> None:
    with pytest.raises(ConfigError, match="stage1_epochs"):
        Recommender(rf_config("model.stage1_epochs=3", "train.eval_every=2")).fit()
