"""Recformer on Amazon "Industrial and Scientific" (the seed's Scientific), every row of the seed's tables beside
the ID models: zero-shot, fine-tuned (Algorithm 1), the ablation variants, no pre-training, cold start, and
SASRec / GRU4Rec / BERT4Rec through their recipes, all on the same split with full-ranking evaluation.

    python benchmarks/recformer_scientific.py --quick     # synthetic stand-ins, tiny encoder: minutes on a CPU
    python benchmarks/recformer_scientific.py             # the real runs (GPU strongly advised: see --cost)
    python benchmarks/recformer_scientific.py --cost      # a few measured steps per row -> expected time per row
    python benchmarks/recformer_scientific.py --rows zero-shot,fix,sasrec   # a subset (names below)

Pipeline: ``seqrec pretrain`` (configs/recformer-pretrain.yaml: Recformer-mini on ML-1M + Amazon Office 2014 +
Amazon Magazine 2018; Scientific never seen), then each row is one ``seqrec train`` / ``seqrec evaluate`` run in
its own process under ``--work`` (default out/recformer-scientific/<row>). A finished row (metrics.json) is read
back, an interrupted one resumed (``--resume``), so re-running the command continues. Rows: zero-shot (the
pre-trained checkpoint evaluated on Scientific, train_s = the pre-training time), fix (= Algorithm 1),
original, variable, training_only, finetune_only (model.item_matrix, all from the pre-trained weights),
no-pretraining (fix from random weights), cold-start (fine-tuned with data.cold_item_fraction=0.1; metrics of
the cold-target users), the ID models with their ML-100K recipes, sasrec-cold (HR 0 by construction: an ID
model cannot rank items it never trained on) and the popularity baseline. Results: a JSON list of rows
``{"model", "variant", "NDCG@10", "Recall@10", "MRR@10", "train_s", ...}`` in
benchmarks/results/recformer_scientific.json (``--quick``: recformer_scientific_quick.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ROOT / "configs"
TARGET = "amazon-scientific-2018"


@dataclass
class Row:
    name: str  # --rows key and work folder
    model: str
    variant: str
    kind: str  # train | cold | zero_shot
    config: str  # config file under configs/
    sets: list[str] = field(default_factory=list)


ID_DATA = [f"data.name={TARGET}", "data.max_len=50", "eval.ks=[10]"]
RF_CONFIG, COLD = "recformer-scientific.yaml", "data.cold_item_fraction=0.1"
ROWS = [
    Row("zero-shot", "recformer", "zero-shot", "zero_shot", RF_CONFIG),
    *(Row(v, "recformer", v, "train", RF_CONFIG, [f"model.item_matrix={v}"])
      for v in ("fix", "original", "variable", "training_only", "finetune_only")),
    Row("no-pretraining", "recformer", "no-pretraining", "train", RF_CONFIG, ["model.init_from=null"]),
    Row("cold-start", "recformer", "cold-start", "cold", RF_CONFIG, [COLD]),
    *(Row(m, m, "recipe", "train", f"{m}-ml-100k.yaml", ID_DATA) for m in ("sasrec", "gru4rec", "bert4rec")),
    Row("sasrec-cold", "sasrec", "cold-start", "cold", "sasrec-ml-100k.yaml", [*ID_DATA, COLD]),
]

# --quick: the same pipeline on synthetic data (target seed 42, corpus seeds 7 and 8) with a tiny encoder.
QUICK_DATA = ["data.name=synthetic", "data.max_len=8", "data.synthetic.num_users=150", "data.synthetic.num_items=60",
              "data.synthetic.mean_length=12", "data.min_user_interactions=5", "data.min_item_interactions=5",
              "train.threads=1", "train.progress=false", "eval.bootstrap=50", "eval.ks=[10]"]
QUICK_RF = ["model.size=tiny", "model.hidden=32", "model.ffn=64", "model.max_tokens=128", "train.batch_size=64",
            "train.lr=0.003", "train.warmup_steps=0", "train.epochs=4", "model.stage1_epochs=2",
            "model.stage2_patience=2", "train.patience=2"]
QUICK_PRETRAIN = ["pretrain.datasets=[{name: synthetic, seed: 7}, {name: synthetic, seed: 8}]", "train.epochs=2"]
QUICK_ID = ["train.epochs=10"]


def cli(args: list[str], log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1"}
    with open(log, "a") as f:
        f.write(f"$ seqrec {' '.join(args)}\n")
        f.flush()
        proc = subprocess.run([sys.executable, "-m", "seqrec.cli", *args], env=env, stdout=subprocess.PIPE,
                              stderr=f, text=True)
        f.write(proc.stdout)
    if proc.returncode:
        raise SystemExit(f"seqrec {args[0]} failed (exit {proc.returncode}); see {log}")
    return proc


def run_dir(kind: str, config: Path, out: Path, sets: list[str], log: Path) -> dict:
    """A finished run's metrics.json, else run it (resuming an interrupted one)."""
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    flags = [f for s in sets for f in ("--set", s)]
    if (out / "last").is_dir():
        cli([kind, "--resume", str(out), *flags], log)
    else:
        cli([kind, "--config", str(config), "--output", str(out), "--overwrite", *flags], log)
    return json.loads((out / "metrics.json").read_text())


def row_of(row: Row, block: dict, train_s: float, dataset: str) -> dict:
    return {"model": row.model, "variant": row.variant, "NDCG@10": block["NDCG@10"],
            "Recall@10": block["Recall@10"], "MRR@10": block["MRR@10"], "train_s": round(train_s, 1),
            "dataset": dataset}


def run_rows(rows: list[Row], work: Path, quick: bool) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    data = QUICK_DATA if quick else []
    pre_dir = work / "pretrain"
    needs_pretrain = any(r.model == "recformer" and r.name != "no-pretraining" for r in rows)
    pre_metrics = None
    if needs_pretrain:
        t0 = time.perf_counter()
        pre_metrics = run_dir("pretrain", CONFIGS / "recformer-pretrain.yaml", pre_dir,
                              [*data, *(QUICK_RF + QUICK_PRETRAIN if quick else [])], log)
        print(f"pretrain: {pre_metrics['epochs_trained']} epochs, {time.perf_counter() - t0:.0f} s "
              f"(corpus {', '.join(p['name'] for p in pre_metrics['corpus'])})", flush=True)
    out: list[dict] = []
    for row in rows:
        sets = list(data)
        if row.model == "recformer":
            sets += QUICK_RF if quick else []
            sets.append(f"model.init_from={pre_dir}")
        elif quick:
            sets += QUICK_ID
        sets += row.sets  # last: the row's own settings win (no-pretraining's init_from=null)
        if quick:
            sets = [s for s in sets if not s.startswith(("data.name=amazon", "data.max_len=50"))]
        t0 = time.perf_counter()
        if row.kind == "zero_shot":
            flags = [f for s in sets if s.startswith(("data.", "eval.")) for f in ("--set", s)]
            block = json.loads(cli(["evaluate", "--checkpoint", str(pre_dir), "--json", *flags], log).stdout)
            result = row_of(row, block["test"], pre_metrics["train_time_s"] if pre_metrics else 0.0,
                            "synthetic" if quick else TARGET)
        else:
            metrics = run_dir("train", CONFIGS / row.config, work / row.name, sets, log)
            block = metrics["cold"]["test"] if row.kind == "cold" else metrics["test"]
            result = row_of(row, block, metrics["train_time_s"], metrics["dataset"])
            if row.name == "sasrec":
                pop = metrics["baselines"]["popularity"]["test"]
                out.append(row_of(Row("popularity", "popularity", "baseline", "", ""), pop, 0.0, metrics["dataset"]))
        out.append(result)
        print(f"{row.name:15s} NDCG@10 {result['NDCG@10']:.4f}  Recall@10 {result['Recall@10']:.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


# ---- --cost: measured steps -> expected time per row --------------------------------------------------------


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, AdamW state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure(config_file: str, sets: list[str], steps: int, pretrain: bool = False) -> dict:
    """Median optimizer-step time, item-encoding and validation time (both from a sample, scaled) of one config."""
    import numpy as np
    import torch

    from seqrec.data import prepare_data
    from seqrec.eval.ranking import left_padded
    from seqrec.models import build_model
    from seqrec.train.pretrain import PretrainTrainer, build_corpus, load_pretrain_config
    from seqrec.train.text_setup import is_text_model, prepare_for_training
    from seqrec.train.trainer import Trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if pretrain:
        config, pre = load_pretrain_config(CONFIGS / config_file, sets)
        data, items = build_corpus(config, pre, None)
        model = build_model(config.model, data.num_items, config.data.max_len)
        from seqrec.data.text import text_collator

        model.attach_text(text_collator(model.config, items, config.data.max_len))
        trainer = PretrainTrainer(model, data, config, torch.device("cpu"), items, pre.shared_pass)
    else:
        from seqrec.config import load_config

        config = load_config(CONFIGS / config_file, sets)
        data = prepare_data(config.data)
        model = build_model(config.model, data.num_items, config.data.max_len)
        prepare_for_training(model, config, data)
        trainer = Trainer(model, data, config, torch.device("cpu"))
    order = trainer.rng.permutation(len(trainer.rows))
    bs = config.train.batch_size
    batches = iter(order[i * bs : (i + 1) * bs] for i in range(steps + 1))
    step_s = _timed(lambda: trainer.train_batches([next(batches)]), steps)
    out = {"config": config_file, "sets": sets, "preset": config.model.size, "batch_size": bs,
           "windows_per_epoch": int(len(trainer.rows)), "steps_per_epoch": trainer.steps_per_epoch,
           "step_s": step_s, "epoch_train_s": step_s * trainer.steps_per_epoch, "epochs_cap": config.train.epochs}
    model.eval()
    users = min(len(data.valid), 64)
    hist = torch.from_numpy(left_padded(data.valid.inputs, np.arange(users), config.data.max_len))
    with torch.no_grad():
        t0 = time.perf_counter()
        model.prediction_hidden(hist)
        out["valid_s"] = (time.perf_counter() - t0) * len(data.valid) / users
    if is_text_model(model):
        sample = np.arange(1, min(data.num_items, 512) + 1)
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, len(sample), 256):
                model.encode_sequences(model.text.alone(sample[s : s + 256]))
        out["encode_items_s"] = (time.perf_counter() - t0) * data.num_items / len(sample)
    # stage 1 re-encodes at epoch start / before validation (one encoding per epoch), plus a validation per epoch
    epoch = out["epoch_train_s"] + out.get("encode_items_s", 0.0) + out["valid_s"]
    out["epoch_s"] = epoch
    out["expected_s_at_cap"] = epoch * config.train.epochs + 2 * out["valid_s"]
    return out


def cost(steps: int) -> dict:
    import torch

    load0 = os.getloadavg()[0]
    rows = {
        "pretrain (mini, corpus ml-1m + office + magazine)": measure("recformer-pretrain.yaml", [], steps, True),
        "recformer fine-tuning (mini, any variant)": measure("recformer-scientific.yaml", ["model.init_from=null"],
                                                              steps),
    }
    for m in ("sasrec", "gru4rec", "bert4rec"):
        rows[f"{m} (recipe)"] = measure(f"{m}-ml-100k.yaml", ID_DATA, steps)
    return {"command": "python benchmarks/recformer_scientific.py --cost", "threads": 1, "device": "cpu",
            "torch": torch.__version__, "load_1min_before": load0, "load_1min_after": os.getloadavg()[0],
            "note": "CPU, one thread, shared 2-core machine: step_s is the median of the measured steps; encoding and "
                    "validation are timed on a sample and scaled; expected_s_at_cap = epochs_cap full epochs (early "
                    "stopping usually ends sooner). Every Recformer row of the table costs about one fine-tuning "
                    "estimate (zero-shot: one encoding + evaluation); the pre-training comes once.",
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="synthetic data, tiny encoder (verifies the pipeline)")
    ap.add_argument("--cost", action="store_true", help="measure a few steps per row, write the expected cost")
    ap.add_argument("--steps", type=int, default=3, help="--cost: measured steps per row (after one warm-up)")
    ap.add_argument("--rows", default=None, help="comma-separated row names: " + ",".join(r.name for r in ROWS))
    ap.add_argument("--work", type=Path, default=None, help="run directories (default out/recformer-scientific)")
    ap.add_argument("--output", type=Path, default=None, help="results JSON")
    args = ap.parse_args(argv)
    if args.cost:
        result = cost(args.steps)
        path = args.output or RESULTS / "recformer_scientific_cost.json"
        atomic_write_text(path, json.dumps(result, indent=1) + "\n")
        for name, r in result["rows"].items():
            print(f"{name:55s} step {r['step_s']:7.3f} s x {r['steps_per_epoch']:6d} steps/epoch -> epoch "
                  f"{r['epoch_s'] / 3600:6.2f} h, at the cap ({r['epochs_cap']} epochs) "
                  f"{r['expected_s_at_cap'] / 3600:7.1f} h")
        print(f"wrote {path}")
        return 0
    wanted = set(args.rows.split(",")) if args.rows else None
    rows = [r for r in ROWS if wanted is None or r.name in wanted]
    if wanted is not None and len(rows) != len(wanted):
        known = {r.name for r in ROWS}
        raise SystemExit(f"unknown rows: {', '.join(sorted(wanted - known))} (known: {', '.join(sorted(known))})")
    work = args.work or ROOT / "out" / ("recformer-scientific-quick" if args.quick else "recformer-scientific")
    t0 = time.perf_counter()
    out = run_rows(rows, work, args.quick)
    path = args.output or RESULTS / ("recformer_scientific_quick.json" if args.quick else "recformer_scientific.json")
    atomic_write_text(path, json.dumps(out, indent=1) + "\n")
    print(f"{len(out)} rows in {time.perf_counter() - t0:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
