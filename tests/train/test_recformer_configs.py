"""The shipped Recformer configs: the quickstart and the bench grid resolve (tiny encoder, synthetic data with
text; Recformer and ID models on exactly the same data)."""

from __future__ import annotations

from pathlib import Path

from seqrec.bench.grid import expand, load_grid
from seqrec.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_quickstart_config() -> None:
    cfg = load_config(CONFIGS / "recformer-quickstart.yaml")
    assert cfg.model.name == "recformer" and cfg.model.size == "tiny" and cfg.data.name == "synthetic"


def test_bench_grid_puts_recformer_beside_id_models_on_the_same_data() -> None:
    cells = expand(load_grid(CONFIGS / "bench" / "recformer.yaml"))
    models = {c.config.model.name: c.config for c in cells}
    assert set(models) == {"sasrec", "gru4rec", "recformer"} and models["recformer"].model.size == "tiny"
    data = {name: c.data.model_dump() for name, c in models.items()}
    assert data["sasrec"] == data["gru4rec"] == data["recformer"]


def test_scientific_configs_resolve_and_keep_the_target_out_of_the_corpus() -> None:
    from seqrec.train.pretrain import load_pretrain_config

    ft = load_config(CONFIGS / "recformer-scientific.yaml")
    assert ft.model.size == "mini" and ft.model.item_matrix == "fix" and ft.data.name == "amazon-scientific-2018"
    config, pre = load_pretrain_config(CONFIGS / "recformer-pretrain.yaml", [])
    names = [d if isinstance(d, str) else d.name for d in pre.datasets]
    assert config.data.name == "amazon-scientific-2018" and config.data.name not in names
