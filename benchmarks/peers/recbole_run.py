"""Train one RecBole 1.2.1 model on ML-100K under seqrec's protocol and log time-to-quality per epoch.

Runs inside ``benchmarks/peers/.venv-recbole`` (see ``setup_recbole.sh``); ``compare.py`` starts it with the
seqrec recipe resolved to plain values (``--recipe``), so both libraries train the same shapes with the same
optimiser settings. Standalone:

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 benchmarks/peers/.venv-recbole/bin/python benchmarks/peers/recbole_run.py \
        --model sasrec --data-path ../shared/data --threads 1 --out /tmp/recbole-sasrec.json

What it matches (seqrec recipe -> RecBole config):
- data: the same ``ml-100k.inter`` atomic file (user, item, timestamp; ratings ignored), no rating filter, no
  k-core (``user_inter_num_interval``/``item_inter_num_interval`` "[0,inf)"), no de-duplication; chronology by a
  stable sort on (user, exact timestamp, file row), as in seqrec (``exact_chronology``: RecBole's float32
  timestamps would otherwise reorder 403 users' last items);
- split: leave-one-out by time (``eval_args: {split: {LS: valid_and_test}, order: TO, mode: full}``), history
  truncated to the last ``MAX_ITEM_LIST_LENGTH`` = ``data.max_len`` (50) items;
- evaluation: full-catalogue ranking, NDCG@10 / HR@10 (RecBole ``Hit``), the user's whole history (every item
  before the target, not only the last 50) removed from the ranking. RecBole does NOT do this for sequential
  models (they are "repeatable": ``FullSortEvalDataLoader`` passes no history index), so the Trainer subclass
  below masks those items, for validation (early stopping) and test alike; ``--no-filter-seen`` restores stock
  RecBole behaviour;
- model shapes: hidden 64, layers, heads, feed-forward 4 x hidden, dropout (hidden and attention), GRU state
  size, BERT4Rec mask probability, all as resolved from ``configs/<model>-ml-100k.yaml`` + the ``small`` preset;
- loss: full-catalogue cross-entropy (``loss_type: CE``, no negative sampling);
- optimiser: AdamW with seqrec's betas (0.9, 0.98), learning rate, weight decay 0 and gradient-norm clipping 1.0
  (``clip_grad_norm``); RecBole's config has no betas key, so ``_build_optimizer`` is overridden;
- batch size 128 training examples, epoch cap ``train.epochs``, early stopping on validation NDCG@10 after
  ``train.patience`` epochs without improvement (RecBole stops when ``cur_step > stopping_step``, hence
  ``stopping_step = patience - 1``), the best-validation weights evaluated on test at the end;
- seed 42 (``init_seed``; RecBole's data loaders seed their own generators with it).

Deviations RecBole does not allow to remove (listed in benchmarks/peers/README.md too):
- training examples: RecBole's sequential datasets use prefix augmentation (every interaction becomes one example
  ``<last <=50 items> -> item`` with the loss at the last position only), so an epoch is 97,171 examples / 760
  batches of 128 and a forward pass per target; seqrec cuts each sequence into windows of 51 and puts the loss at
  every position (2,412 windows / 19 batches of 128 per epoch). Both see every training target once per epoch,
  but the number of optimiser steps per epoch differs by 40x;
- BERT4Rec masks the items of each prefix (per-row Python loop in ``MaskItemSequence``), so the last training
  item of a user is never a masked target; ``ft_ratio`` (seqrec ``last_item_prob``) picks a whole batch, not a
  row, for last-item masking; RecBole's BERT4Rec keeps its output head (dense + GELU + LayerNorm + item bias);
- architecture details: post-LayerNorm transformer blocks with LayerNorm on the embeddings and no sqrt(D)
  scaling (seqrec: pre-LN with a final LayerNorm, embeddings scaled by sqrt(D)); right padding with positions
  from the oldest item (seqrec: left padding, positions from the newest); RecBole SASRec/GRU4Rec include the
  padding row in the CE softmax; RecBole GRU4Rec has no GRU bias, xavier init and no output dropout;
- ties at early stopping: RecBole counts an equal validation score as an improvement (seqrec: strictly greater);
- RecBole writes a checkpoint on each validation improvement, logs and a TensorBoard event file (all inside the
  timed region, as a user pays them; files go to a temporary working directory).

Output (``--out``): a JSON object with the per-epoch records (``epochs``: cumulative training wall time
``cum_train_s`` = training + validation + RecBole's own bookkeeping, excluding the per-epoch test evaluation
added here, which runs with the clock paused and the RNG states restored), the final test/valid metrics of the
best-validation checkpoint, setup time and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole's torch.load of its own checkpoint

import numpy as np  # noqa: E402
import torch  # noqa: E402
from peer_rng import preserved_rng  # noqa: E402  (this folder is on sys.path: the runners are run as scripts)

# The default recipe mirrors configs/<model>-ml-100k.yaml and the models' "small" presets (compare.py passes the
# values resolved by seqrec itself instead, so a recipe change propagates).
DEFAULT_RECIPES = {
    "sasrec": {"model": "sasrec", "epochs": 30, "batch_size": 128, "lr": 0.001, "patience": 10, "max_len": 50,
               "betas": [0.9, 0.98], "weight_decay": 0.0, "grad_clip": 1.0, "seed": 42,
               "hidden": 64, "layers": 2, "heads": 1, "ffn_mult": 4, "dropout": 0.2, "init_std": 0.02},
    "bert4rec": {"model": "bert4rec", "epochs": 40, "batch_size": 128, "lr": 0.003, "patience": 10, "max_len": 50,
                 "betas": [0.9, 0.98], "weight_decay": 0.0, "grad_clip": 1.0, "seed": 42,
                 "hidden": 64, "layers": 2, "heads": 2, "ffn_mult": 4, "dropout": 0.1, "init_std": 0.02,
                 "mask_prob": 0.3, "last_item_prob": 0.25},
    "gru4rec": {"model": "gru4rec", "epochs": 20, "batch_size": 128, "lr": 0.003, "patience": 10, "max_len": 50,
                "betas": [0.9, 0.98], "weight_decay": 0.0, "grad_clip": 1.0, "seed": 42,
                "hidden": 64, "gru_hidden": 128, "layers": 1, "dropout": 0.2, "init_std": 0.02},
}
RECBOLE_NAMES = {"sasrec": "SASRec", "bert4rec": "BERT4Rec", "gru4rec": "GRU4Rec"}


def recbole_config(recipe: dict, data_path: str, workdir: str) -> dict:
    """The RecBole config dict mirroring a resolved seqrec recipe (see the module docstring)."""
    cfg = {
        # environment
        "data_path": data_path,
        "checkpoint_dir": os.path.join(workdir, "saved"),
        "use_gpu": False,
        "seed": int(recipe["seed"]),
        "reproducibility": True,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "worker": 0,
        "state": "INFO",
        # data: all interactions, no filtering
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "val_interval": None,
        "rm_dup_inter": None,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "filter_inter_by_user_or_item": False,
        "normalize_all": False,
        "MAX_ITEM_LIST_LENGTH": int(recipe["max_len"]),
        # protocol
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "repeatable": True,
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "metric_decimal_place": 6,
        # training
        "epochs": int(recipe["epochs"]),
        "train_batch_size": int(recipe["batch_size"]),
        "learner": "adamw",
        "learning_rate": float(recipe["lr"]),
        "weight_decay": float(recipe["weight_decay"]),
        "clip_grad_norm": {"max_norm": float(recipe["grad_clip"])} if recipe.get("grad_clip") else None,
        "eval_step": 1,
        "stopping_step": max(int(recipe["patience"]) - 1, 0),
        "train_neg_sample_args": None,
        "loss_type": "CE",
    }
    name = recipe["model"]
    if name in ("sasrec", "bert4rec"):
        cfg.update({
            "n_layers": int(recipe["layers"]),
            "n_heads": int(recipe["heads"]),
            "hidden_size": int(recipe["hidden"]),
            "inner_size": int(recipe["ffn_mult"]) * int(recipe["hidden"]),
            "hidden_dropout_prob": float(recipe["dropout"]),
            "attn_dropout_prob": float(recipe["dropout"]),
            "hidden_act": "gelu",
            "initializer_range": float(recipe.get("init_std", 0.02)),
        })
    if name == "bert4rec":
        cfg.update({
            "mask_ratio": float(recipe["mask_prob"]),
            "ft_ratio": float(recipe.get("last_item_prob", 0.0)),
            "transform": "mask_itemseq",
        })
    elif name == "gru4rec":
        cfg.update({
            "embedding_size": int(recipe["hidden"]),
            "hidden_size": int(recipe["gru_hidden"]),
            "num_layers": int(recipe["layers"]),
            "dropout_prob": float(recipe["dropout"]),
        })
    return cfg


def history_masks(train_ds, valid_ds, test_ds, uid: str, iid: str, list_field: str, len_field: str,
                  num_users: int, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, items) bool masks of every item a user consumed before the validation / test target.

    Built from the split datasets themselves: train examples hold all items before the validation target (their
    targets plus the first item, which appears only in a history list); the validation target is added for test.
    """

    def mark(mask: torch.Tensor, ds, with_target: bool) -> None:
        inter = ds.inter_feat
        users = inter[uid].long()
        seqs = inter[list_field].long()  # (n, L) right-padded with 0
        lens = inter[len_field].long()
        valid = torch.arange(seqs.shape[1])[None, :] < lens[:, None]
        rows = users[:, None].expand_as(seqs)[valid]
        mask[rows, seqs[valid]] = True
        if with_target:
            mask[users, inter[iid].long()] = True

    valid_mask = torch.zeros(num_users, num_items, dtype=torch.bool)
    mark(valid_mask, train_ds, with_target=True)
    mark(valid_mask, valid_ds, with_target=False)
    test_mask = valid_mask.clone()
    mark(test_mask, valid_ds, with_target=True)
    mark(test_mask, test_ds, with_target=False)
    valid_mask[:, 0] = False
    test_mask[:, 0] = False
    return valid_mask, test_mask


class _Budget(Exception):
    """Raised from the epoch callback when the training-time budget is spent."""


def exact_chronology(dataset) -> int:
    """Stable-sort the loaded interactions by (user, exact timestamp, file row) before RecBole converts them.

    RecBole turns float fields into float32 tensors, and ML-100K timestamps (~8.9e8 s) then lose up to 64 s of
    precision, so interactions seconds apart become ties that its (stable) sorts leave in file order: 403 of the
    943 users get a different validation target than the true chronology gives. Sorting the pandas frame first,
    with the exact values, fixes the order; float32 rounding is monotone, so RecBole's later stable sorts keep
    it. Returns the number of rows that moved.
    """
    inter = dataset.inter_feat
    order = np.lexsort((np.arange(len(inter)), inter[dataset.time_field].to_numpy(),
                        inter[dataset.uid_field].to_numpy()))
    dataset.inter_feat = inter.iloc[order].reset_index(drop=True)
    return int((order != np.arange(len(order))).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=sorted(RECBOLE_NAMES))
    ap.add_argument("--data-path", required=True, help="folder holding ml-100k/ml-100k.inter")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--recipe", default=None, help="resolved seqrec recipe as JSON (default: built-in mirror)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap the epochs (smoke tests)")
    ap.add_argument("--max-train-seconds", type=float, default=None,
                    help="stop after the first epoch whose cumulative training time reaches this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--no-filter-seen", action="store_true", help="stock RecBole: keep history items in ranking")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    recipe = dict(DEFAULT_RECIPES[args.model])
    if args.recipe:
        recipe.update(json.loads(args.recipe))
    if args.max_epochs is not None:
        recipe["epochs"] = args.max_epochs
    if args.seed is not None:
        recipe["seed"] = args.seed
    torch.set_num_threads(args.threads)
    out_path = Path(args.out).resolve()
    data_path = str(Path(args.data_path).resolve())
    filter_seen = not args.no_filter_seen

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_logger, init_seed

    betas = tuple(float(b) for b in recipe["betas"])

    class TimedTrainer(Trainer):
        """RecBole's Trainer plus: seqrec's AdamW betas, seen-item filtering, per-epoch timing and test NDCG."""

        def __init__(self, config, model, test_data, masks):
            self._masks = masks  # {id(loader): (users, items) bool} or {} (no filtering)
            self._active_mask = None
            super().__init__(config, model)
            self._test_data = test_data
            self.records: list[dict] = []

        def _build_optimizer(self, **kwargs):
            params = kwargs.pop("params", self.model.parameters())
            return torch.optim.AdamW(params, lr=self.learning_rate, betas=betas, weight_decay=self.weight_decay)

        def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
            self._active_mask = self._masks.get(id(eval_data))
            try:
                return super().evaluate(eval_data, load_best_model, model_file, show_progress)
            finally:
                self._active_mask = None

        def _full_sort_batch_eval(self, batched_data):
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
            if self._active_mask is not None:
                users = interaction[self.config["USER_ID_FIELD"]].long().cpu()
                scores.masked_fill_(self._active_mask[users].to(scores.device), -np.inf)
            return interaction, scores, positive_u, positive_i

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            t = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            self._train_s = time.perf_counter() - t
            self._n_batches = len(train_data)
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            t = time.perf_counter()
            out = super()._valid_epoch(valid_data, show_progress)
            self._valid_s = time.perf_counter() - t
            self._last_valid = out[1]
            return out

        def _on_epoch(self, epoch_idx, valid_score):
            now = time.perf_counter()
            cum = now - self._t0 - self._paused
            with preserved_rng():
                test = self.evaluate(self._test_data, load_best_model=False)
            prev = self.records[-1]["cum_train_s"] if self.records else 0.0
            loss = self.train_loss_dict.get(epoch_idx)
            rec = {
                "epoch": epoch_idx + 1,
                "cum_train_s": cum,
                "epoch_wall_s": cum - prev,
                "train_s": self._train_s,
                "valid_s": self._valid_s,
                "train_loss": float(loss) / max(self._n_batches, 1) if loss is not None else None,
                "valid_NDCG@10": float(self._last_valid["ndcg@10"]),
                "valid_HR@10": float(self._last_valid["hit@10"]),
                "test_NDCG@10": float(test["ndcg@10"]),
                "test_HR@10": float(test["hit@10"]),
            }
            self.records.append(rec)
            print(
                f"[recbole {args.model}] epoch {rec['epoch']:3d}  train {rec['train_s']:6.1f}s  valid "
                f"{rec['valid_s']:5.1f}s  cum {cum:7.1f}s  valid NDCG@10 {rec['valid_NDCG@10']:.4f}  "
                f"test NDCG@10 {rec['test_NDCG@10']:.4f}",
                file=sys.stderr, flush=True,
            )
            self._paused += time.perf_counter() - now
            if args.max_train_seconds is not None and cum >= args.max_train_seconds:
                raise _Budget  # the best checkpoint so far is already on disk

        def timed_fit(self, train_data, valid_data):
            self._t0 = time.perf_counter()
            self._paused = 0.0
            try:
                self.fit(train_data, valid_data, verbose=True, saved=True, show_progress=False,
                         callback_fn=self._on_epoch)
                budget = False
            except _Budget:
                budget = True
            return time.perf_counter() - self._t0 - self._paused, budget

    with tempfile.TemporaryDirectory(prefix="recbole-peer-") as workdir:
        os.chdir(workdir)  # RecBole writes ./log, ./log_tensorboard and checkpoints relative to the cwd
        t0 = time.perf_counter()
        config = Config(model=RECBOLE_NAMES[args.model], dataset=args.dataset,
                        config_dict=recbole_config(recipe, data_path, workdir))
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        dataset = create_dataset(config)
        moved = exact_chronology(dataset)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])  # as run_recbole does
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        masks = {}
        if filter_seen:
            uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
            vm, tm = history_masks(
                train_data._dataset, valid_data._dataset, test_data._dataset, uid, iid,
                iid + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"],
                dataset.user_num, dataset.item_num,
            )
            masks = {id(valid_data): vm, id(test_data): tm}
        trainer = TimedTrainer(config, model, test_data, masks)
        setup_s = time.perf_counter() - t0
        print(f"[recbole {args.model}] setup {setup_s:.1f}s: {len(train_data._dataset)} training examples, "
              f"{len(train_data)} batches/epoch, {dataset.user_num - 1} users, {dataset.item_num - 1} items",
              file=sys.stderr, flush=True)
        total_train_s, stopped_by_budget = trainer.timed_fit(train_data, valid_data)
        final_test = trainer.evaluate(test_data, load_best_model=True)
        final_valid = trainer.evaluate(valid_data, load_best_model=False)

    records = trainer.records
    best_epoch, best_valid = 0, -np.inf
    for r in records:  # RecBole's rule: an equal validation score also replaces the checkpoint
        if r["valid_NDCG@10"] >= best_valid:
            best_epoch, best_valid = r["epoch"], r["valid_NDCG@10"]
    result = {
        "library": "recbole",
        "model": args.model,
        "recipe": recipe,
        "filter_seen": filter_seen,
        "threads": args.threads,
        "setup_s": setup_s,
        "total_train_s": total_train_s,
        "epochs_trained": len(records),
        "best_epoch": best_epoch,
        "stopped_by_budget": stopped_by_budget,
        "batches_per_epoch": len(train_data),
        "train_examples_per_epoch": len(train_data._dataset),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "final": {
            "test": {"NDCG@10": float(final_test["ndcg@10"]), "HR@10": float(final_test["hit@10"])},
            "valid": {"NDCG@10": float(final_valid["ndcg@10"]), "HR@10": float(final_valid["hit@10"])},
        },
        "num_test_users": len(test_data._dataset),
        "rows_reordered_for_exact_time": moved,
        "num_items": dataset.item_num - 1,
        "epochs": records,
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
