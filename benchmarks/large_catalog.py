"""A catalogue that materialised cross-entropy cannot train on this machine: SASRec, 10^6 items, batch 256 x 100.

    python benchmarks/large_catalog.py --try-materialized    # 10^6 items, batch 256, max_len 100, 2 epochs
    python benchmarks/large_catalog.py --items 200000 --epochs 1   # smaller, for a quick look

The synthetic generator draws the interactions (users of length ~max_len + 2, so each user is one training
window and an epoch is ``users / batch`` optimizer steps); the catalogue is then padded with items that have no
interactions up to ``--items`` rows, as in a real catalogue where most items are cold. Every one of them is
scored by the loss (full-catalogue CE over ``--items`` classes) and by the full-ranking evaluation.

What it measures, in one process: the model is trained end to end with the chunked exact CE (``loss.name=ce``)
through the ordinary training loop (``seqrec.train.loop.fit``), then evaluated (valid + test, full ranking, in
user chunks of ``--eval-batch``). It reports the peak resident memory (``VmHWM``), the step and epoch times,
and what materialised CE would need for the same batch: ``3 x rows x V x 4`` bytes (logits, softmax, gradient),
about 300 GiB at 10^6 items. ``--try-materialized`` also runs one step of ``ce_materialized`` in a
subprocess to show the failure. JSON goes to ``benchmarks/results/large_catalog.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "large_catalog.json"


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pad_catalogue(data, num_items: int):
    """``data`` with ``num_items`` items: the extra rows are cold items (no interactions, popularity 0)."""
    extra = num_items - data.num_items
    if extra <= 0:
        return data
    cold = np.array([f"cold-{i}" for i in range(extra)], dtype=str)
    return dataclasses.replace(
        data,
        num_items=num_items,
        item_ids=np.concatenate([np.asarray(data.item_ids, dtype=str), cold]),
        item_popularity=np.concatenate([np.asarray(data.item_popularity), np.zeros(extra, dtype=np.int64)]),
    )


def build_config(items: int, users: int, batch: int, max_len: int, epochs: int, eval_batch: int, loss: str):
    from seqrec.config import build_config as _build

    return _build(
        {
            "data": {
                "name": "synthetic",
                "max_len": max_len,
                "min_user_interactions": 0,
                "min_item_interactions": 0,
                "cache": False,
                "synthetic": {
                    "num_users": users,
                    "num_items": items,
                    "min_length": max_len + 1,  # + valid + test item: one training window per user
                    "mean_length": max_len + 2,
                },
            },
            "model": {"name": "sasrec", "size": "small"},
            "loss": {"name": loss},
            "train": {"epochs": epochs, "batch_size": batch, "patience": epochs, "progress": False,
                      "checkpoint_every": 0},
            "eval": {"batch_size": eval_batch, "bootstrap": 0},
        }
    )


def run(items: int, users: int, batch: int, max_len: int, epochs: int, eval_batch: int, loss: str) -> dict:
    from seqrec.api import Dataset, Recommender
    from seqrec.data import prepare_data

    config = build_config(items, users, batch, max_len, epochs, eval_batch, loss)
    data = pad_catalogue(prepare_data(config.data, None), items)
    warm = int((data.item_popularity > 0).sum())
    rss_before = vm_hwm_mb()
    rec = Recommender(config).fit(Dataset(data, config.data), console=Console())  # train + valid/test evaluation
    m = rec.metrics
    assert m is not None and rec.model is not None
    rows = batch * max_len
    return {
        "items": data.num_items,
        "items_with_interactions": warm,
        "users": data.num_users,
        "batch": batch,
        "max_len": max_len,
        "loss": loss,
        "params": rec.model.num_parameters(),
        "epochs": m["epochs_trained"],
        "epoch_times_s": [h["epoch_time_s"] for h in rec.history],
        "train_losses": [h["train_loss"] for h in rec.history],
        "steps_per_epoch_upper_bound": -(-data.num_users // batch),  # at least one window per user
        "fit_s": m["train_time_s"],
        "eval_s": m["eval_time_s"],
        "peak_rss_mb": vm_hwm_mb(),
        "rss_before_fit_mb": rss_before,
        "materialized_ce_needs_gib": 3 * rows * (data.num_items + 1) * 4 / 2**30,
        "valid": m["valid"],
        "test": m["test"],
    }


def try_materialized(items: int, users: int, batch: int, max_len: int) -> dict:
    """One step of materialised CE in a subprocess; returns its exit status and last error line."""
    cmd = [sys.executable, __file__, "--items", str(items), "--users", str(users), "--batch", str(batch),
           "--max-len", str(max_len), "--epochs", "1", "--loss", "ce_materialized", "--out", "/dev/null"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return {"exit_status": proc.returncode, "seconds": time.perf_counter() - t0,
            "error": (errors or lines or [""])[-1][:300]}


def main(
    items: int = typer.Option(1_000_000, help="catalogue size V (cold items pad the synthetic ones)"),
    users: int = typer.Option(256, help="synthetic users (one training window each)"),
    batch: int = typer.Option(256, help="training windows per step"),
    max_len: int = typer.Option(100, "--max-len", help="sequence length"),
    epochs: int = typer.Option(2, help="epochs (each users/batch steps)"),
    eval_batch: int = typer.Option(64, "--eval-batch", help="users per scoring chunk at evaluation"),
    loss: str = typer.Option("ce", help="loss.name (ce: chunked exact CE)"),
    threads: int = typer.Option(2, help="torch threads"),
    try_materialized_ce: bool = typer.Option(False, "--try-materialized", help="also try ce_materialized"),
    out: Path = typer.Option(DEFAULT_OUT, help="JSON output"),
) -> None:
    torch.set_num_threads(threads)
    res = run(items, users, batch, max_len, epochs, eval_batch, loss)
    res["threads"] = threads
    if try_materialized_ce:
        res["materialized_attempt"] = try_materialized(items, users, batch, max_len)
    table = Table(title=f"SASRec, {res['items']:,} items, batch {batch} x {max_len}, loss {loss}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("items with interactions", f"{res['items_with_interactions']:,}")
    table.add_row("params", f"{res['params']:,}")
    table.add_row("epoch times (s)", ", ".join(f"{t:.1f}" for t in res["epoch_times_s"]))
    table.add_row("train loss per epoch", ", ".join(f"{x:.3f}" for x in res["train_losses"]))
    table.add_row("evaluation (valid + test) s", f"{res['eval_s']:.1f}")
    table.add_row("peak RSS (MiB)", f"{res['peak_rss_mb']:.0f}")
    table.add_row("materialised CE would need (GiB)", f"{res['materialized_ce_needs_gib']:.0f}")
    table.add_row("test NDCG@10 / HR@10", f"{res['test']['NDCG@10']:.4f} / {res['test']['HR@10']:.4f}")
    if "materialized_attempt" in res:
        att = res["materialized_attempt"]
        table.add_row("ce_materialized one step", f"exit {att['exit_status']}: {att['error'][:80]}")
    Console().print(table)
    if str(out) != "/dev/null":
        res["command"] = " ".join(["python", "benchmarks/large_catalog.py", *sys.argv[1:]])
        res["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}
        res["date"] = time.strftime("%Y-%m-%d")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=2) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
