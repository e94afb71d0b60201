"""--init-from / fit(init_from=...): same catalogue loads everything, a different one maps item rows by original id;
adapted runs end to end (metrics.json counts, adapter file, resume, merged export) and one-line CLI errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from rich.console import Console
from train_helpers import TINY, tiny_config
from typer.testing import CliRunner

from seqrec.api import Dataset, Recommender
from seqrec.cli import app
from seqrec.errors import CheckpointError, ConfigError
from seqrec.models import MODELS, build_model
from seqrec.train.adapters import ADAPTER, apply_adapters
from seqrec.train.init_from import ITEM_TABLES, load_init

runner = CliRunner()
QUIET = Console(quiet=True)


def _frame(items: range, n_users: int = 60, length: int = 12, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{int(rng.choice(items))}", float(t)) for u in range(n_users) for t in range(length)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")


def _dataset(items: range) -> Dataset:
    return Dataset.from_polars(_frame(items), time_col="timestamp", max_len=10, min_user_interactions=0,
                               min_item_interactions=0)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> tuple[Path, Path]:
    """A finished BERT4Rec run on the synthetic data (and its data dir)."""
    root = tmp_path_factory.mktemp("init")
    Recommender(tiny_config("model.name=bert4rec", "train.epochs=1")).fit(output_dir=root / "run",
                                                                         data_dir=root / "data")
    return root / "run", root / "data"


def _state(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def test_every_model_family_names_its_item_tables():
    assert set(MODELS) <= set(ITEM_TABLES)


def test_same_catalogue_loads_every_tensor(base_run):
    run, data_dir = base_run
    cfg = tiny_config("model.name=bert4rec", "train.seed=7")
    rec = Recommender(cfg)
    data = rec._data(None, data_dir)
    model = build_model(cfg.model, data.num_items, cfg.data.max_len)
    report = load_init(model, cfg, [str(x) for x in data.item_ids], run, QUIET)
    assert report["catalogue"] == "same"
    trained = _state(run)
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_different_catalogue_maps_rows_by_original_item_id(tmp_path):
    old, new = _dataset(range(0, 30)), _dataset(range(10, 40))
    cfg = tiny_config("model.name=bert4rec", "train.epochs=1")
    Recommender(cfg).fit(old, output_dir=tmp_path / "old")
    trained = _state(tmp_path / "old")["item_emb.weight"]
    old_ids = json.loads((tmp_path / "old" / "items.json").read_text())
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, new.data.num_items, cfg.data.max_len)
    fresh = model.item_emb.weight.detach().clone()
    console = Console(record=True, width=300)
    new_ids = [str(x) for x in new.data.item_ids]
    report = load_init(model, cfg, new_ids, tmp_path / "old", console)
    table = model.item_emb.weight.detach()
    shared = [i for i in new_ids[1:] if i in old_ids]
    assert report["catalogue"] == "mapped" and report["mapped"] == len(shared) > 0
    assert report["reinitialised"] == len(new_ids) - 1 - len(shared) > 0 and report["dropped"] > 0
    for j, item in enumerate(new_ids):
        if j == 0:
            assert torch.equal(table[0], trained[0])
        elif item in old_ids:
            assert torch.equal(table[j], trained[old_ids.index(item)])
        else:
            assert torch.equal(table[j], fresh[j])  # a new item keeps its fresh initialisation
    assert torch.equal(table[-1], trained[-1])  # [MASK]
    text = console.export_text()
    assert "mapped by original item id" in text and "re-initialised" in text and report["reinitialised_ids"][0] in text
    assert torch.equal(model.pos_emb.weight, _state(tmp_path / "old")["pos_emb.weight"])


def test_init_from_refuses_another_family_and_other_sizes(base_run, tmp_path):
    run, data_dir = base_run
    with pytest.raises(ConfigError, match="same model family"):
        Recommender(tiny_config("model.name=sasrec")).fit(data_dir=data_dir, init_from=run)
    with pytest.raises(CheckpointError, match="pos_emb"):
        Recommender(tiny_config("model.name=bert4rec", "data.max_len=12")).fit(data_dir=data_dir, init_from=run)
    with pytest.raises(CheckpointError, match="not a seqrec run directory|not found"):
        Recommender(tiny_config("model.name=bert4rec")).fit(data_dir=data_dir, init_from=tmp_path / "nowhere")


def test_lora_run_end_to_end_counts_adapter_file_merge_and_init(base_run, tmp_path):
    pytest.importorskip("peft")
    run, data_dir = base_run
    cfg = tiny_config("model.name=bert4rec", "train.epochs=2", "peft.method=lora", "peft.modules_to_save=[ln_f]")
    rec = Recommender(cfg).fit(output_dir=tmp_path / "lora", data_dir=data_dir, init_from=run)
    m = json.loads((tmp_path / "lora" / "metrics.json").read_text())
    assert m["trainable_params"] < m["total_params"] and m["peft"]["method"] == "lora"
    assert m["init_from"]["catalogue"] == "same" and m["init_from"]["run"] == str(run)
    assert (tmp_path / "lora" / ADAPTER).stat().st_size < (tmp_path / "lora" / "model.safetensors").stat().st_size
    loaded = Recommender.load(tmp_path / "lora")
    assert loaded.evaluate("test", data_dir=data_dir).metrics == pytest.approx(m["test"], abs=1e-12)
    frozen_base = _state(run)  # the base weights did not move: only adapters and ln_f trained
    state = loaded.model.state_dict()
    assert torch.equal(state["blocks.0.qkv.base_layer.weight"], frozen_base["blocks.0.qkv.weight"])
    assert not torch.equal(state["ln_f.weight"], frozen_base["ln_f.weight"])
    top = rec.recommend(users=["1", "2"], k=5, data_dir=data_dir)
    rec.merge_adapters().save(tmp_path / "merged")
    merged = Recommender.load(tmp_path / "merged")
    assert merged.config.peft.method == "none" and "blocks.0.qkv.weight" in merged.model.state_dict()
    again = merged.recommend(users=["1", "2"], k=5, data_dir=data_dir)
    assert again["item"].to_list() == top["item"].to_list()
    assert np.allclose(again["score"].to_numpy(), top["score"].to_numpy(), atol=1e-5)
    # a LoRA run as --init-from: its merged weights start the next run
    child = build_model(cfg.model, rec.model.num_items, cfg.data.max_len)
    load_init(child, tiny_config("model.name=bert4rec"), merged.item_ids, tmp_path / "lora", QUIET)
    assert all(torch.allclose(v, merged.model.state_dict()[k], atol=1e-6) for k, v in child.state_dict().items())


def test_ilora_run_resumes_exactly_and_is_refused_as_init(base_run, tmp_path):
    run, data_dir = base_run
    cfg = tiny_config("model.name=bert4rec", "train.epochs=3", "peft.method=ilora", "peft.rank=4")
    Recommender(cfg).fit(output_dir=tmp_path / "ref", data_dir=data_dir, init_from=run)
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "ref", part)
    for name in ("metrics.json", "model.safetensors", ADAPTER, "last"):
        p = part / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (part / "last.prev").rename(part / "last")  # the epoch-2 checkpoint
    Recommender(cfg).fit(output_dir=part, data_dir=data_dir, resume=True)
    ref, got = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "ref", part))
    assert got["test"] == ref["test"] and got["trainable_params"] == ref["trainable_params"]
    with pytest.raises(ConfigError, match="iLoRA run"):
        Recommender(tiny_config("model.name=bert4rec")).fit(data_dir=data_dir, init_from=tmp_path / "ref")


def test_cli_dry_run_prints_trainable_share_and_init(base_run, tmp_path):
    pytest.importorskip("peft")
    run, data_dir = base_run
    res = runner.invoke(app, ["train", "--output", str(tmp_path / "dry"), "--data-dir", str(data_dir), *_cli_tiny(),
                              "--set", "model.name=bert4rec", "--set", "peft.method=lora", "--init-from", str(run),
                              "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "trainable (" in res.output and "lora" in res.output and f"init from {run}" in res.output


def _cli_tiny() -> list[str]:
    return [x for item in TINY for x in ("--set", item)]


@pytest.mark.parametrize("extra, needle", [
    (["--init-from", "NOWHERE"], "NOWHERE"),
    (["--init-from", "RUN", "--set", "model.name=sasrec"], "same model family"),
    (["--init-from", "RUN", "--resume", "RUN"], "--init-from"),
    (["--set", "peft.method=ilora", "--set", "peft.target_modules=[nope]"], "peft.target_modules"),
])
def test_cli_bad_init_from_is_one_line_and_writes_nothing(base_run, tmp_path, extra, needle):
    run, data_dir = base_run
    extra = [str(run) if x == "RUN" else str(tmp_path / x) if x == "NOWHERE" else x for x in extra]
    before = sorted(p.name for p in run.iterdir())
    res = runner.invoke(app, ["train", "--output", str(tmp_path / "new"), "--data-dir", str(data_dir), *_cli_tiny(),
                              "--set", "model.name=bert4rec", *extra])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert needle.replace("NOWHERE", str(tmp_path / "NOWHERE")) in lines[0]
    assert not (tmp_path / "new").exists() and sorted(p.name for p in run.iterdir()) == before


def test_apply_adapters_keeps_the_model_class():
    cfg = tiny_config("model.name=bert4rec", "peft.method=ilora")
    model = apply_adapters(build_model(cfg.model, 60, 10), cfg.peft)
    assert type(model).__name__ == "BERT4Rec" and hasattr(model, "ilora_router")
