"""BERT4Rec scaling study (issue #14): every preset from ``small`` to ``430m`` - parameters, step time, samples/s and
peak memory at a fixed batch for fp32 / bf16-mixed / torch.compile and iLoRA, the profiler's top ops at 130m, and
accuracy of the sizes that train to convergence here; a plot of HR@10 and samples/s against parameters.

    SEQREC_DATA_DIR=/work/shared/data python benchmarks/scaling.py                   # everything (GPU: --device cuda)
    python benchmarks/scaling.py --parts steps --sizes small,5m --variants fp32,ilora  # a slice; rows merge into
                                                                                       # the existing JSON

Parts (``--parts``, comma-separated): ``params`` (every size, total and LoRA / iLoRA trainable share, built on the
meta device), ``steps`` (each size x variant in its own process: ``--warmup`` untimed steps, then ``--steps`` timed
optimizer steps on ML-100K windows at ``--batch`` x max_len 50; a cell over ``--cell-timeout`` seconds is recorded
as timed out, not guessed), ``profile`` (``--profile-size``, fp32 and bf16-mixed: seqrec's profiler, top 15 ops by
self time), ``train`` (the recipe ``configs/bert4rec-ml-100k.yaml`` with ``model.size`` set, to early stopping, for
sizes up to ``--train-max-params`` on ``--train-datasets``, at each learning rate of ``--train-lr`` (default: the
recipe's); ML-1M uses the SASRec file at max_len 200; the plot takes each size's run with the best validation
NDCG@10, never test), ``plot``. Peak memory is CUDA ``max_memory_allocated`` on a GPU and the cell process's peak
RSS on CPU (there it includes the data and Python, ~0.5 GB). On CPU every cell also records its step time in process
CPU seconds (``step_cpu_s``; one thread, so waiting for a core on a shared machine is left out): the comparisons and
the plot use it there. Variants: ``VARIANTS`` below; iLoRA is rank 4 split into 2 experts (the ``peft`` defaults) on
the attention and feed-forward linears, compiled with ``reduce-overhead`` as the seed report found default compile
slow with adapters (both modes are rows). The seed's "AMP + compile: -75% step time, -40% memory" (130m, A100) is
set against this table's ``bf16+compile`` vs ``fp32`` per size.
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
from typing import Any

import yaml

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "bert4rec-ml-100k.yaml"
OUT = ROOT / "benchmarks" / "results" / "scaling.json"
SIZES = ("small", "base", "5m", "large", "85m", "130m", "430m")  # ascending parameter count
VARIANTS: dict[str, list[str]] = {
    "fp32": [],
    "bf16-mixed": ["train.precision=bf16-mixed"],
    "compile": ["train.compile=true"],
    "bf16+compile": ["train.precision=bf16-mixed", "train.compile=true"],
    "ilora": ["peft.method=ilora"],
    "ilora+bf16": ["peft.method=ilora", "train.precision=bf16-mixed"],
    "ilora+bf16+compile": ["peft.method=ilora", "train.precision=bf16-mixed", "train.compile=true"],
    "ilora+bf16+compile-ro": ["peft.method=ilora", "train.precision=bf16-mixed", "train.compile=true",
                              "train.compile_mode=reduce-overhead"],
}
SEED_130M = {"source": "shared/seeds/bert4rec-scaling-report.txt (130M, A100, profiler)",
             "amp_compile_step_time_change": -0.75, "amp_compile_memory_change": -0.40,
             "no_opt_self_cuda_ms": 201.2, "amp_compile_self_cuda_ms": 32.6, "no_opt_peak_gb": 11.2,
             "amp_compile_peak_gb": 7.2}


def _sets(size: str, variant: str, spec: dict[str, Any]) -> list[str]:
    return [f"model.size={size}", *VARIANTS[variant], f"train.batch_size={spec['batch']}",
            f"train.threads={spec['threads']}", f"train.device={spec['device']}", "train.progress=false",
            "train.seed=42"]


# ---- cells (each in its own process: python scaling.py --cell JSON) ---------------------------------------


def step_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """``warmup`` + ``steps`` optimizer steps of one (size, variant): step time, samples/s, peak memory."""
    import numpy as np
    import torch
    from rich.console import Console

    from seqrec.config import load_config
    from seqrec.data import prepare_data
    from seqrec.train.adapters import param_counts
    from seqrec.train.run import build_for
    from seqrec.train.runtime import peak_memory_mb, setup_process
    from seqrec.train.trainer import Trainer

    cfg = load_config(RECIPE, _sets(spec["size"], spec["variant"], spec))
    data = prepare_data(cfg.data, spec["data_dir"])
    device = setup_process(cfg.train.threads, cfg.train.seed, cfg.train.device)
    model, _ = build_for(cfg, data, device, Console(quiet=True))
    trainer = Trainer(model, data, cfg, device)
    model.train()
    order = np.random.default_rng(0).permutation(len(trainer.rows))
    batches = [order[i * spec["batch"]:(i + 1) * spec["batch"]] for i in range(spec["warmup"] + spec["steps"])]

    def step(b: np.ndarray) -> tuple[float, float]:
        """(wall, this process's CPU) seconds of one optimizer step."""
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.train_batches([b])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0, time.process_time() - c0

    first = [step(b)[0] for b in batches[: spec["warmup"]]]  # compilation happens here
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = [step(b) for b in batches[spec["warmup"]:]]
    times, cpu = [t for t, _ in timed], [c for _, c in timed]
    trainable, total = param_counts(model)
    median = float(np.median(times))
    return {"size": spec["size"], "variant": spec["variant"], "device": str(device), "batch": spec["batch"],
            "max_len": cfg.data.max_len, "total_params": total, "trainable_params": trainable,
            "first_step_s": first[0] if first else None, "step_times_s": times, "step_time_s": median,
            "samples_s": spec["batch"] / median, "peak_memory_mb": peak_memory_mb(device),
            # on a shared CPU the wall time includes waiting for a core; with 1 thread the CPU time does not
            "step_cpu_times_s": cpu, "step_cpu_s": float(np.median(cpu)),
            "samples_cpu_s": float(spec["batch"] / np.median(cpu)),
            "threads": torch.get_num_threads(),
            # CompiledForward falls back to eager on a compile error: record which one was timed
            "compiled": getattr(trainer.forward, "compiled", None) is not None}


def profile_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """seqrec's profiler (1 wait + 1 warm-up + 2 active steps) on one (size, variant): the top-ops table."""
    from rich.console import Console

    from seqrec.config import load_config
    from seqrec.data import prepare_data
    from seqrec.train.profiling import profile_run
    from seqrec.train.run import build_for
    from seqrec.train.runtime import setup_process

    cfg = load_config(RECIPE, [*_sets(spec["size"], spec["variant"], spec), "train.profile_steps=2"])
    data = prepare_data(cfg.data, spec["data_dir"])
    device = setup_process(cfg.train.threads, cfg.train.seed, cfg.train.device)
    model, _ = build_for(cfg, data, device, Console(quiet=True))
    with tempfile.TemporaryDirectory() as tmp:  # the Chrome trace is large: not kept
        report = profile_run(model, data, cfg, tmp, device=device, console=Console(quiet=True))
    return {"size": spec["size"], "variant": spec["variant"], "device": str(device), "batch": spec["batch"],
            "top_ops": report["top_ops"], "table": report["table"]}


def run_cell(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--cell", json.dumps({**spec, "kind": kind})], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row = {**_key(spec), "skipped": f"timed out after {timeout:.0f} s (--cell-timeout)"}
    else:
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            row = {**_key(spec), "skipped": f"failed: {lines[-1] if lines else proc.returncode}"}
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t0
    print(json.dumps({k: v for k, v in row.items() if k not in ("table", "top_ops")}), flush=True)
    return row


def _key(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("size", "variant", "batch") if k in spec} | {"device": spec.get("device")}


# ---- parts ------------------------------------------------------------------------------------------------


def params_part(sizes: list[str], num_items: int = 1682, max_len: int = 50) -> list[dict[str, Any]]:
    """Total parameters and the LoRA / iLoRA trainable share per size (ML-100K catalogue), on the meta device, with
    the ``peft`` defaults (rank 4; iLoRA 2 experts) - and again with the item table trained in full beside the
    adapters (``modules_to_save: [item_emb]``, as when the catalogue changes): keys ``{method}+item_emb_*``."""
    import torch

    from seqrec.config import build_config
    from seqrec.models import build_model
    from seqrec.train.adapters import apply_adapters, param_counts

    rows = []
    for size in sizes:
        row: dict[str, Any] = {"size": size, "num_items": num_items, "max_len": max_len}
        for method, save in (("none", []), ("lora", []), ("ilora", []), ("lora", ["item_emb"]),
                             ("ilora", ["item_emb"])):
            cfg = build_config({"model": {"name": "bert4rec", "size": size},
                                "peft": {"method": method, "modules_to_save": save}})
            with torch.device("meta"):
                trainable, total = param_counts(apply_adapters(build_model(cfg.model, num_items, max_len), cfg.peft))
            key = method + "".join(f"+{m}" for m in save)
            row[f"{key}_trainable"], row[f"{key}_total"] = trainable, total
            row[f"{key}_trainable_pct"] = 100.0 * trainable / total
        row["params"] = row.pop("none_total")
        del row["none_trainable"], row["none_trainable_pct"]
        rows.append(row)
    return rows


def train_part(sizes: list[str], datasets: list[str], max_params: float, params: dict[str, int],
               args: argparse.Namespace, keep: Any = None) -> list[dict[str, Any]]:
    """The recipe with ``model.size`` set, to early stopping (one process per run), for the small sizes.

    ``keep(row)`` is called after every run (the caller saves the JSON), so an interrupted study keeps its
    finished runs."""
    rows = []
    # the row records the lr set (metrics.json's lr is the last epoch's, after any schedule)
    recipe_lr = float(yaml.safe_load(RECIPE.read_text())["train"]["lr"])
    lrs = [float(x) for x in args.train_lr.split(",")] if args.train_lr else [recipe_lr]
    for dataset, size, lr in ((d, s, lr) for d in datasets for s in sizes for lr in lrs):
        if params[size] > max_params:
            continue
        data = ["--set", "data.name=ml-100k"] if dataset == "ml-100k" else [
            "--set", "data.name=file", "--set", f"data.path={Path(args.data_dir) / 'ml-1m' / 'ml-1m.txt'}",
            "--set", "data.format=sasrec", "--set", "data.max_len=200"]
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "seqrec.cli", "train", "--config", str(RECIPE), "--output", tmp,
                   "--data-dir", args.data_dir, *data, "--set", f"model.size={size}", "--set",
                   f"train.threads={args.threads}", "--set", f"train.device={args.device}", "--set",
                   "train.progress=false", "--set", f"train.lr={lr}"]
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                rows.append({"dataset": dataset, "size": size, "lr": lr, "skipped": proc.stderr.strip()[-300:]})
                continue
            m = json.loads((Path(tmp) / "metrics.json").read_text())
        rows.append({"dataset": dataset, "size": size, "lr": lr, "params": m["total_params"],
                     "valid_NDCG@10": m["valid"]["NDCG@10"],
                     "test_HR@10": m["test"]["HR@10"], "test_NDCG@10": m["test"]["NDCG@10"],
                     "test_ci95_HR@10": m["test_ci95"]["HR@10"], "epochs": m["epochs_trained"],
                     "best_epoch": m["best_epoch"], "epoch_time_avg_s": m["epoch_time_avg_s"],
                     "throughput_seq_s": m["throughput_seq_s"], "wall_s": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
        if keep is not None:
            keep(rows[-1])
    return rows


def _step_s(row: dict[str, Any]) -> float:
    """A cell's step time: CPU time on the CPU (1 thread: free of the waiting a shared machine adds), else wall."""
    return row["step_cpu_s"] if row["device"] == "cpu" and "step_cpu_s" in row else row["step_time_s"]


def seed_comparison(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and device: bf16+compile (and iLoRA variants) against fp32 - the seed's -75% / -40% claim."""
    out = []
    done = {(r["size"], r["device"], r["variant"]): r for r in steps if "step_time_s" in r}
    for (size, device, variant), base in sorted(done.items()):
        if variant != "fp32":
            continue
        row: dict[str, Any] = {"size": size, "device": device}
        for other in VARIANTS:
            r = done.get((size, device, other))
            if r is not None and other != "fp32":
                row[f"{other}_step_time_change"] = _step_s(r) / _step_s(base) - 1
                row[f"{other}_memory_change"] = r["peak_memory_mb"] / base["peak_memory_mb"] - 1
        out.append(row)
    return out


def chosen_on_validation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, size), the trained run (one per learning rate) with the best validation NDCG@10."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if "test_HR@10" not in r:
            continue
        key = (r["dataset"], r["size"])
        if key not in best or r.get("valid_NDCG@10", 0.0) > best[key].get("valid_NDCG@10", 0.0):
            best[key] = r
    return list(best.values())


def plot(result: dict[str, Any], path: Path) -> None:
    """Left: test HR@10 vs parameters (trained sizes, 95% CI). Right: training samples/s vs parameters per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    trained = chosen_on_validation(result.get("train", []))
    for dataset in dict.fromkeys(r["dataset"] for r in trained):
        rows = sorted((r for r in trained if r["dataset"] == dataset), key=lambda r: r["params"])
        hr = [r["test_HR@10"] for r in rows]
        err = [[h - r["test_ci95_HR@10"][0] for h, r in zip(hr, rows, strict=True)],
               [r["test_ci95_HR@10"][1] - h for h, r in zip(hr, rows, strict=True)]]
        left.errorbar([r["params"] for r in rows], hr, yerr=err, marker="o", capsize=3, label=dataset)
        for r, h in zip(rows, hr, strict=True):
            left.annotate(f"{r['size']} (lr {r['lr']:g})", (r["params"], h),
                          textcoords="offset points", xytext=(5, 4), fontsize=8)
    if not trained:
        left.text(0.5, 0.5, "no size trained in this run", ha="center", transform=left.transAxes)
    left.set(xscale="log", xlabel="parameters", ylabel="test HR@10 (95% CI)",
             title="accuracy (recipe's epoch cap; each size's lr chosen on validation)")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels overlap
    if trained:
        left.legend()
    steps = [r for r in result.get("steps", []) if "samples_s" in r]
    base = {r["size"]: r["params"] for r in result.get("params", [])}  # x: the size's own parameters (no adapters)
    for device in dict.fromkeys(r["device"] for r in steps):
        for variant in VARIANTS:
            rows = sorted((r for r in steps if r["variant"] == variant and r["device"] == device),
                          key=lambda r: base.get(r["size"], r["total_params"]))
            if rows:
                right.plot([base.get(r["size"], r["total_params"]) for r in rows],
                           [r["batch"] / _step_s(r) for r in rows], marker="o", label=f"{variant} ({device})")
    batch = sorted({r["batch"] for r in steps})
    right.set(xscale="log", yscale="log", xlabel="parameters", ylabel="training samples/s (CPU: per CPU-second)",
              title=f"throughput at batch {'/'.join(map(str, batch))} x 50")
    if steps:
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _merge(old: list[dict[str, Any]], new: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """``old`` with rows of the same key replaced by ``new`` (so slices of the study can be run separately)."""
    index = {tuple(r.get(k) for k in keys) for r in new}
    return [r for r in old if tuple(r.get(k) for k in keys) not in index] + new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    ap.add_argument("--parts", default="params,steps,profile,train,plot")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--batch", type=int, default=None, help="training windows per step (default: 16 cpu, 128 cuda)")
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps per cell")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 cpu, 3 cuda)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cell-timeout", type=float, default=900.0)
    ap.add_argument("--profile-size", default="130m")
    ap.add_argument("--profile-variants", default="fp32,bf16-mixed")
    ap.add_argument("--train-sizes", default=",".join(SIZES))
    ap.add_argument("--train-lr", default="", help="comma-separated learning rates per size (default: the recipe's)")
    ap.add_argument("--train-max-params", type=float, default=20e6)
    ap.add_argument("--train-datasets", default="ml-100k,ml-1m")
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--note", action="append", default=[], help="a line for the JSON's notes (what was not run)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.cell:
        spec = json.loads(args.cell)
        print(json.dumps(step_cell(spec) if spec["kind"] == "step" else profile_cell(spec)))
        return
    cuda = args.device.startswith("cuda")
    batch = args.batch or (128 if cuda else 16)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)  # the plot may be written before the first save
    result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    result.setdefault("commands", []).append("python benchmarks/" + " ".join([Path(__file__).name, *sys.argv[1:]]))
    result["seed_130m"] = SEED_130M
    result.setdefault("notes", []).extend(args.note)
    parts, sizes, variants = args.parts.split(","), args.sizes.split(","), args.variants.split(",")
    base = {"device": args.device, "batch": batch, "threads": args.threads, "data_dir": args.data_dir,
            "warmup": warmup, "steps": args.steps}

    def save() -> None:
        atomic_write_text(out, json.dumps(result, indent=1) + "\n")

    if "params" in parts:
        result["params"] = _merge(result.get("params", []), params_part(sizes), ("size",))
        save()
    if "steps" in parts:
        for size in sizes:
            for variant in variants:
                row = run_cell("step", {**base, "size": size, "variant": variant}, args.cell_timeout)
                result["steps"] = _merge(result.get("steps", []), [row], ("size", "variant", "device", "batch"))
                result["seed_comparison"] = seed_comparison(result["steps"])
                save()
    if "profile" in parts:
        for variant in args.profile_variants.split(","):
            row = run_cell("profile", {**base, "size": args.profile_size, "variant": variant}, args.cell_timeout)
            result["profile"] = _merge(result.get("profile", []), [row], ("size", "variant", "device", "batch"))
            save()
    if "train" in parts:
        params = {r["size"]: r["params"] for r in result.get("params", [])} or {
            r["size"]: r["params"] for r in params_part(list(SIZES))}
        def keep(row: dict[str, Any]) -> None:
            result["train"] = _merge(result.get("train", []), [row], ("dataset", "size", "lr"))
            save()

        train_part(args.train_sizes.split(","), args.train_datasets.split(","), args.train_max_params, params, args,
                   keep)
    if "plot" in parts:
        plot(result, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.png')}")
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
