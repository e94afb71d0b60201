"""Train one seqrec model with its shipped recipe (ML-100K by default) and log time-to-quality per epoch.

Runs in the seqrec virtualenv (``compare.py`` starts it in its own process):

    python benchmarks/peers/seqrec_run.py --model sasrec --data-dir ../shared/data --threads 1 --out /tmp/s.json

It does what ``seqrec train --config configs/<model>-<dataset>.yaml`` does (``--dataset``, default ml-100k; same
config, same ``fit`` loop with its validation, early stopping and per-epoch resume checkpoint in a temporary
folder), through the Python API: ``Recommender.fit(..., callbacks=[...])``; the callback runs after each epoch's
validation, pauses the clock, evaluates the current weights on test (full ranking, seen items filtered, no
bootstrap: ``evaluate_split``) with the RNG states saved and restored, and resumes. ``cum_train_s`` is the wall time
from the start of ``fit`` to the end of that epoch's validation, minus those test evaluations. torch's one-time
``torch._dynamo`` import, which the first optimizer construction triggers, is done before the clock starts, as it is
in RecBole's setup. Overrides: ``train.threads``, ``train.progress=false`` and ``data.cache=false`` (so the data are
read from the atomic file on every run, like RecBole, and nothing is written next to the shared data). The final
test metrics are those of the best-validation weights, which ``fit`` restores.

``--max-train-seconds S`` stops after the first epoch whose ``cum_train_s`` reaches S (the best-validation
weights so far are then evaluated); off by default.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from peer_rng import preserved_rng  # this folder is on sys.path: the runners are run as scripts
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("sasrec", "bert4rec", "gru4rec")


class _Budget(Exception):
    """Raised from the epoch callback to end fit early: the time budget is spent or --stop-at-test is reached."""


def recipe_overrides(threads: int, max_epochs: int | None, seed: int | None) -> list[str]:
    out = [f"train.threads={threads}", "train.progress=false", "data.cache=false"]
    if max_epochs is not None:
        out.append(f"train.epochs={max_epochs}")
    if seed is not None:
        out.append(f"train.seed={seed}")
    return out


def recipe_path(model: str, dataset: str = "ml-100k") -> Path:
    """The shipped recipe a peer run trains: ``configs/<model>-<dataset>.yaml``."""
    return ROOT / "configs" / f"{model}-{dataset}.yaml"


def load_recipe(model: str, threads: int = 1, max_epochs: int | None = None, seed: int | None = None,
                dataset: str = "ml-100k", config: str | Path | None = None):
    """The recipe (``config`` if given, else ``recipe_path(model, dataset)``) with the runner's overrides."""
    from seqrec.config import load_config

    return load_config(config or recipe_path(model, dataset), recipe_overrides(threads, max_epochs, seed))


def resolved_recipe(model: str, max_epochs: int | None = None, seed: int | None = None,
                    dataset: str = "ml-100k", config: str | Path | None = None) -> dict:
    """The recipe as plain values (model preset resolved) for the peers' ``--recipe``."""
    from seqrec.models import model_config_from_section

    cfg = load_recipe(model, 1, max_epochs, seed, dataset, config)
    tc = cfg.train
    out = {
        "model": model,
        "epochs": tc.epochs,
        "batch_size": tc.batch_size,
        "lr": tc.lr,
        "patience": tc.patience,
        "max_len": cfg.data.max_len,
        "betas": list(tc.betas),
        "weight_decay": tc.weight_decay,
        "grad_clip": tc.grad_clip,
        "seed": tc.seed,
        **dataclasses.asdict(model_config_from_section(cfg.model)),
    }
    # Things RecBole is not told about: they must stay at the values the RecBole mirror assumes.
    unmatched = []
    if cfg.loss.name != "ce" or cfg.loss.label_smoothing:
        unmatched.append(f"loss {cfg.loss.name} (label smoothing {cfg.loss.label_smoothing})")
    if tc.scheduler != "constant" or tc.warmup_steps:
        unmatched.append(f"lr schedule {tc.scheduler} over {tc.schedule_epochs or tc.epochs} epochs with "
                         f"{tc.warmup_steps} warm-up steps")
    if tc.accumulate_grad_batches != 1 or tc.precision != "32":
        unmatched.append(f"accumulation {tc.accumulate_grad_batches}, precision {tc.precision}")
    if tc.monitor != "NDCG@10" or tc.eval_every != 1 or not cfg.eval.filter_seen or cfg.eval.protocol != "full":
        unmatched.append("validation/evaluation protocol differs from NDCG@10 every epoch, full, seen filtered")
    kcore = (cfg.data.min_user_interactions or 0, cfg.data.min_item_interactions or 0)  # None: ml-100k default, 0
    if max(kcore) > 1 or cfg.data.rating_threshold:
        unmatched.append("data filtering (k-core or rating threshold)")
    if cfg.data.split != "leave_one_out" or cfg.data.duplicates != "keep":
        unmatched.append(f"split {cfg.data.split}, duplicates {cfg.data.duplicates}")
    out["unmatched"] = unmatched
    return out


def export_split(model: str, data_dir: str, path: Path, dataset: str = "ml-100k") -> dict:
    """Write the recipe's split as plain integer arrays (``.npz``, no pickle) for a peer runner; returns counts.

    ``train_offsets``/``train_values``: every user's chronological training sequence (CSR, seqrec item ids
    1..num_items); ``{valid,test}_{offsets,values,targets}``: each evaluated user's exact model input and target,
    in seqrec's user order, so a peer trains and is scored on precisely what seqrec is.
    """
    from seqrec.data import prepare_data

    config = load_recipe(model, dataset=dataset)
    data = prepare_data(config.data, data_dir)
    arrays = {"num_items": np.int64(data.num_items), "train_offsets": np.asarray(data.train.offsets, np.int64),
              "train_values": np.asarray(data.train.values, np.int64)}
    for name, es in (("valid", data.valid), ("test", data.test)):
        arrays[f"{name}_offsets"] = np.asarray(es.inputs.offsets, np.int64)
        arrays[f"{name}_values"] = np.asarray(es.inputs.values, np.int64)
        arrays[f"{name}_targets"] = np.asarray(es.targets, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return {"users": data.num_users, "items": data.num_items, "train_interactions": int(data.train.nnz)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--data-dir", required=True, help="folder holding ml-100k/ (or --dataset's folder)")
    ap.add_argument("--dataset", default="ml-100k", help="recipe configs/<model>-<dataset>.yaml")
    ap.add_argument("--config", default=None, help="another recipe file for the same dataset (default: --dataset's)")
    ap.add_argument("--max-epochs", type=int, default=None, help="override train.epochs (smoke tests)")
    ap.add_argument("--max-train-seconds", type=float, default=None)
    ap.add_argument("--stop-at-test", type=float, default=None,
                    help="stop after the first epoch whose test NDCG@10 reaches this (time-to-quality only: the "
                         "final metrics of such a run are not a protocol result)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import seqrec
    from seqrec.api import Dataset, Recommender
    from seqrec.data import prepare_data
    from seqrec.train.callbacks import Callback
    from seqrec.train.run import evaluate_split

    config = load_recipe(args.model, args.threads, args.max_epochs, args.seed, args.dataset, args.config)
    monitor = config.train.monitor

    def say(text: str) -> None:
        print(f"[seqrec {args.model}] {text}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    dataset = Dataset(prepare_data(config.data, args.data_dir), config.data)
    data = dataset.data
    # torch's optimizer constructors import torch._dynamo on first use (~1.7 s here). RecBole builds its optimizer
    # before fit (in its setup time); seqrec builds it inside fit, so pay that one-time import here, in setup too.
    importlib.import_module("torch._dynamo")
    setup_s = time.perf_counter() - t0
    say(f"setup {setup_s:.1f}s: {data.num_users} users, {data.num_items} items")

    records: list[dict] = []
    clock = {"t0": 0.0, "paused": 0.0, "end": 0.0}
    best = {"score": -float("inf"), "state": None, "epoch": 0}
    live: dict = {}

    class TestEveryEpoch(Callback):
        """After each epoch's validation: pause the clock, evaluate test, log, resume (or stop at the budget)."""

        def on_fit_start(self, trainer) -> None:  # noqa: ANN001
            live["trainer"] = trainer
            clock["t0"] = time.perf_counter()

        def on_epoch_end(self, trainer, record: dict) -> None:  # noqa: ANN001
            now = time.perf_counter()
            cum = now - clock["t0"] - clock["paused"]
            with preserved_rng():
                test = evaluate_split(trainer.model, data, config, "test", trainer.device, bootstrap=0).metrics
            valid = record.get("valid", {})
            limited = args.max_train_seconds is not None or args.stop_at_test is not None
            if limited and valid.get(monitor, -float("inf")) > best["score"]:
                best.update(score=valid[monitor], state=copy.deepcopy(trainer.model.state_dict()),
                            epoch=record["epoch"])
            prev = records[-1]["cum_train_s"] if records else 0.0
            rec = {
                "epoch": record["epoch"],
                "cum_train_s": cum,
                "epoch_wall_s": cum - prev,
                "train_s": record["epoch_time_s"],
                "valid_s": cum - prev - record["epoch_time_s"],  # validation + best-weights copy (+ checkpoint)
                "train_loss": record["train_loss"],
                "valid_NDCG@10": valid.get("NDCG@10"),
                "valid_HR@10": valid.get("HR@10"),
                "test_NDCG@10": test["NDCG@10"],
                "test_HR@10": test["HR@10"],
            }
            records.append(rec)
            say(
                f"epoch {rec['epoch']:3d}  train {rec['train_s']:6.1f}s  valid "
                f"{rec['valid_s']:5.1f}s  cum {cum:7.1f}s  valid NDCG@10 {rec['valid_NDCG@10']:.4f}  "
                f"test NDCG@10 {rec['test_NDCG@10']:.4f}"
            )
            clock["paused"] += time.perf_counter() - now
            if args.max_train_seconds is not None and cum >= args.max_train_seconds:
                stop["reason"] = "budget"
                raise _Budget
            if args.stop_at_test is not None and test["NDCG@10"] >= args.stop_at_test:
                stop["reason"] = "threshold"
                raise _Budget

        def on_fit_end(self, trainer) -> None:  # noqa: ANN001
            clock["end"] = time.perf_counter()

    stop = {"reason": None}  # "budget" (--max-train-seconds) or "threshold" (--stop-at-test) when _Budget ends fit
    recommender = Recommender(config)
    with tempfile.TemporaryDirectory(prefix="seqrec-peer-") as tmp:
        try:  # exactly `seqrec train`: run directory, per-epoch checkpoint, final evaluation of the best weights
            recommender.fit(dataset, output_dir=Path(tmp) / "run", console=Console(quiet=True),
                            callbacks=[TestEveryEpoch()])
            metrics = recommender.metrics
            assert metrics is not None and recommender.model is not None
            model, best_epoch = recommender.model, metrics["best_epoch"]
            final = {"test": metrics["test"], "valid": metrics["valid"]}
            num_test_users = metrics["num_test_users"]
        except _Budget:
            trainer = live["trainer"]
            model = trainer.model
            model.load_state_dict(best["state"])
            best_epoch = best["epoch"]
            final_test = evaluate_split(model, data, config, "test", trainer.device, bootstrap=0)
            final_valid = evaluate_split(model, data, config, "valid", trainer.device, bootstrap=0)
            final = {"test": final_test.metrics, "valid": final_valid.metrics}
            num_test_users = final_test.num_users
    total_train_s = clock["end"] - clock["t0"] - clock["paused"]

    out = {
        "library": "seqrec",
        "model": args.model,
        "recipe": resolved_recipe(args.model, args.max_epochs, args.seed, args.dataset, args.config),
        "config": str(args.config or recipe_path(args.model, args.dataset).relative_to(ROOT)),
        "dataset": args.dataset,
        "filter_seen": config.eval.filter_seen,
        "threads": args.threads,
        "setup_s": setup_s,
        "total_train_s": total_train_s,
        "epochs_trained": len(records),
        "best_epoch": best_epoch,
        "stopped_by_budget": stop["reason"] == "budget",
        "stopped_at_test_threshold": args.stop_at_test if stop["reason"] == "threshold" else None,
        "batches_per_epoch": None,
        "params": model.num_parameters(),
        "final": {split: {"NDCG@10": final[split]["NDCG@10"], "HR@10": final[split]["HR@10"]}
                  for split in ("test", "valid")},
        "num_test_users": num_test_users,
        "num_items": data.num_items,
        "epochs": records,
        "versions": {
            "seqrec": seqrec.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    try:
        from seqrec.data.windows import window_index

        rows, _ = window_index(data.train, config.data.max_len)
        out["train_examples_per_epoch"] = int(len(rows))
        out["batches_per_epoch"] = -(-len(rows) // config.train.batch_size)
    except Exception:  # noqa: BLE001 - informative only
        pass
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
