"""Cold start end to end (data.cold_item_fraction): Recformer recommends items it never trained on (their text),
an ID model cannot (HR@10 = 0: they are not among its candidates); both reported under metrics.json "cold"."""

from __future__ import annotations

from pathlib import Path

from seqrec import Recommender
from seqrec.config import build_config

DATA = ["data.synthetic.num_users=150", "data.synthetic.num_items=60", "data.synthetic.mean_length=12",
        "data.max_len=8", "data.cold_item_fraction=0.2", "train.threads=1", "train.progress=false",
        "eval.bootstrap=20"]


def test_recformer_recommends_cold_items_id_models_cannot(tmp_path: Path) -> None:
    rf = Recommender(build_config({}, [
        *DATA, "model.name=recformer", "model.size=tiny", "model.hidden=32", "model.ffn=64", "model.max_tokens=128",
        "model.stage1_epochs=2", "train.epochs=4", "train.lr=0.003", "train.batch_size=64"])).fit(
        output_dir=tmp_path / "rf")
    sas = Recommender(build_config({}, [*DATA, "model.hidden=16", "train.epochs=10"])).fit(output_dir=tmp_path / "sas")
    c_rf, c_sas = rf.metrics["cold"], sas.metrics["cold"]
    assert c_rf["num_users"] == c_sas["num_users"] > 20 and c_rf["cold_items"] == 12
    assert c_rf["test"]["HR@10"] > 0.1 and c_rf["candidates"].startswith("all items")
    assert c_sas["test"]["HR@10"] == 0.0 and c_sas["candidates"] == "items seen in training"
    assert "HR@10" in c_sas["test_untrained_rows"]  # what the untrained rows would give, for transparency
    assert rf.evaluate("cold").metrics == c_rf["test"]  # the API agrees with metrics.json
    assert Recommender.load(tmp_path / "sas").evaluate("cold").metrics == c_sas["test"]
