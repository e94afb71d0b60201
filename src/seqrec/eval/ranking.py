"""Chunked full-catalogue ranking (and the optional sampled-negatives protocol).

Users are scored in chunks of ``batch_size``: one ``(chunk, num_items + 1)`` score block at a time, never a
users x items matrix. Seen-item filtering sets the scores of the user's input items to -inf (the target too, if
the user consumed it before: a repeat target then counts as a miss, which is the honest reading of "filter seen").
Ties are broken at the mid-rank so a constant scorer gets the expected, not the best, rank. A non-finite score
never helps: NaN scores count as -inf (a NaN target ranks last, a NaN item is never recommended), so a diverged
model scores ~0, never 1.0. Top-k lists hold only real, unfiltered items: a slot that would be padding, a filtered
or a NaN item is 0, so Coverage@K <= 1 whatever K.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from seqrec.data.sequences import EvalSet, PreparedData, Sequences
from seqrec.data.windows import trim_leading_padding
from seqrec.distributed import all_gather, rank, world_size
from seqrec.eval.metrics import (
    accuracy_per_user,
    bootstrap_ci,
    coverage,
    item_self_information,
    standard_errors,
    surprisal_per_user,
)

# A scorer maps left-padded histories (B, T) int64 to scores (B, num_items + 1).
Scorer = Callable[[Tensor], Tensor]


def left_padded(seqs: Sequences, rows: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` items of each selected sequence, left-padded with 0 -> (len(rows), length) int64."""
    starts = seqs.offsets[rows]
    ends = seqs.offsets[rows + 1]
    idx = ends[:, None] - length + np.arange(length)[None, :]  # (n, L)
    valid = idx >= starts[:, None]
    out = np.where(valid, np.asarray(seqs.values)[np.clip(idx, 0, max(seqs.nnz - 1, 0))], 0)
    return out.astype(np.int64)


def csr_gather_index(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Flat positions of all values of the selected CSR rows, in row order (no Python loop)."""
    starts = np.asarray(offsets[rows], dtype=np.int64)
    lens = np.asarray(offsets[rows + 1], dtype=np.int64) - starts
    total = int(lens.sum())
    row_begin = np.repeat(np.cumsum(lens) - lens, lens)  # where each row starts in the output
    return np.repeat(starts, lens) + (np.arange(total) - row_begin)


def model_scorer(model: torch.nn.Module) -> Scorer:
    trim = bool(getattr(model, "padding_invariant", False))

    def score(history: Tensor) -> Tensor:
        if trim:  # the chunk's longest history (+ 1 padding column) sets its width: exact for these models
            history = trim_leading_padding(history)
        hidden = model.prediction_hidden(history)  # (B, D)
        return hidden.float() @ model.item_weight().float().T  # (B, V + 1)

    score.prefers_length_sorted = trim  # type: ignore[attr-defined]  # read by evaluate: chunks of similar length
    return score


def popularity_scorer(item_popularity: np.ndarray) -> Scorer:
    pop = torch.tensor(np.array(item_popularity, dtype=np.float32))  # a copy: cached arrays are read-only maps

    def score(history: Tensor) -> Tensor:
        return pop.to(history.device).expand(history.shape[0], -1).clone()

    return score


def random_scorer(num_items: int, seed: int) -> Scorer:
    gen = torch.Generator().manual_seed(seed)

    def score(history: Tensor) -> Tensor:
        return torch.rand(history.shape[0], num_items + 1, generator=gen).to(history.device)

    return score


@dataclass
class EvalResult:
    metrics: dict[str, float]  # "HR@10" -> mean over users
    ci: dict[str, list[float]]  # "HR@10" -> [low, high] (95% bootstrap)
    stderr: dict[str, float]
    protocol: dict  # how the numbers were made, printed above every table
    num_users: int
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """Metrics, 95% CIs, standard errors, protocol and user count as plain JSON-able values."""
        return {"metrics": dict(self.metrics), "ci95": {k: list(v) for k, v in self.ci.items()},
                "stderr": dict(self.stderr), "protocol": dict(self.protocol), "num_users": self.num_users}


def _sampled_negatives(
    eval_set: EvalSet, num_items: int, n: int, sampler: str, popularity: np.ndarray, seed: int
) -> np.ndarray:
    """(U, n) fixed negatives per user: not the target, not a seen item, no duplicates; seeded."""
    rng = np.random.default_rng(seed)
    U = len(eval_set)
    if sampler == "popularity":
        p = np.asarray(popularity[1:], dtype=np.float64) + 1.0
        p /= p.sum()
        draw = lambda size: rng.choice(num_items, size=size, p=p) + 1  # noqa: E731
    else:
        draw = lambda size: rng.integers(1, num_items + 1, size=size)  # noqa: E731
    lengths = eval_set.inputs.lengths()
    seen_keys = np.repeat(np.arange(U, dtype=np.int64), lengths) * (num_items + 1) + np.asarray(
        eval_set.inputs.values, dtype=np.int64
    )
    seen_keys = np.unique(np.concatenate([seen_keys, np.arange(U) * (num_items + 1) + eval_set.targets]))
    if num_items - 1 < n:
        raise ValueError(f"eval.num_negatives={n} exceeds the catalogue size {num_items}")
    neg = draw((U, n))
    for _ in range(1000):
        keys = np.arange(U)[:, None] * (num_items + 1) + neg
        bad = np.isin(keys, seen_keys)
        order = np.argsort(neg, axis=1, kind="stable")
        sorted_neg = np.take_along_axis(neg, order, axis=1)
        dup_sorted = np.zeros_like(bad)
        dup_sorted[:, 1:] = sorted_neg[:, 1:] == sorted_neg[:, :-1]
        dup = np.zeros_like(bad)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        bad |= dup
        if not bad.any():
            return neg
        neg[bad] = draw(int(bad.sum()))
    raise RuntimeError("could not draw distinct negatives (user histories cover almost the whole catalogue)")


@torch.no_grad()
def rank_targets(
    scorer: Scorer,
    eval_set: EvalSet,
    num_items: int,
    max_len: int,
    *,
    filter_seen: bool = True,
    batch_size: int = 512,
    topk: int = 10,
    device: torch.device | str = "cpu",
    negatives: np.ndarray | None = None,
    start: int = 0,
    stop: int | None = None,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (ranks (n,) float64 0-based, top-k items (n, topk) int64) for rows ``start:stop`` of ``eval_set``.

    With ``negatives`` (U, n) the target is ranked among those items only (sampled protocol). Chunks begin at
    ``start``, so a ``start`` that is a multiple of ``batch_size`` scores exactly the blocks of a full pass.
    ``order`` (U,): a permutation of the rows to score in; positions ``start:stop`` (and the output) are then
    positions in ``order``.
    """
    U = len(eval_set) if stop is None else stop
    ranks = np.empty(U - start, dtype=np.float64)
    top = np.zeros((U - start, topk), dtype=np.int64)
    targets_all = np.asarray(eval_set.targets, dtype=np.int64)
    for first in range(start, U, batch_size):
        positions = np.arange(first, min(first + batch_size, U))
        rows = positions if order is None else order[positions]
        out = positions - start  # positions in the returned arrays
        history = torch.from_numpy(left_padded(eval_set.inputs, rows, max_len)).to(device)  # (b, L)
        scores = masked_scores(scorer, history, eval_set.inputs, rows, filter_seen, device)  # (b, V + 1)
        targets = torch.from_numpy(targets_all[rows]).to(device)
        target_scores = scores.gather(1, targets[:, None])  # (b, 1)
        if negatives is not None:
            cand = scores.gather(1, torch.from_numpy(negatives[rows]).to(device))  # (b, n)
            greater = (cand > target_scores).sum(1)
            equal = (cand == target_scores).sum(1)
            r_ = greater.double() + equal.double() / 2
            last = torch.full_like(r_, float(cand.shape[1]))  # a filtered or NaN target: behind every negative
            ranks[out] = torch.where(target_scores[:, 0] == -torch.inf, last, r_).cpu().numpy()
            continue
        greater = (scores > target_scores).sum(1)
        equal = (scores == target_scores).sum(1) - 1  # ties other than the target itself
        # A target filtered out as seen, or scored NaN, is at -inf: count it as ranked last.
        r_ = greater.double() + equal.clamp(min=0).double() / 2
        r_ = torch.where(target_scores[:, 0] == -torch.inf, torch.full_like(r_, float(num_items)), r_)
        ranks[out] = r_.cpu().numpy()
        top[out] = topk_real(scores, topk).cpu().numpy()
    return ranks, top


def masked_scores(
    scorer: Scorer, history: Tensor, inputs: Sequences, rows: np.ndarray, filter_seen: bool, device: torch.device | str
) -> Tensor:
    """(b, V + 1) fp32 scores of ``history`` with padding, NaN and (``filter_seen``) the rows' input items at -inf."""
    scores = scorer(history).float()  # (b, V + 1)
    scores = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)  # NaN never ranks high
    scores[:, 0] = -torch.inf  # padding is never a recommendation
    if filter_seen:
        lens = inputs.lengths()[rows]
        if lens.sum():
            r = np.repeat(np.arange(len(rows)), lens)
            flat = np.asarray(inputs.values)[csr_gather_index(inputs.offsets, rows)]
            scores[torch.from_numpy(r).to(device), torch.from_numpy(flat.astype(np.int64)).to(device)] = -torch.inf
    return scores


def topk_real(scores: Tensor, k: int) -> Tensor:
    """(b, k) ids of the k best items; slots beyond the real (finite or +inf) candidates are 0, never padding."""
    k_eff = min(k, scores.shape[1])
    values, ids = scores.topk(k_eff, dim=1)
    ids = torch.where(values == -torch.inf, torch.zeros_like(ids), ids)
    if k_eff < k:
        ids = torch.cat([ids, ids.new_zeros(ids.shape[0], k - k_eff)], dim=1)
    return ids


def evaluate(
    scorer: Scorer,
    eval_set: EvalSet,
    data: PreparedData,
    max_len: int,
    *,
    ks: list[int] | tuple[int, ...] = (10,),
    filter_seen: bool = True,
    batch_size: int = 512,
    protocol: str = "full",
    num_negatives: int = 100,
    negative_sampler: str = "uniform",
    bootstrap: int = 1000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    keep_per_user: bool = False,
    sharded: bool = False,
) -> EvalResult:
    """Rank every target of ``eval_set`` and compute metrics @ each K with 95% bootstrap CIs.

    ``sharded``: every rank of the default process group must call this; each scores its share of the users
    (whole ``batch_size`` chunks, so every score block is exactly the single-process one), and the per-user
    ranks and top-k lists are gathered to every rank in the original user order. Metrics, CIs and anything
    decided from them (early stopping) are then identical on every rank and equal to a one-process run.
    """
    ks = sorted(set(ks))
    negatives = None
    if protocol == "sampled":
        negatives = _sampled_negatives(
            eval_set, data.num_items, num_negatives, negative_sampler, data.item_popularity, seed
        )
    start, stop = shard_rows(len(eval_set), batch_size, rank(), world_size()) if sharded else (0, len(eval_set))
    order = None
    if getattr(scorer, "prefers_length_sorted", False):
        # Longest histories first, ties in user order: each chunk is then cut to a width close to its rows'
        # (ML-1M at max_len 200: 40% of a validation pass). Per-user results go back to user order below.
        order = np.argsort(-np.minimum(eval_set.inputs.lengths(), max_len), kind="stable")
    ranks, top = rank_targets(
        scorer,
        eval_set,
        data.num_items,
        max_len,
        filter_seen=filter_seen,
        batch_size=batch_size,
        topk=max(ks),
        device=device,
        negatives=negatives,
        start=start,
        stop=stop,
        order=order,
    )
    if sharded and world_size() > 1:
        parts = all_gather((ranks, top))  # rank order = scoring order
        ranks = np.concatenate([p[0] for p in parts])  # (U,)
        top = np.concatenate([p[1] for p in parts])  # (U, topk)
    if order is not None:  # back to user order
        ranks, top = _unpermute(ranks, order), _unpermute(top, order)
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        per_user.update(accuracy_per_user(ranks, k))
    extra: dict[str, float] = {}
    if negatives is None and len(eval_set):
        self_info = item_self_information(data.stats.get("item_user_counts", data.item_popularity), _n_users(data))
        for k in ks:
            per_user[f"Surprisal@{k}"] = surprisal_per_user(top, self_info, k)
            extra[f"Coverage@{k}"] = coverage(top, data.num_items, k)
    metrics = {name: float(v.mean()) if len(v) else 0.0 for name, v in per_user.items()}
    metrics.update(extra)
    ci = bootstrap_ci(per_user, bootstrap, seed)
    proto = {
        "ranking": "full" if negatives is None else f"sampled ({num_negatives} {negative_sampler} negatives)",
        "filter_seen": filter_seen,
        "split": data.split,
        "max_len": max_len,
        "ties": "mid-rank",
    }
    return EvalResult(
        metrics=metrics,
        ci=ci,
        stderr=standard_errors(per_user),
        protocol=proto,
        num_users=len(eval_set),
        per_user=per_user if keep_per_user else {},
    )


def _unpermute(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    out[order] = values
    return out


def shard_rows(n: int, batch_size: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n`` scored by ``rank``: a contiguous run of whole ``batch_size`` chunks."""
    chunks = -(-n // batch_size)
    return min(n, rank * chunks // world * batch_size), min(n, (rank + 1) * chunks // world * batch_size)


def _n_users(data: PreparedData) -> int:
    return int((data.train.lengths() > 0).sum()) or data.num_users
