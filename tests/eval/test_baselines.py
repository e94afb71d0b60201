"""Every baseline against a plain-Python brute-force reference (exact scores) on tiny and random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.sequences import EvalSet, PreparedData, Sequences
from seqrec.data.split import leave_one_out
from seqrec.eval.baselines import BASELINES, BaselineUnavailable, common, fit_baseline
from seqrec.eval.baselines import ease as ease_mod
from seqrec.eval.baselines.common import item_gram, item_gram_blocks, stable_topk
from seqrec.eval.baselines.grid import grid_points
from seqrec.eval.baselines.registry import GRID_FITTERS
from seqrec.eval.ranking import evaluate, left_padded


def make_prepared(train: list[list[int]], num_items: int, valid: EvalSet | None = None) -> PreparedData:
    seqs = Sequences.from_lists(train)
    pop = np.bincount(np.asarray(seqs.values, dtype=np.int64), minlength=num_items + 1).astype(np.int64)
    pop[0] = 0
    empty = EvalSet(users=np.zeros(0, np.int64), inputs=Sequences.from_lists([]), targets=np.zeros(0, np.int64))
    return PreparedData(
        name="toy", num_users=len(train), num_items=num_items, train=seqs, valid=valid or empty,
        test=valid or empty, item_ids=np.array(["<pad>", *map(str, range(1, num_items + 1))]),
        user_ids=np.array([str(u) for u in range(len(train))]), item_popularity=pop,
    )  # fmt: skip


def random_prepared(num_users: int = 80, num_items: int = 30, seed: int = 0, repeats: bool = True) -> PreparedData:
    """Leave-one-out split of random sequences (with repeats), as ``prepare_data`` would produce."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, num_items + 1, size=rng.integers(1, 25)).tolist() for _ in range(num_users)]
    if not repeats:
        seqs = [list(dict.fromkeys(s)) for s in seqs]
    seqs[3] = []  # a user without interactions
    sp = leave_one_out(Sequences.from_lists(seqs).offsets, Sequences.from_lists(seqs).values)
    data = make_prepared(sp.train.tolist(), num_items)
    data.valid, data.test = sp.valid, sp.test
    return data


TINY_TRAIN = [[1, 2, 3], [2, 3, 4, 2], [1, 3], []]  # 5 items; item 5 never seen
TINY_HISTORIES = [[0, 0, 0, 0], [0, 0, 0, 2], [0, 2, 3, 2], [1, 5, 4, 3], [5, 5, 5, 5]]


# ---------------------------------------------------------------------------------------------------------------
# brute-force references: one user, one item at a time, float64


def ref_tiebreak(pop: list[int]) -> list[float]:
    return [p / (max(pop) + 1) for p in pop]


def ref_repeat_last(data: PreparedData, hist: list[int]) -> list[float]:
    out = ref_tiebreak(data.item_popularity.tolist())
    for pos, item in enumerate(hist):
        if item > 0:
            out[item] = pos + 1.0  # later positions overwrite: the most recent occurrence
    return out


def ref_markov(data: PreparedData, hist: list[int], smoothing: float) -> list[float]:
    V = data.num_items
    counts: dict[tuple[int, int], int] = {}
    for seq in data.train.tolist():
        for a, b in zip(seq[:-1], seq[1:], strict=True):
            counts[a, b] = counts.get((a, b), 0) + 1
    pop = data.item_popularity.tolist()
    prior = [p / sum(pop) for p in pop]
    a = hist[-1]
    n_a = sum(c for (x, _), c in counts.items() if x == a)
    return [(counts.get((a, b), 0) + smoothing * prior[b]) / (n_a + smoothing) for b in range(V + 1)]


def ref_cosine(data: PreparedData) -> list[list[float]]:
    V = data.num_items
    users_of = [set() for _ in range(V + 1)]
    for u, seq in enumerate(data.train.tolist()):
        for item in seq:
            users_of[item].add(u)
    sim = [[0.0] * (V + 1) for _ in range(V + 1)]
    for i in range(1, V + 1):
        for j in range(1, V + 1):
            if i != j and users_of[i] and users_of[j]:
                sim[i][j] = len(users_of[i] & users_of[j]) / math.sqrt(len(users_of[i]) * len(users_of[j]))
    return sim


def ref_sknn(data: PreparedData, hist: list[int], decay: float) -> list[float]:
    sim = ref_cosine(data)
    V = data.num_items
    score = [0.0] * (V + 1)
    for pos, item in enumerate(hist):
        if item > 0:
            for j in range(1, V + 1):
                score[j] += decay ** (len(hist) - 1 - pos) * sim[item][j]
    tb = ref_tiebreak(data.item_popularity.tolist())
    return [score[j] if score[j] > 0 else tb[j] - 1 for j in range(V + 1)]


def ref_ease(data: PreparedData, hist: list[int], l2: float) -> list[float]:
    V = data.num_items
    X = np.zeros((len(data.train), V))
    for u, seq in enumerate(data.train.tolist()):
        for item in seq:
            X[u, item - 1] = 1.0
    P = np.linalg.inv(X.T @ X + l2 * np.eye(V))
    B = np.eye(V) - P / np.diag(P)[None, :]
    if all(h == 0 for h in hist):
        return ref_tiebreak(data.item_popularity.tolist())
    x = np.zeros(V)
    for item in hist:
        if item > 0:
            x[item - 1] = 1.0
    return [0.0, *(x @ B).tolist()]


def scores_of(name: str, data: PreparedData, histories: list[list[int]], **params) -> np.ndarray:
    scorer = fit_baseline(name, data, **params)
    return scorer(torch.tensor(histories, dtype=torch.int64)).double().numpy()


def assert_scores(got: np.ndarray, want: list[list[float]]) -> None:
    # column 0 is padding: evaluation sets it to -inf, so its value is not part of the contract
    np.testing.assert_allclose(got[:, 1:], np.asarray(want)[:, 1:], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# tiny, hand-computable data


def test_popularity_is_the_training_counts():
    data = make_prepared(TINY_TRAIN, 5)
    got = scores_of("popularity", data, TINY_HISTORIES)
    assert got.tolist() == [[0, 2, 3, 3, 1, 0]] * len(TINY_HISTORIES)


def test_repeat_last_by_hand():
    data = make_prepared(TINY_TRAIN, 5)
    got = scores_of("repeat_last", data, TINY_HISTORIES)
    # popularity tie-breaker: pop / (max + 1) = [0, 2, 3, 3, 1, 0] / 4
    assert got[0, 1:].tolist() == [0.5, 0.75, 0.75, 0.25, 0.0]  # empty history: popularity only
    assert got[2, 1:].tolist() == [0.5, 4.0, 3.0, 0.25, 0.0]  # 2 (last) > 3 > everything else
    assert got[3, 1:].tolist() == [1.0, 0.75, 4.0, 3.0, 2.0]
    assert_scores(got, [ref_repeat_last(data, h) for h in TINY_HISTORIES])


def test_markov_by_hand():
    data = make_prepared(TINY_TRAIN, 5)
    got = scores_of("markov", data, TINY_HISTORIES, smoothing=1.0)
    # transitions 1->2, 2->3 (x2), 3->4, 4->2, 1->3; popularity prior [2, 3, 3, 1, 0] / 9
    np.testing.assert_allclose(got[1, 1:], [(0 + 2 / 9) / 3, (0 + 3 / 9) / 3, (2 + 3 / 9) / 3, 1 / 27, 0], rtol=1e-6)
    np.testing.assert_allclose(got[0, 1:], np.array([2, 3, 3, 1, 0]) / 9, rtol=1e-6)  # empty: the prior
    np.testing.assert_allclose(got[4, 1:], np.array([2, 3, 3, 1, 0]) / 9, rtol=1e-6)  # unseen predecessor: prior
    for smoothing in (0.1, 1.0, 25.0):
        assert_scores(
            scores_of("markov", data, TINY_HISTORIES, smoothing=smoothing),
            [ref_markov(data, h, smoothing) for h in TINY_HISTORIES],
        )


def test_sknn_by_hand():
    data = make_prepared(TINY_TRAIN, 5)
    got = scores_of("sknn", data, TINY_HISTORIES, neighbours=10, decay=0.5)
    # users of items: 1 {0, 2}, 2 {0, 1}, 3 {0, 1, 2}, 4 {1}; history [.., .., .., 2]: sim(2, j)
    s23, s21, s24 = 2 / math.sqrt(6), 1 / 2, 1 / math.sqrt(2)
    np.testing.assert_allclose(got[1, 1:4], [s21, 0.75 - 1, s23], rtol=1e-6)  # item 2 itself: no self-similarity
    assert got[1, 4] == pytest.approx(s24)
    assert got[1, 5] == pytest.approx(-1.0)  # unseen item 5: no similarity, popularity 0
    for decay in (1.0, 0.5):
        assert_scores(
            scores_of("sknn", data, TINY_HISTORIES, neighbours=10, decay=decay),
            [ref_sknn(data, h, decay) for h in TINY_HISTORIES],
        )


def test_ease_matches_the_closed_form():
    data = make_prepared(TINY_TRAIN, 5)
    for l2 in (0.5, 10.0):
        assert_scores(scores_of("ease", data, TINY_HISTORIES, l2=l2), [ref_ease(data, h, l2) for h in TINY_HISTORIES])
    weights = fit_baseline("ease", data, l2=1.0).weights
    assert torch.all(weights.diagonal() == 0) and torch.all(weights[0] == 0) and torch.all(weights[:, 0] == 0)


def test_ease_skips_large_catalogues():
    data = make_prepared(TINY_TRAIN, 5)
    with pytest.raises(BaselineUnavailable, match="5 items > max_items=4"):
        fit_baseline("ease", data, max_items=4)
    assert ease_mod.MAX_ITEMS == 20_000


def test_bad_parameters_are_rejected():
    data = make_prepared(TINY_TRAIN, 5)
    for name, params in [("markov", {"smoothing": 0}), ("sknn", {"decay": 0}), ("sknn", {"neighbours": 0}),
                         ("ease", {"l2": 0})]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            fit_baseline(name, data, **params)


# ---------------------------------------------------------------------------------------------------------------
# random data


@pytest.mark.parametrize("seed", [0, 1])
def test_random_data_matches_the_references(seed):
    data = random_prepared(seed=seed)
    hists = left_padded(data.test.inputs, np.arange(len(data.test)), 12).tolist()
    hists.append([0] * 12)
    refs = {
        "repeat_last": ({}, lambda h: ref_repeat_last(data, h)),
        "markov": ({"smoothing": 3.0}, lambda h: ref_markov(data, h, 3.0)),
        "sknn": ({"neighbours": 100, "decay": 0.7}, lambda h: ref_sknn(data, h, 0.7)),
        "ease": ({"l2": 20.0}, lambda h: ref_ease(data, h, 20.0)),
    }
    for name, (params, ref) in refs.items():
        assert_scores(scores_of(name, data, hists, **params), [ref(h) for h in hists])
    pop = np.zeros(data.num_items + 1)
    for seq in data.train.tolist():
        for item in seq:
            pop[item] += 1
    assert scores_of("popularity", data, hists)[0].tolist() == pop.tolist()


def test_sknn_keeps_the_top_neighbours():
    data = random_prepared(seed=2, num_items=40)
    sim = np.asarray(ref_cosine(data))
    model = fit_baseline("sknn", data, neighbours=5, decay=1.0)
    for item in range(1, data.num_items + 1):
        kept = model.similarity[item].double().numpy()
        want = np.sort(sim[item])[::-1][:5]
        np.testing.assert_allclose(kept, want, rtol=1e-5, atol=1e-7)  # the 5 largest similarities, in order
        nbr = model.neighbours[item].numpy()
        np.testing.assert_allclose(sim[item][nbr[kept > 0]], kept[kept > 0], rtol=1e-5)


def test_sknn_ties_go_to_the_smaller_item_id():
    data = make_prepared(TINY_TRAIN, 5)
    model = fit_baseline("sknn", data, neighbours=1, decay=1.0)
    # item 3's users {0, 1, 2}: items 1 ({0, 2}) and 2 ({0, 1}) are tied at 2 / sqrt(6); item 1 is kept
    assert model.neighbours[3].tolist() == [1]
    assert model.similarity[3].item() == pytest.approx(2 / math.sqrt(6))


def test_stable_topk_matches_a_stable_sort():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        n, m = torch.randint(1, 12, (2,), generator=gen).tolist()
        k = int(torch.randint(1, m + 1, (1,), generator=gen))
        x = torch.randint(0, 4, (n, m), generator=gen).float()  # many ties
        values, idx = stable_topk(x, k)
        ref_values, ref_idx = x.sort(dim=1, descending=True, stable=True)
        assert torch.equal(values, ref_values[:, :k]) and torch.equal(idx, ref_idx[:, :k])


@pytest.mark.parametrize("name", ["sknn", "ease"])
def test_grid_fitters_equal_one_fit_per_point(name):
    data = random_prepared(seed=8, num_items=40)
    grid = {"sknn": {"neighbours": [30, 3, 10], "decay": [1.0, 0.5]}, "ease": {"l2": [5.0, 50.0]}}[name]
    hist = torch.from_numpy(left_padded(data.test.inputs, np.arange(len(data.test)), 10))
    points = list(GRID_FITTERS[name](data, grid))
    assert [p for p, _ in points] == grid_points(grid)
    for params, scorer in points:
        assert torch.equal(scorer(hist), fit_baseline(name, data, **params)(hist)), params


def test_gram_blocks_match_a_dense_product(monkeypatch):
    data = random_prepared(seed=3, num_items=50)
    X = np.zeros((len(data.train), data.num_items + 1))
    for u, seq in enumerate(data.train.tolist()):
        X[u, seq] = 1.0
    X[:, 0] = 0
    assert np.array_equal(item_gram(data).numpy(), X.T @ X)
    blocks = list(item_gram_blocks(data, max_elements=16 * (data.num_items + 1)))  # 16 columns per block
    assert [first for first, _ in blocks] == list(range(0, data.num_items + 1, 16))
    assert np.array_equal(torch.cat([b for _, b in blocks], dim=1).numpy(), X.T @ X)
    monkeypatch.setattr(common, "GRAM_USER_BLOCK_ELEMENTS", 16 * 7)  # 7 users per dense block: the chunked sum
    blocks = list(item_gram_blocks(data))
    assert np.array_equal(torch.cat([b for _, b in blocks], dim=1).numpy(), X.T @ X)


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_baseline_evaluates_finite_and_deterministic(name):
    data = random_prepared(seed=4)
    scorer = fit_baseline(name, data)
    empty = torch.zeros(3, 7, dtype=torch.int64)
    out = scorer(empty)
    assert out.shape == (3, data.num_items + 1) and torch.isfinite(out).all()  # fully padded: no NaN
    hist = torch.from_numpy(left_padded(data.test.inputs, np.arange(len(data.test)), 10))
    a, b = scorer(hist), fit_baseline(name, data)(hist)
    assert torch.isfinite(a).all() and torch.equal(a, b)
    res = evaluate(scorer, data.test, data, 10, ks=[5, 10], bootstrap=50, batch_size=16)
    assert all(math.isfinite(v) for v in res.metrics.values())
    full = evaluate(scorer, data.test, data, 10, ks=[10], bootstrap=0, batch_size=1000)
    assert full.metrics["NDCG@10"] == pytest.approx(res.metrics["NDCG@10"])  # chunking does not matter


@pytest.mark.parametrize("name", list(BASELINES))
def test_fit_ignores_evaluation_targets(name):
    """Baselines fit on data.train only: changing validation/test targets changes no score."""
    data = random_prepared(seed=5)
    hist = torch.from_numpy(left_padded(data.test.inputs, np.arange(len(data.test)), 10))
    before = fit_baseline(name, data)(hist)
    data.valid = EvalSet(data.valid.users, data.valid.inputs, (data.valid.targets % data.num_items) + 1)
    data.test = EvalSet(data.test.users, data.test.inputs, (data.test.targets % data.num_items) + 1)
    assert torch.equal(before, fit_baseline(name, data)(hist))
