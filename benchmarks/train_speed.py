"""Training cost and accuracy per model on ML-100K: epoch time, throughput, peak memory, params, test metrics.

Each (model, max_len) cell runs in its own process (clean peak-RSS accounting) through ``seqrec train`` with the
model's shipped recipe. ``--epochs N`` times N epochs without early stopping (speed only); without it the recipe
trains to early stopping and test NDCG@10 / HR@10 are reported too.

    python benchmarks/train_speed.py --models sasrec --lengths 50 --epochs 3
    python benchmarks/train_speed.py --models sasrec,bert4rec,gru4rec,xlstm --lengths 50,75,100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def run_cell(model: str, max_len: int, epochs: int | None, threads: int, data_dir: str, extra: list[str]) -> dict:
    recipe = ROOT / "configs" / f"{model}-ml-100k.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "seqrec.cli", "train", "--config", str(recipe), "--output", tmp,
            "--data-dir", data_dir, "--set", f"data.max_len={max_len}", "--set", f"train.threads={threads}",
            "--set", "train.progress=false",
        ]
        if epochs is not None:
            cmd += ["--set", f"train.epochs={epochs}", "--set", f"train.patience={epochs + 1}"]
        for e in extra:
            cmd += ["--set", e]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"model": model, "max_len": max_len, "error": proc.stderr.strip().splitlines()[-1:]}
        m = json.loads((Path(tmp) / "metrics.json").read_text())
    return {
        "model": model,
        "max_len": max_len,
        "epochs": m["epochs_trained"],
        "epoch_time_avg_s": m["epoch_time_avg_s"],
        "epoch_time_max_s": m["epoch_time_max_s"],
        "throughput_seq_s": m["throughput_seq_s"],
        "peak_memory_mb": m["peak_memory_mb"],
        "params": m["params"],
        "test_NDCG@10": m["test"]["NDCG@10"],
        "test_HR@10": m["test"]["HR@10"],
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sasrec")
    ap.add_argument("--lengths", default="50")
    ap.add_argument("--epochs", type=int, default=None, help="time N epochs only (no early stopping)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra config override")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_speed.json"))
    args = ap.parse_args()
    if not (Path(args.data_dir) / "ml-100k").is_dir():
        print(f"skipped: ML-100K not found under {args.data_dir}")
        return
    rows = []
    for model in args.models.split(","):
        for L in (int(x) for x in args.lengths.split(",")):
            rows.append(run_cell(model, L, args.epochs, args.threads, args.data_dir, args.extra))
            print(json.dumps(rows[-1]), flush=True)
    table = Table(title=f"ML-100K training cost ({f'{args.epochs} epochs' if args.epochs else 'to early stop'}, "
                  f"{args.threads} threads)")
    cols = ["model", "max_len", "epochs", "epoch_time_avg_s", "throughput_seq_s", "peak_memory_mb", "params",
            "test_NDCG@10", "test_HR@10", "wall_s"]
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(f"{r[c]:.4f}" if isinstance(r.get(c), float) and c.startswith("test") else
                        f"{r[c]:.1f}" if isinstance(r.get(c), float) else str(r.get(c, r.get("error", "")))
                        for c in cols))
    Console().print(table)
    out = Path(args.out)
    atomic_write_text(out, json.dumps({"command": "python " + " ".join(sys.argv), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
