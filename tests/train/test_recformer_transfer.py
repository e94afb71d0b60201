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
from seqrec.train.callbacks import Callback
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


PRETRAIN = {
    "data": {"max_len": 6, "synthetic": {"num_users": 80, "num_items": 40, "mean_length": 8}},
    "model": {"name": "recformer", "size": "tiny", "hidden": 32, "ffn": 64, "max_tokens": 96},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "progress": False, "threads": 1},
    "eval": {"bootstrap": 20},
    "pretrain": {"datasets": [{"name": "synthetic", "seed": 7},
                              {"name": "synthetic", "seed": 8, "synthetic": {"num_users": 60, "num_items": 30}}]},
}


def _write_yaml(path: Path, tree: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rf-pre")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_CACHE_DIR", str(root / "cache"))
        result = CliRunner().invoke(app, ["pretrain", "--config", str(_write_yaml(root / "pre.yaml", PRETRAIN)),
                                          "--output", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


def test_pretrain_run_directory(pretrained: Path) -> None:
    for name in ("model.safetensors", "config.yaml", "items.json", "metrics.json", "history.jsonl", "last",
                 "pretrain.yaml"):
        assert (pretrained / name).exists(), name
    items = json.loads((pretrained / "items.json").read_text())
    assert items[0] == "<pad>" and items[1].startswith("synthetic:") and items[-1].startswith("synthetic#1:")
    history = [json.loads(x) for x in (pretrained / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(h["iic_loss"] > 0 and h["mlm_loss"] > 0 for h in history)
    for h in history:  # L = L_IIC + 0.1 L_MLM, per batch, so per epoch mean too
        assert h["train_loss"] == pytest.approx(h["iic_loss"] + 0.1 * h["mlm_loss"], rel=1e-5)
    assert json.loads((pretrained / "metrics.json").read_text())["pretrain"] is True


def test_pretrained_checkpoint_zero_shot_and_fine_tuning_start(pretrained: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(pretrained), "--json"])  # the target domain
    assert result.exit_code == 0, result.output
    zero_shot = json.loads(result.stdout)["test"]["NDCG@10"]
    assert 0 < zero_shot < 1
    pre = Recommender.load(pretrained).model.state_dict()

    class FirstWeights(Callback):
        def on_fit_start(self, trainer):
            self.state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    first = FirstWeights()
    config = build_config({k: v for k, v in PRETRAIN.items() if k != "pretrain"}, [f"model.init_from={pretrained}"])
    Recommender(config).fit(output_dir=tmp_path / "ft", callbacks=[first])
    for k, v in pre.items():
        if k != "item_matrix":  # derived: the target's items, encoded at the first epoch start
            assert torch.equal(first.state[k], v), k
    assert (tmp_path / "ft" / "metrics.json").is_file()


def test_pretrain_resume_equals_the_uninterrupted_run(pretrained: Path, tmp_path: Path) -> None:
    from recformer_helpers import Interrupt, StopAt

    from seqrec.train.pretrain import pretrain_run

    cfg = _write_yaml(tmp_path / "pre.yaml", PRETRAIN)
    with pytest.raises(Interrupt):
        pretrain_run(cfg, tmp_path / "run", callbacks=[StopAt(2)])
    result = CliRunner().invoke(app, ["pretrain", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (pretrained / "model.safetensors").read_bytes()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (pretrained, tmp_path / "run"))
    assert a["valid"] == b["valid"] and a["test"] == b["test"]


@pytest.mark.parametrize(("change", "message"), [
    ({"pretrain": {"datasets": [{"name": "synthetic"}]}}, "target domain"),
    ({"pretrain": {"datasets": []}}, "pretrain.datasets"),
    ({"pretrain": {"datasets": ["synthetic"], "lambda": 1}}, "pretrain.lambda"),
    ({"model": {"name": "sasrec"}}, "text models"),
])
def test_pretrain_bad_configs_are_one_line_errors(tmp_path: Path, change: dict, message: str) -> None:
    tree = {**PRETRAIN, **change}
    result = CliRunner().invoke(app, ["pretrain", "--config", str(_write_yaml(tmp_path / "bad.yaml", tree)),
                                      "--output", str(tmp_path / "run")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
