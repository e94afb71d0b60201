"""``--profile`` and ``--dry-run``: a few training steps instead of a run.

``profile_run`` runs ``1 wait + 1 warm-up + train.profile_steps`` optimizer steps under ``torch.profiler``
(CPU, plus CUDA when training on a GPU, with memory profiling and shapes), writes a Chrome trace
(``<output>/profile/trace.json``, open in chrome://tracing or Perfetto) and the top-ops table by self time
(``<output>/profile/top_ops.txt``) and prints it. ``dry_run`` builds the model, prints parameters and the
memory estimate, runs one optimizer step and reports its time and peak memory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch.profiler import ProfilerActivity, profile, schedule

from seqrec.config import Config
from seqrec.data.sequences import PreparedData
from seqrec.io import atomic_write_text
from seqrec.models.base import SequenceModel
from seqrec.train.adapters import describe_params, params_block
from seqrec.train.runtime import peak_memory_mb
from seqrec.train.trainer import Trainer, estimate_memory


def _batches(trainer: Trainer, config: Config, n: int) -> list[list[np.ndarray]]:
    """``n`` optimizer steps' worth of micro-batches from a seeded permutation (repeated if the data is small)."""
    tc = config.train
    rng = np.random.default_rng(tc.seed)
    order = rng.permutation(len(trainer.rows))
    while len(order) < n * tc.batch_size * trainer.accumulate:
        order = np.concatenate([order, rng.permutation(len(trainer.rows))])
    out, pos = [], 0
    for _ in range(n):
        group = []
        for _ in range(trainer.accumulate):
            group.append(order[pos : pos + tc.batch_size])
            pos += tc.batch_size
        out.append(group)
    return out


def profile_run(
    model: SequenceModel, data: PreparedData, config: Config, output_dir: str | Path, *,
    device: torch.device, console: Console,
) -> dict[str, Any]:
    """Profile a few training steps; returns ``{"trace", "table", "top_ops", "steps"}``."""
    tc = config.train
    out_dir = Path(output_dir) / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, data, config, device, console)
    total = 2 + tc.profile_steps
    groups = _batches(trainer, config, total)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    trace = out_dir / "trace.json"
    model.train()
    with profile(
        activities=activities,
        schedule=schedule(wait=1, warmup=1, active=tc.profile_steps, repeat=1),
        profile_memory=True,
        record_shapes=True,
    ) as prof:
        for group in groups:
            trainer.train_batches(group)
            prof.step()
    tmp = out_dir / ".trace.json.tmp"
    prof.export_chrome_trace(str(tmp))
    tmp.replace(trace)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    table = averages.table(sort_by=sort_by, row_limit=15, max_name_column_width=48)
    atomic_write_text(out_dir / "top_ops.txt", table + "\n")
    console.print(f"top ops over {tc.profile_steps} profiled steps (sorted by {sort_by}):", highlight=False)
    console.print(table, highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote Chrome trace {trace}", highlight=False)
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    top_ops = [
        {"name": e.key, "self_cpu_us": e.self_cpu_time_total, "cpu_memory_bytes": e.self_cpu_memory_usage,
         "calls": e.count}
        for e in top
    ]
    return {"trace": str(trace), "table": table, "top_ops": top_ops, "steps": tc.profile_steps}


def dry_run(
    model: SequenceModel, data: PreparedData, config: Config, *, device: torch.device, console: Console
) -> dict[str, Any]:
    """Build, estimate, run one optimizer step; returns params, estimate, step time and peak memory."""
    mem = estimate_memory(model, config, data.num_items, device.type)
    counts = params_block(model, config.peft)
    trainer = Trainer(model, data, config, device, console)
    console.print(
        f"dry run: {describe_params(counts)}; estimated {mem['total_mb']:.0f} MiB per step "
        f"(weights+optimizer {mem['weights_optimizer_mb']:.0f}, activations {mem['activations_mb']:.0f}, "
        f"loss {config.loss.name} {mem['loss_mb']:.0f}; full logits would take {mem['logits_mb']:.0f})",
        highlight=False,
    )
    model.train()
    t0 = time.perf_counter()
    loss, norm = trainer.train_batches(_batches(trainer, config, 1)[0])
    step_s = time.perf_counter() - t0
    peak = peak_memory_mb(device)
    console.print(f"dry run: one step {step_s:.2f} s, loss {loss:.4f}, peak memory {peak:.0f} MiB", highlight=False)
    return {"dry_run": True, "params": int(mem["params"]), "memory_estimate_mb": mem, "step_time_s": step_s,
            "loss": loss, "grad_norm": norm, "peak_memory_mb": peak, **counts}
