import numpy as np
import pytest
import torch

from seqrec.config import ModelSection
from seqrec.data.sequences import EvalSet, PreparedData, Sequences
from seqrec.eval.metrics import accuracy_per_user, bootstrap_ci, coverage
from seqrec.eval.ranking import (
    csr_gather_index,
    evaluate,
    left_padded,
    model_scorer,
    random_scorer,
    rank_targets,
)
from seqrec.models import build_model


def make_data(num_users=2000, num_items=500, seed=0, hist_len=(1, 30)):
    rng = np.random.default_rng(seed)
    items = np.arange(1, num_items + 1)
    hists = [rng.choice(items, size=rng.integers(*hist_len), replace=False) for _ in range(num_users)]
    targets = np.array([rng.choice(np.setdiff1d(np.arange(1, num_items + 1), h)) for h in hists])
    inputs = Sequences.from_lists(hists)
    es = EvalSet(users=np.arange(num_users), inputs=inputs, targets=targets)
    pop = np.bincount(inputs.values, minlength=num_items + 1).astype(np.int64)
    data = PreparedData(
        name="toy", num_users=num_users, num_items=num_items, train=inputs, valid=es, test=es,
        item_ids=np.array(["<pad>", *map(str, range(1, num_items + 1))]),
        user_ids=np.array([str(u) for u in range(num_users)]), item_popularity=pop,
    )
    return data, es


def test_left_padded_and_gather():
    s = Sequences.from_lists([[1, 2, 3], [], [4, 5, 6, 7, 8]])
    out = left_padded(s, np.array([0, 1, 2]), 4)
    assert out.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [5, 6, 7, 8]]
    idx = csr_gather_index(s.offsets, np.array([2, 0]))
    assert s.values[idx].tolist() == [4, 5, 6, 7, 8, 1, 2, 3]


def test_ranks_match_brute_force():
    data, es = make_data(num_users=50, num_items=40, hist_len=(1, 10))
    torch.manual_seed(0)
    table = torch.randn(41, 8)
    hid = torch.randn(50, 8)

    def scorer(history):
        # score depends on the row: identify rows by their histories order in the batch
        return hid[: history.shape[0]] @ table.T

    ranks, top = rank_targets(scorer, es, 40, 10, filter_seen=True, batch_size=64)
    scores = (hid @ table.T).numpy()
    for u in range(50):
        s = scores[u].copy()
        s[0] = -np.inf
        s[es.inputs[u]] = -np.inf
        t = es.targets[u]
        assert ranks[u] == (s > s[t]).sum()
        assert set(top[u]) == set(np.argsort(-s)[:10])


def test_constant_scorer_gets_mid_rank_not_best():
    data, es = make_data(num_users=20, num_items=100)
    ranks, _ = rank_targets(lambda h: torch.zeros(h.shape[0], 101), es, 100, 10, filter_seen=False)
    assert np.all(ranks == 49.5)


def test_random_model_matches_analytic_expectation():
    """A random scorer's HR@10/NDCG@10 is within 3 standard errors of the analytic value."""
    data, es = make_data(num_users=3000, num_items=500)
    res = evaluate(random_scorer(500, seed=1), es, data, 30, ks=[10], filter_seen=True, bootstrap=0)
    lens = es.inputs.lengths()
    n_cand = 500 - lens  # candidates left after filtering seen (target never seen here)
    hr_expected = np.mean(10 / n_cand)
    ndcg_expected = np.mean([sum(1 / np.log2(r + 2) for r in range(10)) / n for n in n_cand])
    assert abs(res.metrics["HR@10"] - hr_expected) < 3 * res.stderr["HR@10"]
    assert abs(res.metrics["NDCG@10"] - ndcg_expected) < 3 * res.stderr["NDCG@10"]


def test_random_weight_sasrec_is_random():
    data, es = make_data(num_users=2000, num_items=500)
    torch.manual_seed(0)
    model = build_model(ModelSection(name="sasrec"), 500, 30).eval()
    res = evaluate(model_scorer(model), es, data, 30, ks=[10], filter_seen=True, bootstrap=0)
    expected = np.mean(10 / (500 - es.inputs.lengths()))
    assert abs(res.metrics["HR@10"] - expected) < 3 * res.stderr["HR@10"]


def test_sampled_protocol_fixed_and_labelled():
    data, es = make_data(num_users=200, num_items=300)
    sc = random_scorer(300, seed=3)
    a = evaluate(sc, es, data, 20, protocol="sampled", num_negatives=50, bootstrap=0, seed=7)
    assert a.protocol["ranking"].startswith("sampled")
    # random model among 51 candidates: HR@10 ~ 10/51
    assert abs(a.metrics["HR@10"] - 10 / 51) < 4 * a.stderr["HR@10"]
    from seqrec.eval.ranking import _sampled_negatives

    n1 = _sampled_negatives(es, 300, 50, "uniform", data.item_popularity, 7)
    n2 = _sampled_negatives(es, 300, 50, "uniform", data.item_popularity, 7)
    assert np.array_equal(n1, n2)
    for u in range(200):
        assert len(set(n1[u])) == 50
        assert es.targets[u] not in n1[u]
        assert not set(n1[u]) & set(es.inputs[u].tolist())


def test_metrics_and_ci():
    m = accuracy_per_user(np.array([0, 1, 9, 10, 100]), 10)
    assert m["HR@10"].tolist() == [1, 1, 1, 0, 0]
    assert m["NDCG@10"][0] == 1.0 and m["MRR@10"][1] == 0.5
    assert coverage(np.array([[1, 2], [2, 3]]), 10, 2) == pytest.approx(0.3)
    ci = bootstrap_ci({"x": np.r_[np.zeros(500), np.ones(500)]}, 200, seed=0)
    lo, hi = ci["x"]
    assert lo < 0.5 < hi and hi - lo < 0.1


def test_fully_padded_rows_no_nan():
    model = build_model(ModelSection(name="sasrec"), 50, 10)
    x = torch.zeros(3, 10, dtype=torch.long)
    x[1, -2:] = torch.tensor([3, 4])
    h = model(x)
    assert not torch.isnan(h).any()
    h.sum().backward()
    assert all(not torch.isnan(p.grad).any() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["sasrec", "bert4rec", "gru4rec"])
def test_length_sorted_trimmed_evaluation_equals_the_plain_pass(name):
    """A padding-invariant model's scorer is fed length-sorted chunks cut to their longest history: per-user
    ranks and top-k lists, and so every metric, equal a plain pass over full-width chunks in user order."""
    data, es = make_data(num_users=300, num_items=80, hist_len=(1, 40))
    torch.manual_seed(0)
    model = build_model(ModelSection(name=name, size="small", hidden=16), num_items=80, max_len=30).eval()
    fast = model_scorer(model)
    assert fast.prefers_length_sorted

    def plain(history):  # no attribute: full width, user order
        return model.prediction_hidden(history).float() @ model.item_weight().float().T

    with torch.no_grad():
        a = evaluate(fast, es, data, 30, ks=[10], batch_size=64, bootstrap=0, keep_per_user=True)
        b = evaluate(plain, es, data, 30, ks=[10], batch_size=64, bootstrap=0, keep_per_user=True)
    for key in b.per_user:
        np.testing.assert_allclose(a.per_user[key], b.per_user[key], rtol=0, atol=1e-12, err_msg=key)
    assert a.metrics == pytest.approx(b.metrics, abs=1e-12)
