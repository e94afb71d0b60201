"""Train one RecTools 0.19.0 transformer (SASRec or BERT4Rec) on seqrec's split and log time-to-quality per epoch.

Runs inside ``benchmarks/peers/.venv-rectools`` (see ``setup_rectools.sh``). ``compare.py --peer rectools`` starts
it with two things made by seqrec itself, so nothing about the protocol is re-implemented here:
- ``--split``: the leave-one-out split seqrec's ``prepare_data`` produced from the recipe (an ``.npz`` of plain
  integer arrays, read with ``allow_pickle=False``): every user's chronological training sequence, the validation
  and test targets and the exact validation / test inputs (test input = training sequence + validation target);
- ``--recipe``: the seqrec recipe resolved to plain values (``seqrec_run.resolved_recipe``).

Standalone (after ``compare.py`` wrote a split somewhere):

    benchmarks/peers/.venv-rectools/bin/python benchmarks/peers/rectools_run.py --model sasrec \
        --split /tmp/ml-100k-split.npz --recipe "$(cat recipe.json)" --threads 1 --out /tmp/rectools-sasrec.json

What it matches (seqrec recipe -> RecTools):
- data: the training interactions of the split, in seqrec's chronological order (passed to RecTools as strictly
  increasing datetimes, so its stable sort by datetime cannot reorder ties), weight 1;
- model: ``SASRecModel`` / ``BERT4RecModel`` with ``n_blocks`` = layers, ``n_heads``, ``n_factors`` = hidden,
  ``dropout_rate``, ``session_max_len`` = ``data.max_len``, ``loss="softmax"`` (full-catalogue cross-entropy),
  BERT4Rec ``mask_prob``; ``lr``, ``batch_size``; Adam with RecTools' fixed betas (0.9, 0.98) (seqrec: AdamW with
  the same betas and weight decay 0, the same update); gradient-norm clipping at the recipe's value through the
  Lightning ``Trainer`` (``gradient_clip_val``); ``deterministic=True``; seed via ``seed_everything``;
- evaluation: full-catalogue ranking of RecTools' own user/item embeddings (``_get_user_item_embeddings``, the
  path ``recommend`` uses: its own collate, BERT4Rec's trailing MASK token, left padding to ``session_max_len``),
  every earlier item of the user removed, mid-rank ties and NaN-as-last exactly as ``seqrec.eval.ranking``;
  NDCG@10 / HR@10 over all evaluated users. An item RecTools never saw in training (it is absent from its id
  map) cannot be recommended: such a target counts as a miss, and the count is reported;
- stopping: epoch cap ``train.epochs`` and early stopping on validation NDCG@10 after ``train.patience`` epochs
  without a strict improvement (as seqrec), computed by a Lightning callback after every training epoch; the
  best-validation weights are restored and evaluated on test at the end.

Protocol differences RecTools does not allow to remove (listed in benchmarks/peers/README.md too):
- RecTools trains each user on the last ``session_max_len`` (+1 for SASRec) items only
  (``_filter_train_interactions``), one sequence per user per epoch; seqrec cuts every training sequence into
  windows and trains on every target. ``train_targets_per_epoch`` in the output counts both;
- architecture: RecTools' SASRec is the authors' block (feed-forward n_factors -> n_factors with ReLU, no 4x
  expansion; seqrec's ``small`` preset has a 4x GELU feed-forward), Xavier-normal initialisation, no key padding
  mask by default; BERT4Rec has no last-item masking (seqrec ``last_item_prob``);
- users with fewer than ``train_min_user_interactions`` (2) training items are not trained on (``users_trained``
  in the output; every ML-100K and ML-1M user has more).

Output (``--out``): the same JSON shape as ``recbole_run.py`` (per-epoch records with ``cum_train_s`` = training +
validation wall time from the start of ``Trainer.fit``, the per-epoch test evaluation excluded: it runs with the
clock paused and the RNG states restored), final metrics of the best-validation weights, setup time, versions.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from peer_rng import preserved_rng  # this folder is on sys.path: the runners are run as scripts

RECTOOLS_NAMES = {"sasrec": "SASRecModel", "bert4rec": "BERT4RecModel"}
EVAL_BATCH = 256  # users per scoring batch (RecTools' recommend_batch_size default)


def load_split(path: Path) -> dict[str, np.ndarray]:
    """The arrays written by ``seqrec_run.export_split`` (plain integer arrays: no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def csr_rows(offsets: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def interactions_frame(split: dict[str, np.ndarray]):
    """RecTools interactions (user, item, weight, datetime) of the training sequences, chronology kept exactly."""
    import pandas as pd
    from rectools import Columns

    lengths = np.diff(split["train_offsets"])
    users = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    items = split["train_values"].astype(np.int64)
    # Row position as the datetime: strictly increasing within a user, so RecTools' stable datetime sort keeps
    # seqrec's order (ties in the source timestamps were already broken by file order there).
    when = pd.to_datetime(np.arange(len(items), dtype=np.int64), unit="s")
    return pd.DataFrame({Columns.User: users, Columns.Item: items, Columns.Weight: 1.0, Columns.Datetime: when})


def ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based mid-rank of each target in its row; a target at -inf (unknown or NaN) ranks last (seqrec's rule)."""
    scores = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    t = scores.gather(1, targets[:, None])  # (b, 1)
    greater = (scores > t).sum(1).double()
    equal = (scores == t).sum(1).double()
    r = greater + (equal - 1) / 2
    return torch.where(t[:, 0] == -torch.inf, torch.full_like(r, scores.shape[1]), r)


class Evaluator:
    """Scores one eval set (inputs, targets in seqrec ids) with a RecTools model under seqrec's protocol."""

    def __init__(self, model, split: dict[str, np.ndarray], name: str, num_items: int) -> None:  # noqa: ANN001
        prep = model.data_preparator
        self.model = model
        self.name = name
        ext = prep.item_id_map.external_ids  # internal id i -> external id (extra tokens first)
        n_extra = prep.n_item_extra_tokens
        # seqrec id (1..num_items) -> RecTools internal id, -1 where RecTools never saw the item
        self.to_internal = np.full(num_items + 1, -1, dtype=np.int64)
        known = np.asarray(ext[n_extra:], dtype=np.int64)
        self.to_internal[known] = np.arange(n_extra, n_extra + len(known))
        # RecTools internal column -> seqrec id, to put its scores into seqrec's (V + 1)-wide catalogue
        self.internal_to_seqrec = torch.from_numpy(known)
        self.offsets = split[f"{name}_offsets"].astype(np.int64)  # (n + 1,) CSR of the inputs
        self.values = split[f"{name}_values"].astype(np.int64)
        self.inputs = csr_rows(self.offsets, self.values)
        self.targets = torch.from_numpy(split[f"{name}_targets"].astype(np.int64))
        self.num_items = num_items
        self.unknown_targets = int((self.to_internal[self.targets.numpy()] < 0).sum())

    def _batches(self, rows: range) -> list[dict[str, torch.Tensor]]:
        prep = self.model.data_preparator
        out = []
        for s in range(rows.start, rows.stop, EVAL_BATCH):
            sessions = []
            for i in range(s, min(s + EVAL_BATCH, rows.stop)):
                ids = self.to_internal[self.inputs[i]]
                sessions.append((list(ids[ids >= 0]), None, None))  # RecTools drops unknown items the same way
            out.append(prep._collate_fn_recommend(sessions))  # noqa: SLF001 - the recommend path's own collate
        return out

    def __call__(self) -> dict[str, float]:
        lm = self.model.lightning_model
        was_training = lm.training
        n = len(self.targets)
        ndcg = hr = 0.0
        with torch.no_grad():
            user_embs, item_embs = lm._get_user_item_embeddings(self._batches(range(n)), "cpu")  # noqa: SLF001
            n_extra = self.model.data_preparator.n_item_extra_tokens
            item_embs = item_embs[n_extra:]  # (n_known, D): extra tokens (padding, MASK) are never candidates
            for s in range(0, n, EVAL_BATCH):
                e = min(s + EVAL_BATCH, n)
                part = user_embs[s:e] @ item_embs.T  # (b, n_known)
                scores = torch.full((e - s, self.num_items + 1), -torch.inf)
                scores[:, self.internal_to_seqrec] = part.float()
                rows = np.repeat(np.arange(e - s), np.diff(self.offsets[s:e + 1]))  # seen items removed
                seen = self.values[self.offsets[s]:self.offsets[e]]
                scores[torch.from_numpy(rows), torch.from_numpy(seen)] = -torch.inf
                scores[:, 0] = -torch.inf
                r = ranks_of_targets(scores, self.targets[s:e])
                hit = r < 10
                ndcg += float(torch.where(hit, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r)).sum())
                hr += float(hit.sum())
        lm.train(was_training)
        return {"NDCG@10": ndcg / n, "HR@10": hr / n}


def main() -> None:  # noqa: C901, PLR0915 - one linear script, like recbole_run.py
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=sorted(RECTOOLS_NAMES))
    ap.add_argument("--split", required=True, help=".npz written by seqrec_run.export_split")
    ap.add_argument("--recipe", required=True, help="resolved seqrec recipe as JSON")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap the epochs (smoke tests)")
    ap.add_argument("--max-train-seconds", type=float, default=None,
                    help="stop after the first epoch whose cumulative training time reaches this")
    ap.add_argument("--stop-at-test", type=float, default=None,
                    help="stop after the first epoch whose test NDCG@10 reaches this (time-to-quality only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    recipe = json.loads(args.recipe)
    if args.max_epochs is not None:
        recipe["epochs"] = args.max_epochs
    if args.seed is not None:
        recipe["seed"] = args.seed
    torch.set_num_threads(args.threads)

    import pytorch_lightning
    import rectools
    from pytorch_lightning import Callback, Trainer, seed_everything
    from rectools.dataset import Dataset
    from rectools.models import BERT4RecModel, SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    def say(text: str) -> None:
        print(f"[rectools {args.model}] {text}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    split = load_split(Path(args.split))
    num_items = int(split["num_items"])
    frame = interactions_frame(split)
    dataset = Dataset.construct(frame)
    patience = int(recipe["patience"])
    records: list[dict] = []
    clock = {"t0": 0.0, "paused": 0.0, "end": 0.0}
    # stop: None (patience or the epoch cap), "budget" (--max-train-seconds) or "threshold" (--stop-at-test)
    state = {"best": -math.inf, "best_epoch": 0, "weights": None, "since_best": 0, "stop": None}
    evaluators: dict[str, Evaluator] = {}

    class EpochEval(Callback):
        """After each training epoch: validation NDCG@10 (timed, drives early stopping), then test (untimed)."""

        def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            clock["t0"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            if not evaluators:  # the id map exists once fit has processed the dataset (setup is untimed)
                pause = time.perf_counter()
                evaluators.update({s: Evaluator(model, split, s, num_items) for s in ("valid", "test")})
                clock["paused"] += time.perf_counter() - pause
            t_valid = time.perf_counter()
            valid = evaluators["valid"]()
            epoch = trainer.current_epoch + 1
            if valid["NDCG@10"] > state["best"]:
                state.update(best=valid["NDCG@10"], best_epoch=epoch, since_best=0,
                             weights=copy.deepcopy(pl_module.torch_model.state_dict()))
            else:
                state["since_best"] += 1
            now = time.perf_counter()
            cum = now - clock["t0"] - clock["paused"]
            with preserved_rng():
                test = evaluators["test"]()
            prev = records[-1]["cum_train_s"] if records else 0.0
            loss = trainer.callback_metrics.get("train_loss")
            rec = {
                "epoch": epoch,
                "cum_train_s": cum,
                "epoch_wall_s": cum - prev,
                "train_s": (t_valid - clock["t0"] - clock["paused"]) - prev,
                "valid_s": now - t_valid,
                "train_loss": float(loss) if loss is not None else None,
                "valid_NDCG@10": valid["NDCG@10"],
                "valid_HR@10": valid["HR@10"],
                "test_NDCG@10": test["NDCG@10"],
                "test_HR@10": test["HR@10"],
            }
            records.append(rec)
            say(f"epoch {epoch:3d}  train {rec['train_s']:6.1f}s  valid {rec['valid_s']:5.1f}s  cum {cum:7.1f}s  "
                f"valid NDCG@10 {rec['valid_NDCG@10']:.4f}  test NDCG@10 {rec['test_NDCG@10']:.4f}")
            clock["paused"] += time.perf_counter() - now
            if state["since_best"] >= patience:
                trainer.should_stop = True
            if args.max_train_seconds is not None and cum >= args.max_train_seconds:
                state["stop"] = "budget"
                trainer.should_stop = True
            if args.stop_at_test is not None and test["NDCG@10"] >= args.stop_at_test:
                state["stop"] = "threshold"
                trainer.should_stop = True

        def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            clock["end"] = time.perf_counter()

    def make_trainer() -> Trainer:
        # RecTools' default trainer sets min_epochs = epochs, which would ignore early stopping: ours does not.
        return Trainer(
            max_epochs=int(recipe["epochs"]), deterministic=True, accelerator="cpu", devices=1, logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
            gradient_clip_val=float(recipe["grad_clip"]) if recipe.get("grad_clip") else None,
            callbacks=[EpochEval()],
        )

    common = dict(
        n_blocks=int(recipe["layers"]), n_heads=int(recipe["heads"]), n_factors=int(recipe["hidden"]),
        dropout_rate=float(recipe["dropout"]), session_max_len=int(recipe["max_len"]), loss="softmax",
        lr=float(recipe["lr"]), batch_size=int(recipe["batch_size"]), epochs=int(recipe["epochs"]),
        deterministic=True, item_net_block_types=(IdEmbeddingsItemNet,), get_trainer_func=make_trainer,
        recommend_torch_device="cpu",
    )
    seed_everything(int(recipe["seed"]), workers=True, verbose=False)
    if args.model == "sasrec":
        model = SASRecModel(**common)
    else:
        model = BERT4RecModel(mask_prob=float(recipe["mask_prob"]), **common)
    # torch's optimizer constructors import torch._dynamo on first use (~1.7 s here); seqrec_run.py pays it in setup
    # too, so neither library's first epoch carries it.
    importlib.import_module("torch._dynamo")
    setup_s = time.perf_counter() - t0
    say(f"setup {setup_s:.1f}s: {len(frame)} training interactions, {len(split['train_offsets']) - 1} users, "
        f"{num_items} items")
    model.fit(dataset)
    total_train_s = clock["end"] - clock["t0"] - clock["paused"]
    lm = model.lightning_model
    lm.torch_model.load_state_dict(state["weights"])
    final = {s: evaluators[s]() for s in ("valid", "test")}

    prep = model.data_preparator
    lengths = np.diff(split["train_offsets"])
    used = prep.train_dataset.interactions.df.groupby("user_id").size().to_numpy()
    # Targets trained per epoch: SASRec predicts every item after the first of the kept tail; BERT4Rec's MLM
    # targets are a random mask_prob share of the kept items (the expected count is reported).
    if args.model == "sasrec":
        targets_used = int(np.maximum(used - 1, 0).sum())
    else:
        targets_used = int(round(float(used.sum()) * float(recipe["mask_prob"])))
    result = {
        "library": "rectools",
        "model": args.model,
        "recipe": recipe,
        "filter_seen": True,
        "threads": args.threads,
        "setup_s": setup_s,
        "total_train_s": total_train_s,
        "epochs_trained": len(records),
        "best_epoch": state["best_epoch"],
        "stopped_by_budget": state["stop"] == "budget",
        "stopped_at_test_threshold": args.stop_at_test if state["stop"] == "threshold" else None,
        "batches_per_epoch": -(-len(used) // int(recipe["batch_size"])),
        "train_interactions": int(lengths.sum()),
        "train_interactions_used": int(used.sum()),
        "train_targets_per_epoch": targets_used,
        "users_trained": len(used),
        "params": sum(p.numel() for p in lm.torch_model.parameters() if p.requires_grad),
        "final": final,
        "num_test_users": len(evaluators["test"].targets),
        "unknown_targets": {s: evaluators[s].unknown_targets for s in ("valid", "test")},
        "num_items": num_items,
        "epochs": records,
        "versions": {
            "rectools": rectools.__version__,
            "pytorch_lightning": pytorch_lightning.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
