"""Fabricated results stores for report tests (no training): cells, per-epoch history, popularity baselines.

``python tests/bench/bench_helpers.py DIR`` writes the seed-like store into DIR (to look at a report by hand:
``seqrec report DIR``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

from seqrec.bench.runner import cell_metrics
from seqrec.bench.store import ResultStore
from seqrec.config import build_config, config_to_dict

ENV = {"device": "cpu", "threads": 1, "seqrec": "0.1.0", "torch": "x", "python": "3", "git_commit": "abc",
       "utilisation_source": "cpu"}


def load_benchmark_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) as module ``name``."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _history(epochs: int, final_ndcg: float, L: int, best: int) -> list[dict]:
    """A plausible curve: valid NDCG@10 rises to ``final_ndcg`` around ``best`` then sags; the loss falls."""
    out = []
    for e in range(1, epochs + 1):
        ndcg = final_ndcg * (1 - math.exp(-e / (best / 3))) - 0.0004 * max(0, e - best)
        out.append({"epoch": e, "train_loss": 6.0 - 1.2 * math.log1p(e) / math.log1p(epochs), "grad_norm_max": 1.0,
                    "lr": 0.001, "epoch_time_s": 0.01 * L, "throughput_seq_s": 1000.0, "peak_memory_mb": 300 + L,
                    "cpu_util_pct": 90.0, "valid": {"NDCG@10": ndcg, "HR@10": 2 * ndcg}})
    return out


def _metrics(ndcg: float, L: int, epochs: int, best: int, pop: float | None) -> dict:
    out = {"epoch_time_max_s": 0.011 * L, "epoch_time_avg_s": 0.01 * L, "epoch_time_sum_s": 0.01 * L * epochs,
           "peak_memory_mb": 300.0 + L, "grad_norm_max": 1.0, "lr": 0.001, "train_loss": 3.0, "params": 1000 + L,
           "epochs_trained": epochs, "best_epoch": best, "throughput_seq_s": 1000.0,
           "test": {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "MRR@10": ndcg / 2, "Recall@10": 2 * ndcg,
                    "Coverage@10": 0.5, "Surprisal@10": 0.3},
           "test_ci95": {"NDCG@10": [ndcg - 0.01, ndcg + 0.01], "HR@10": [2 * ndcg - 0.02, 2 * ndcg + 0.02]}}
    if pop is not None:
        out["baselines"] = {"popularity": {"test": {"NDCG@10": pop, "HR@10": 2 * pop, "MRR@10": pop / 2,
                                                    "Recall@10": 2 * pop, "Coverage@10": 0.01,
                                                    "Surprisal@10": 0.05}}}
    return out


def fake_store(directory: Path, scale: float = 1.0, popularity: bool = True) -> None:
    """2 models x {synthetic, ml-1m (skipped)} x max_len {20, 50} x seeds {1, 2}: 8 done cells, 4 pivot rows.

    ``popularity=False``: a store written before the baseline was stored (no popularity row).
    """
    store = ResultStore.open(directory)
    sweep = {"model.name": ["sasrec", "xlstm"], "data.name": ["synthetic", "ml-1m"], "data.max_len": [20, 50],
             "train.seed": [1, 2]}
    store.set_meta("grid", {"name": "fake", "sweep": sweep})
    ids = []
    i = 0
    for model in sweep["model.name"]:
        for ds in sweep["data.name"]:
            for L in sweep["data.max_len"]:
                for seed in sweep["train.seed"]:
                    cfg = build_config({"data": {"name": ds, "max_len": L}, "model": {"name": model},
                                        "train": {"seed": seed}})
                    cid = f"c{i:03d}"
                    ids.append(cid)
                    labels = {"model.name": model, "data.name": ds, "data.max_len": L, "train.seed": seed}
                    store.ensure_cell(cid, i, labels, config_to_dict(cfg))
                    i += 1
                    if ds == "ml-1m":
                        store.set_status(cid, "skipped", "dataset 'ml-1m': not found under /nowhere")
                        continue
                    ndcg = scale * (0.1 + 0.001 * L + 0.01 * seed + (0.02 if model == "xlstm" else 0))
                    history = [{"epoch": e, "train_loss": 5.0 - e, "grad_norm_max": 1.0, "lr": 0.001,
                                "epoch_time_s": 0.01 * L, "throughput_seq_s": 1000.0, "peak_memory_mb": 300 + L,
                                "cpu_util_pct": 90.0, "valid": {"NDCG@10": ndcg * e / 2}} for e in (1, 2)]
                    metrics = _metrics(ndcg, L, 2, 2, 0.05 if popularity else None)
                    metrics["epoch_time_max_s"] = 0.01 * L
                    store.record_done(cid, history, cell_metrics(metrics, {"utilisation_pct": 90.0}), ENV, 1.0)
    store.set_meta("cell_ids", ids)
    store.close()


SEED_NDCG = {"bert4rec": 0.094, "sasrec": 0.099, "xlstm": 0.104}


def seed_like_store(directory: Path) -> None:
    """The seed grid's shape: 3 models x {ml-100k, ml-1m, ml-10m (skipped)} x max_len {50, 75, 100}, one seed,
    10-40 epochs of history each, popularity per dataset: 18 done cells, 9 skipped."""
    store = ResultStore.open(directory)
    sweep = {"model.name": list(SEED_NDCG), "data.name": ["ml-100k", "ml-1m", "ml-10m"],
             "data.max_len": [50, 75, 100]}
    store.set_meta("grid", {"name": "seed-grid", "sweep": sweep})
    ids = []
    for model in sweep["model.name"]:
        for ds in sweep["data.name"]:
            for L in sweep["data.max_len"]:
                i = len(ids)
                cid = f"s{i:03d}"
                ids.append(cid)
                cfg = build_config({"data": {"name": ds, "max_len": L}, "model": {"name": model}})
                labels = {"model.name": model, "data.name": ds, "data.max_len": L}
                store.ensure_cell(cid, i, labels, config_to_dict(cfg))
                if ds == "ml-10m":
                    store.set_status(cid, "skipped", "dataset 'ml-10m': not found under /nowhere")
                    continue
                ndcg = SEED_NDCG[model] * (1.6 if ds == "ml-1m" else 1.0) - 0.0001 * (L - 50)
                epochs = 10 + (i * 7) % 31
                best = max(2, epochs - 5)
                pop = 0.025 if ds == "ml-100k" else 0.045
                store.record_done(cid, _history(epochs, ndcg, L, best),
                                  cell_metrics(_metrics(ndcg, L, epochs, best, pop), {"utilisation_pct": 97.0}),
                                  ENV, 1.0)
    store.set_meta("cell_ids", ids)
    store.close()


def study_store(directory: Path, datasets: tuple[str, ...] = ("ml-100k",)) -> None:
    """A loss-study shape: cce_neg over bs {32, 128, 512} x sl {25, 100} x ns {32, 256, 1024} plus ce per (bs, sl).

    NDCG@10 rises with bs and ns (and a little with sl), memory with bs * sl * (ns or 3000): 18 + 6 cells.
    """
    store = ResultStore.open(directory)
    sweep = {"data.name": list(datasets), "loss.name": ["cce_neg", "ce"], "train.batch_size": [32, 128, 512],
             "data.max_len": [25, 100], "loss.num_negatives": [32, 256, 1024]}
    store.set_meta("grid", {"name": "loss-study", "sweep": sweep})
    ids = []
    for ds in sweep["data.name"]:
        for loss in sweep["loss.name"]:
            for bs in sweep["train.batch_size"]:
                for sl in sweep["data.max_len"]:
                    for ns in (sweep["loss.num_negatives"] if loss == "cce_neg" else [None]):
                        i = len(ids)
                        cid = f"l{i:03d}"
                        ids.append(cid)
                        labels = {"data.name": ds, "loss.name": loss, "train.batch_size": bs, "data.max_len": sl}
                        tree = {"data": {"name": ds, "max_len": sl}, "loss": {"name": loss},
                                "train": {"batch_size": bs}}
                        if ns is not None:
                            labels["loss.num_negatives"] = ns
                            tree["loss"]["num_negatives"] = ns
                        store.ensure_cell(cid, i, labels, config_to_dict(build_config(tree)))
                        k = ns if ns is not None else 3000
                        ndcg = 0.05 + 0.01 * math.log2(bs / 16) + 0.006 * math.log2(k / 16) + 0.0001 * sl
                        m = _metrics(ndcg, sl, 10, 8, 0.02)
                        m["peak_memory_mb"] = 200.0 + bs * sl * k * 8 / 2**20
                        m["loss_memory_mb"] = bs * sl * k * 4 / 2**20
                        m["epoch_time_avg_s"] = 0.5 + bs * sl * k * 1e-7
                        m["test"]["Coverage@10"] = 0.2 + 0.0001 * k
                        store.record_done(cid, _history(10, ndcg, sl, 8), cell_metrics(m, {}), ENV, 1.0)
    store.set_meta("cell_ids", ids)
    store.close()


if __name__ == "__main__":
    seed_like_store(Path(sys.argv[1]))
