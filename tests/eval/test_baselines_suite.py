"""Tuning on validation and the run_baselines report."""

from __future__ import annotations

import inspect
import json

import pytest

from seqrec.config import DataConfig, SyntheticConfig
from seqrec.data import prepare_data
from seqrec.errors import ConfigError
from seqrec.eval.baselines import BASELINES, GRIDS, check_names, run_baselines, tune
from seqrec.eval.baselines import tuning as tuning_mod
from seqrec.eval.baselines.grid import grid_points


def random_prepared(seed: int):
    syn = SyntheticConfig(num_users=120, num_items=60, mean_length=10, num_topics=4, repeat_prob=0.3)
    return prepare_data(DataConfig(name="synthetic", synthetic=syn, seed=seed, cache=False))


def test_grid_points_order_and_defaults():
    assert grid_points({}) == [{}]
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    for name, grid in GRIDS.items():  # the first value of each grid is the fit function's default
        defaults = inspect.signature(BASELINES[name]).parameters
        assert all(len(v) == len(set(v)) and defaults[key].default == v[0] for key, v in grid.items()), name


def test_tune_uses_validation_only(monkeypatch):
    data = random_prepared(seed=6)
    seen_sets = []
    real = tuning_mod.evaluate

    def spy(scorer, eval_set, *args, **kwargs):
        seen_sets.append(eval_set)
        return real(scorer, eval_set, *args, **kwargs)

    monkeypatch.setattr(tuning_mod, "evaluate", spy)
    tuned = tune("markov", data, 10, grid={"smoothing": [0.5, 5.0, 50.0]}, batch_size=32)
    assert len(tuned.trials) == 3 and all(s is data.valid for s in seen_sets)
    best = max(t["NDCG@10"] for t in tuned.trials)
    assert tuned.params == next(t["params"] for t in tuned.trials if t["NDCG@10"] == best)
    assert tune("popularity", data, 10).trials == []  # nothing to tune: no evaluation at all
    assert len(seen_sets) == 3


def test_tune_ties_keep_the_first_grid_point():
    data = random_prepared(seed=6)
    tuned = tune("sknn", data, 10, grid={"neighbours": [500, 400], "decay": [1.0]})  # both keep every neighbour
    assert tuned.trials[0]["NDCG@10"] == tuned.trials[1]["NDCG@10"] and tuned.params["neighbours"] == 500


def test_run_baselines_reports_and_skips():
    data = random_prepared(seed=7)
    reports = run_baselines(
        ["popularity", "markov", "ease"], data, 10,
        params={"ease": {"max_items": 5}}, ks=[10], bootstrap=20, batch_size=32,
    )  # fmt: skip
    pop, markov, ease = reports
    assert pop.valid is not None and pop.test is not None and pop.trials == []
    assert markov.trials and markov.params in [t["params"] for t in markov.trials]
    assert ease.skipped and "max_items=5" in ease.skipped and ease.test is None
    rows = [r.to_dict() for r in reports]
    json.dumps(rows)  # JSON-ready
    assert rows[0]["test"]["metrics"]["HR@10"] == pop.test.metrics["HR@10"] and "ci" in rows[0]["test"]
    assert rows[2]["skipped"] == ease.skipped and "test" not in rows[2]


def test_unknown_baseline_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.baselines: unknown baseline 'knn'"):
        check_names(["popularity", "knn"])


def test_config_names_are_the_registry():
    import inspect
    from typing import get_args

    from seqrec.config import BASELINE_NAMES, BASELINE_PARAMS, BaselineName
    from seqrec.eval.baselines import BASELINES

    assert tuple(BASELINES) == BASELINE_NAMES == get_args(BaselineName) == tuple(BASELINE_PARAMS)
    for name, fit in BASELINES.items():
        assert tuple(p for p in inspect.signature(fit).parameters if p != "data") == BASELINE_PARAMS[name]


def test_baselines_in_metrics_json_and_bad_params_rejected(tmp_path):
    import pytest

    from seqrec.api import Recommender
    from seqrec.config import build_config
    from seqrec.errors import ConfigError

    tiny = {"data": {"synthetic": {"num_users": 120, "num_items": 50, "mean_length": 12}, "max_len": 10},
            "model": {"hidden": 16}, "train": {"epochs": 1, "progress": False, "threads": 1},
            "eval": {"bootstrap": 10, "baselines": ["popularity", "markov", "ease"],
                     "baseline_params": {"ease": {"l2": 10.0}}}}
    m = Recommender.from_config(tiny).fit(output_dir=tmp_path / "run", data_dir=tmp_path).metrics
    assert set(m["baselines"]) == {"popularity", "markov", "ease"}
    assert m["baselines"]["ease"]["params"] == {"l2": 10.0} and "NDCG@10" in m["baselines"]["markov"]["test"]
    assert "smoothing" in m["baselines"]["markov"]["params"]  # tuned on validation
    assert 0 < m["repeats"]["test"]["reachable"] <= 1
    with pytest.raises(ConfigError, match="eval.baseline_params.ease.lambda"):
        build_config({"eval": {"baselines": ["ease"], "baseline_params": {"ease": {"lambda": 1}}}})
    with pytest.raises(ConfigError, match="eval.baseline_params.sknn"):
        build_config({"eval": {"baselines": ["ease"], "baseline_params": {"sknn": {}}}})
    with pytest.raises(ConfigError, match="eval.baselines"):
        build_config({"eval": {"baselines": ["knn"]}})
