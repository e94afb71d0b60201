from pathlib import Path

import pytest

from seqrec.config import build_config, load_config, parse_override
from seqrec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides():
    cfg = build_config({}, ["train.lr=0.01", "data.max_len=75", "model.hidden=32", "eval.ks=[5,20]"])
    assert cfg.train.lr == 0.01
    assert cfg.data.max_len == 75
    assert cfg.eval.ks == [5, 10, 20]  # 10 always included
    assert cfg.model.model_dump()["hidden"] == 32


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.lrr=1", "train.lrr"),
        ("trian.lr=1", "trian"),
        ("model.hiddn=3", "model.hiddn"),
        ("model.name=nope", "model.name"),
        ("train.lr=-1", "train.lr"),
        ("train.epochs=abc", "train.epochs"),
        ("data.synthetic.num_userz=3", "data.synthetic.num_userz"),
        ("noequals", "--set"),
    ],
)
def test_bad_keys_name_the_key(override, needle):
    with pytest.raises(ConfigError) as info:
        build_config({}, [override])
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  foo: 1\n")
    with pytest.raises(ConfigError, match="train.foo"):
        load_config(unknown)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_yaml_values():
    assert parse_override("a.b=1e-3") == (["a", "b"], 0.001)
    assert parse_override("a.b=null") == (["a", "b"], None)
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])


# `seqrec train` configs (the pre-training config has its own schema, tested in tests/train/test_recformer_configs.py)
SHIPPED = [p for p in sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "configs" / "refresh").glob("*.yaml"))
           if p.name != "recformer-pretrain.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_training_config_validates(path) -> None:
    config = load_config(path)
    assert config.data.name
