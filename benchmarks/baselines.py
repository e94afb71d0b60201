"""Strong simple baselines on ML-100K and ML-1M, and on a repeat-heavy synthetic log.

    SEQREC_DATA_DIR=/work/shared/data python benchmarks/baselines.py
    python benchmarks/baselines.py --datasets ml-100k --baselines popularity,markov --bootstrap 200

Protocol (every row): leave-one-out split, full-catalogue ranking, mid-rank ties, eval.filter_seen=true, max_len
50 (ML-100K) / 200 (ML-1M), no k-core (min_user/item_interactions=0: the project's ML-100K recipe and the SASRec
ML-1M file as published). Each baseline's hyper-parameters are chosen on VALIDATION NDCG@10 over
``seqrec.eval.baselines.GRIDS`` (the trials are recorded); the chosen configuration is refitted (timed: fit
seconds) and evaluated on validation and test, with 95% bootstrap CIs over users. The repeat diagnostics of
each test set are stored beside the table. ``synthetic-repeat`` (repeat_prob=0.7) is evaluated with
filter_seen true and false (tuned separately): it shows the cap the seen-filter puts on a repeat-heavy log.

ML-1M is ``data.name=ml-1m`` when that named dataset loads without a download, else the SASRec file
``<data dir>/ml-1m/ml-1m.txt`` (``data.name=file``, ``data.format=sasrec``); the JSON records which.
Fit times are wall-clock on a shared machine: the 1-minute load average at the start is recorded with them.
JSON goes to ``benchmarks/results/baselines.json``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from seqrec.config import build_config
from seqrec.data import describe, prepare_data, resolve_data_dir
from seqrec.errors import SeqrecError
from seqrec.eval.baselines import BASELINES, GRIDS, run_baselines
from seqrec.eval.diagnostics import repeat_diagnostics
from seqrec.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "baselines.json"
NO_CORE = ["data.min_user_interactions=0", "data.min_item_interactions=0"]
SYNTHETIC_REPEAT = ["data.name=synthetic", "data.synthetic.repeat_prob=0.7", "data.seed=42"]


def load(name: str) -> tuple[Any, list[str], int]:
    """(PreparedData, the overrides that built it, max_len) for a benchmark dataset name."""
    if name == "ml-100k":
        overrides, max_len = ["data.name=ml-100k", *NO_CORE], 50
    elif name == "ml-1m":
        overrides, max_len = ["data.name=ml-1m", "data.download=false", *NO_CORE], 200
        try:
            return prepare_data(build_config({}, overrides).data), overrides, max_len
        except SeqrecError as err:
            path = resolve_data_dir() / "ml-1m" / "ml-1m.txt"
            print(f"data.name=ml-1m unavailable ({err}); using {path}")
            overrides = ["data.name=file", f"data.path={path}", "data.format=sasrec", *NO_CORE]
    elif name == "synthetic-repeat":
        overrides, max_len = SYNTHETIC_REPEAT, 50
    else:
        raise typer.BadParameter(f"unknown dataset {name!r} (ml-100k, ml-1m, synthetic-repeat)")
    return prepare_data(build_config({}, [*overrides, f"data.max_len={max_len}"]).data), overrides, max_len


def run_dataset(name: str, baselines: list[str], filter_seen: bool, bootstrap: int, batch_size: int) -> dict:
    data, overrides, max_len = load(name)
    load_avg = os.getloadavg()[0]
    t0 = time.perf_counter()
    reports = run_baselines(
        baselines, data, max_len, ks=[10], filter_seen=filter_seen, bootstrap=bootstrap, batch_size=batch_size
    )
    stats = describe(data)
    diag = {split: repeat_diagnostics(getattr(data, split), filter_seen) for split in ("valid", "test")}
    first = next((r.test for r in reports if r.test is not None), None)
    return {
        "dataset": name,
        "overrides": overrides,
        "data": {k: stats[k] for k in ("users", "items", "train_interactions", "valid_users", "test_users")},
        "protocol": {**(first.protocol if first else {}), "tuned_on": "valid NDCG@10", "bootstrap": bootstrap},
        "repeat_diagnostics": {split: d.to_dict() for split, d in diag.items()},
        "warning": diag["test"].warning(),
        "load_average_1min_at_start": round(load_avg, 2),
        "seconds": round(time.perf_counter() - t0, 1),
        "baselines": [r.to_dict() for r in reports],
    }


def _cell(split: dict, key: str) -> str:
    m, ci = split["metrics"], split["ci"]
    return f"{m[key]:.4f} [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if key in ci else f"{m[key]:.4f}"


def print_table(results: list[dict]) -> None:
    table = Table(title="baselines: leave-one-out, full ranking, test set (params tuned on validation NDCG@10)")
    cols = ("dataset", "filter_seen", "baseline", "NDCG@10 [95% CI]", "HR@10 [95% CI]", "fit s (cpu)", "params")
    for col in cols:
        table.add_column(col)
    for res in results:
        for row in res["baselines"]:
            if "skipped" in row:
                table.add_row(res["dataset"], "", row["name"], row["skipped"], "", "", "")
                continue
            params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
            fs = str(res["protocol"].get("filter_seen", ""))
            test = row["test"]
            fit_s = f"{row['fit_seconds']:.2f} ({row['fit_cpu_seconds']:.2f})"
            table.add_row(res["dataset"], fs, row["name"], _cell(test, "NDCG@10"), _cell(test, "HR@10"), fit_s, params)
    console = Console(width=160)
    console.print(table)
    for res in results:
        if res["warning"]:
            console.print(f"[yellow]{res['dataset']}: {res['warning']}[/yellow]")


def main(
    datasets: str = typer.Option("ml-100k,ml-1m,synthetic-repeat", help="comma-separated benchmark datasets"),
    baselines: str = typer.Option(",".join(BASELINES), help="comma-separated baselines"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95% CIs"),
    batch_size: int = typer.Option(512, "--batch-size", help="users per scoring chunk"),
    threads: int = typer.Option(1, help="torch threads (1: fit times comparable on a busy shared machine)"),
    out: Path = typer.Option(DEFAULT_OUT, help="JSON output"),
) -> None:
    torch.set_num_threads(threads)
    names = [b for b in baselines.split(",") if b]
    results = []
    for name in [d for d in datasets.split(",") if d]:
        settings = (True, False) if name == "synthetic-repeat" else (True,)
        for filter_seen in settings:
            t0 = time.perf_counter()
            results.append(run_dataset(name, names, filter_seen, bootstrap, batch_size))
            print(f"{name} filter_seen={filter_seen}: {time.perf_counter() - t0:.1f} s", flush=True)
    print_table(results)
    meta = {
        "command": "python benchmarks/baselines.py " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "grids": GRIDS,
    }
    atomic_write_json(out, {"meta": meta, "results": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
