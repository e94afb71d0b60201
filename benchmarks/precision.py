"""Step time (and optionally test NDCG@10) of SASRec on ML-100K: fp32 vs bf16-mixed vs torch.compile.

Each variant runs in its own process (clean compile caches and RSS): the ``small`` recipe model, a fixed seeded
set of batches, ``--warmup`` untimed optimizer steps (torch.compile compiles here), then ``--steps`` timed
steps; median step time is reported with its ratio to fp32. ``--epochs N`` additionally trains each variant for
N epochs through ``seqrec train`` (no early stopping) and reports test NDCG@10 and its relative difference to
fp32. Skips cleanly when ``../shared/data/ml-100k`` (or ``$SEQREC_DATA_DIR``) is absent.

    python benchmarks/precision.py --threads 1 --steps 30
    python benchmarks/precision.py --threads 1 --epochs 5 --variants fp32,bf16
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

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "sasrec-ml-100k.yaml"
VARIANTS: dict[str, list[str]] = {
    "fp32": ["train.precision=32"],
    "bf16": ["train.precision=bf16-mixed"],
    "compile": ["train.precision=32", "train.compile=true"],
    "compile-bf16": ["train.precision=bf16-mixed", "train.compile=true"],
}

CHILD = """
import json, statistics, sys, time
import torch
from rich.console import Console
from seqrec.config import load_config
from seqrec.data import prepare_data
from seqrec.models import build_model
from seqrec.train.runtime import peak_memory_mb, seed_everything
from seqrec.train.trainer import Trainer

recipe, data_dir = sys.argv[1], sys.argv[2]
threads, warmup, steps = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg = load_config(recipe, sys.argv[6:])
torch.set_num_threads(threads)
seed_everything(cfg.train.seed)
data = prepare_data(cfg.data, data_dir)
model = build_model(cfg.model, data.num_items, cfg.data.max_len)
console = Console(stderr=True)
tr = Trainer(model, data, cfg, torch.device("cpu"), console)
tr.gen.manual_seed(0)
order = torch.randperm(len(tr.rows), generator=torch.Generator().manual_seed(1)).numpy()
bs = cfg.train.batch_size
batches = [order[(i * bs) % (len(order) - bs):][:bs] for i in range(warmup + steps)]
model.train()
t0 = time.perf_counter()
for b in batches[:warmup]:
    tr.train_batches([b])
warm_s = time.perf_counter() - t0
times, losses = [], []
for b in batches[warmup:]:
    t = time.perf_counter()
    loss, _ = tr.train_batches([b])
    times.append(time.perf_counter() - t)
    losses.append(loss)
compiled = getattr(tr.forward, "compiled", None) is not None if cfg.train.compile else False
print(json.dumps({"step_ms_median": 1000 * statistics.median(times), "step_ms_mean": 1000 * statistics.mean(times),
                  "warmup_s": warm_s, "last_loss": losses[-1], "compiled": compiled,
                  "peak_rss_mb": peak_memory_mb(torch.device("cpu"))}))
"""


def time_variant(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        str(RECIPE),
        args.data_dir,
        str(args.threads),
        str(args.warmup),
        str(args.steps),
        *VARIANTS[name],
        *args.extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"variant": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    fallback = [ln for ln in proc.stderr.splitlines() if "continuing uncompiled" in ln]
    return {"variant": name, **row, **({"compile_fallback": fallback[0]} if fallback else {})}


def train_variant(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sets = [
            *VARIANTS[name],
            f"train.epochs={args.epochs}",
            f"train.patience={args.epochs + 1}",
            f"train.threads={args.threads}",
            "train.progress=false",
            "eval.bootstrap=0",
            *args.extra,
        ]
        cmd = [
            sys.executable,
            "-m",
            "seqrec.cli",
            "train",
            "--config",
            str(RECIPE),
            "--output",
            tmp,
            "--data-dir",
            args.data_dir,
            *[x for s in sets for x in ("--set", s)],
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        m = json.loads((Path(tmp) / "metrics.json").read_text())
    return {
        "test_NDCG@10": m["test"]["NDCG@10"],
        "test_HR@10": m["test"]["HR@10"],
        "epoch_time_avg_s": m["epoch_time_avg_s"],
        "train_wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="fp32,bf16,compile")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=0, help="also train N epochs per variant and compare test NDCG@10")
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra config override")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision.json"))
    args = ap.parse_args()
    if not (Path(args.data_dir) / "ml-100k").is_dir():
        print(f"skipped: ML-100K not found under {args.data_dir}")
        return
    rows = []
    for name in args.variants.split(","):
        row = time_variant(name, args)
        if args.epochs and "error" not in row:
            row["train"] = train_variant(name, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["variant"] == "fp32" and "error" not in r), None)
    for r in rows:
        if base and "error" not in r:
            r["step_time_ratio_vs_fp32"] = r["step_ms_median"] / base["step_ms_median"]
            bt, rt = base.get("train", {}), r.get("train", {})
            if "test_NDCG@10" in bt and "test_NDCG@10" in rt:
                r["ndcg_rel_diff_vs_fp32"] = (rt["test_NDCG@10"] - bt["test_NDCG@10"]) / bt["test_NDCG@10"]
        ratio = f"{r['step_time_ratio_vs_fp32']:.2f}x fp32" if "step_time_ratio_vs_fp32" in r else r.get("error", "")
        ndcg = f", test NDCG@10 {r['train']['test_NDCG@10']:.4f}" if "test_NDCG@10" in r.get("train", {}) else ""
        rel = f" ({100 * r['ndcg_rel_diff_vs_fp32']:+.1f}% vs fp32)" if "ndcg_rel_diff_vs_fp32" in r else ""
        step = f"{r['step_ms_median']:.1f} ms/step, " if "step_ms_median" in r else ""
        print(f"{r['variant']:>13}: {step}{ratio}{ndcg}{rel}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "threads": args.threads,
        "steps": args.steps,
        "cpu": os.cpu_count(),
        "rows": rows,
    }
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
