"""Recformer across catalogues: a trained or pre-trained checkpoint evaluates zero-shot on a dataset it never saw
(seqrec evaluate --checkpoint RUN --set data...), pre-training (seqrec pretrain) writes a run directory that
fine-tuning starts from (model.init_from), and resumes like training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recformer_helpers import RF, rf_config
from typer.testing import CliRunner

from seqrec import Recommender
from seqrec.cli import app
from seqrec.config import build_config
from seqrec.data import prepare_data
from seqrec.errors import DataError
from seqrec.models import build_model
from seqrec.train.run import evaluate_split
from seqrec.train.text_setup import attach_item_text

OTHER = ["--set", "data.seed=7", "--set", "data.synthetic.num_items=50", "--set", "data.synthetic.num_users=60"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rf-a")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_CACHE_DIR", str(root / "cache"))
        Recommender(rf_config("train.epochs=2", "model.stage1_epochs=1")).fit(output_dir=root / "run")
    return root / "run"


def _other_config():
    return build_config({}, [*RF, *(o for o in OTHER if o != "--set")])


def test_zero_shot_on_an_unseen_catalogue_equals_encoding_it_by_hand(trained: Path) -> None:
    """The checkpoint's weights, the new catalogue's text, its items encoded into I, the usual evaluation."""
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), *OTHER, "--json"])
    assert result.exit_code == 0, result.output
    block = json.loads(result.stdout)
    config = _other_config()
    data = prepare_data(config.data)
    trained_items = json.loads((trained / "items.json").read_text())
    assert data.num_items != len(trained_items) - 1  # another catalogue (k-core filtered: 48 of 50 items)
    weights = Recommender.load(trained).model.state_dict()
    model = build_model(config.model, data.num_items, config.data.max_len)
    model.load_state_dict({k: v for k, v in weights.items() if k != "item_matrix"}, strict=False)
    attach_item_text(model, config, data)
    model.refresh_item_matrix()
    for split in ("valid", "test"):
        assert evaluate_split(model, data, config, split, "cpu").metrics == block[split]
    assert block["test"]["NDCG@10"] > 0


def test_zero_shot_through_the_api_moves_the_recommender_to_the_new_catalogue(trained: Path) -> None:
    rec = Recommender.load(trained, [o for o in OTHER if o != "--set"])
    rec.evaluate("test")
    n = prepare_data(_other_config().data).num_items
    assert len(rec.item_ids) == n + 1 and rec.model.num_items == n and rec.meta["num_items"] == n
    top = rec.recommend(users=["1"], k=5)
    assert top.height == 5 and set(top["item"]) <= set(rec.item_ids[1:])
    w = rec.model.item_weight()
    assert w.shape == (n + 1, 32) and torch.allclose(w[1:].norm(dim=-1), torch.ones(n))


def test_id_models_still_refuse_another_catalogue(tmp_path: Path) -> None:
    cfg = build_config({}, [*(x for x in RF if not x.startswith("model.")), "model.hidden=16", "train.epochs=1"])
    Recommender(cfg).fit(output_dir=tmp_path / "sasrec")
    with pytest.raises(DataError, match="trained on"):
        Recommender.load(tmp_path / "sasrec", [o for o in OTHER if o != "--set"]).evaluate("test")
