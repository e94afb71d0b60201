from __future__ import annotations

import numpy as np
import pytest

from seqrec.config import DataConfig, SyntheticConfig
from seqrec.data import prepare_data
from seqrec.data.sequences import EvalSet, Sequences
from seqrec.eval.baselines import fit_baseline
from seqrec.eval.diagnostics import capped, repeat_diagnostics, repeat_diagnostics_reference
from seqrec.eval.ranking import evaluate


def eval_set(inputs: list[list[int]], targets: list[int]) -> EvalSet:
    return EvalSet(np.arange(len(targets)), Sequences.from_lists(inputs), np.asarray(targets, dtype=np.int64))


def test_shares_by_hand():
    es = eval_set([[1, 2, 3], [4, 5], [], [6, 6], [7]], [3, 4, 1, 6, 8])
    d = repeat_diagnostics(es)
    assert d.num_targets == 5
    assert d.target_in_input == pytest.approx(3 / 5)  # users 0, 1, 3
    assert d.target_is_last == pytest.approx(2 / 5)  # users 0, 3
    assert d.reachable == pytest.approx(2 / 5)
    assert d.to_dict() == {"num_targets": 5, "target_in_input": 0.6, "target_is_last": 0.4, "filter_seen": True,
                           "reachable": 0.4}  # fmt: skip
    assert "eval.filter_seen=false" in d.warning() and "\n" not in d.warning()
    assert "60%" in d.warning() and "0.400" in d.warning()
    off = repeat_diagnostics(es, filter_seen=False)
    assert off.reachable == 1.0 and off.warning() is None and off.target_in_input == pytest.approx(0.6)


def test_warning_threshold_and_empty():
    few = eval_set([[1], [2], [3], [4], [5]], [1, 9, 9, 9, 9])  # 20% unreachable: not more than 20%
    assert repeat_diagnostics(few).warning() is None
    assert repeat_diagnostics(few).warning(threshold=0.1) is not None
    empty = repeat_diagnostics(eval_set([], []))
    assert empty.num_targets == 0 and empty.reachable == 1.0 and empty.warning() is None


def test_phrasing_against_the_cap():
    assert capped("HR@10", 0.045, 0.17) == "HR@10 0.045 of at most 0.17 reachable"
    assert capped("NDCG@10", 0.0312, 1.0) == "NDCG@10 0.031"
    d = repeat_diagnostics(eval_set([[1], [2]], [1, 3]))
    assert d.phrase("HR@10", 0.25) == "HR@10 0.250 of at most 0.5 reachable"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_reference(seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(1, 8, size=rng.integers(0, 6)).tolist() for _ in range(300)]
    es = eval_set(inputs, rng.integers(1, 8, size=300).tolist())
    for filter_seen in (True, False):
        assert repeat_diagnostics(es, filter_seen) == repeat_diagnostics_reference(es, filter_seen)


def test_synthetic_repeats_reward_repeat_last_without_the_seen_filter():
    """repeat_prob=0.7: most targets are repeats, the seen-filter hides them, repeat-last wins once it is off."""
    syn = SyntheticConfig(num_users=800, num_items=300, mean_length=20, num_topics=10, repeat_prob=0.7)
    data = prepare_data(DataConfig(name="synthetic", synthetic=syn, cache=False))
    diag = repeat_diagnostics(data.test, filter_seen=True)
    assert 0.6 < diag.target_in_input < 0.85 and diag.target_is_last > 0.4
    assert diag.reachable == pytest.approx(1 - diag.target_in_input)
    assert diag.warning() is not None and "eval.filter_seen=false" in diag.warning()

    def hr(name: str, filter_seen: bool) -> float:
        res = evaluate(fit_baseline(name, data), data.test, data, 50, filter_seen=filter_seen, bootstrap=0)
        return res.metrics["HR@10"]

    pop_on, pop_off = hr("popularity", True), hr("popularity", False)
    rep_on, rep_off = hr("repeat_last", True), hr("repeat_last", False)
    assert rep_off > 0.5 and rep_off > 3 * pop_off, (rep_off, pop_off)
    assert pop_on <= diag.reachable and rep_on <= diag.reachable  # the cap the diagnostics report
    assert rep_on == pytest.approx(pop_on)  # with the filter on, repeat_last has nothing left but popularity
