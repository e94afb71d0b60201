"""Time (forward + backward) and peak extra memory of every loss in seqrec.losses, on CPU.

    python benchmarks/losses.py            # full grid: N=8192, D=64, V in {1e4, 1e5, 5e5}, K in {127, 1023}
    python benchmarks/losses.py --quick    # small grid (seconds)

Every case runs in a fresh subprocess (``--case JSON``), so one case's allocations never hide another's.

Memory method: peak resident set size (Linux ``VmHWM``) minus the RSS just before the measured call, after the
inputs (hidden, weight, targets) exist and after a tiny warm-up call of the same loss (loads code paths,
MKL/OpenMP buffers, autograd threads). The peak counter is reset with ``/proc/self/clear_refs`` (``5``) right
before the first full-size call, so every page that call touches counts, including the ``(V, D)`` weight
gradient every loss produces; the CPU allocator does not cache, and memory glibc keeps after a free was
touched inside the measured call, so this errs on the high side. tracemalloc would not see torch allocations.

Timing: wall-clock of that first call plus ``--repeats`` more (more when a call takes < 2 s); the minimum is
reported (``time_s``), with the process CPU time of the same call (``cpu_s``, less sensitive to other jobs on
a shared machine). Torch uses ``--threads`` threads (default 1). ``--trials`` repeats each case in new
subprocesses, interleaved with the other cases, and keeps the fastest (and the largest peak).

Cases whose estimated memory exceeds ``--max-gb`` are skipped and reported as such (e.g. materialised CE at
V = 5e5 needs ~3 x N x V x 4 bytes = 49 GB). Results go to ``benchmarks/results/losses.json`` (atomic write)
with the command line that produced them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "losses.json"

# name -> (kind, keyword arguments); kind picks the function in _run_case
VARIANTS: dict[str, dict] = {
    "ce": {"fn": "linear_cross_entropy", "exact": True},
    "ce_materialized": {"fn": "materialized_cross_entropy", "exact": True},
    "torch_linear_ce": {"fn": "torch", "exact": True},  # torch.nn.functional.linear_cross_entropy, chunked
    "ce_neg": {"fn": "sampled", "fused": False, "shared": False},
    "cce_neg": {"fn": "sampled", "fused": True, "shared": False},
    "ce_neg_shared": {"fn": "sampled", "fused": False, "shared": True},
    "cce_neg_shared": {"fn": "sampled", "fused": True, "shared": True},
    "bce": {"fn": "bce", "fixed_k": 1},
    "gbce": {"fn": "gbce"},
    "sce": {"fn": "sce"},
}


def _estimate_gb(loss: str, n: int, d: int, v: int, k: int) -> float:
    """Rough peak of the big temporaries, to skip cases that cannot fit."""
    if loss in ("ce_materialized",):
        return 3 * n * v * 4 / 1e9
    if loss in ("ce_neg", "sce_materialized"):
        return 3 * n * k * d * 4 / 1e9
    return 0.0


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _run_case(case: dict) -> dict:
    """Executed inside the fresh subprocess."""
    import torch

    torch.set_num_threads(case["threads"])
    from seqrec.losses import (
        LossOptions,
        NegativeOptions,
        bce_loss,
        gbce_loss,
        linear_cross_entropy,
        materialized_cross_entropy,
        sampled_cross_entropy,
        sce_loss,
    )

    spec = VARIANTS[case["loss"]]

    def make(n: int, d: int, v: int) -> tuple:
        g = torch.Generator().manual_seed(0)
        hidden = torch.randn(n, d, generator=g).requires_grad_(True)
        weight = (torch.randn(v, d, generator=g) * 0.1).requires_grad_(True)
        return hidden, weight, torch.randint(1, v, (n,), generator=g)

    def call(hidden, weight, targets, k):
        gen = torch.Generator().manual_seed(1)
        fn = spec["fn"]
        if fn == "linear_cross_entropy":
            return linear_cross_entropy(hidden, weight, targets)
        if fn == "materialized_cross_entropy":
            return materialized_cross_entropy(hidden, weight, targets)
        if fn == "torch":
            opts = torch.nn.LinearCrossEntropyOptions()
            return torch.nn.functional.linear_cross_entropy(hidden, weight[1:], targets - 1, options=opts)
        if fn == "sampled":
            negatives = NegativeOptions(k, shared=spec["shared"])
            options = LossOptions(kernel="torch")
            return sampled_cross_entropy(
                hidden, weight, targets, negatives, options=options, generator=gen, fused=spec["fused"]
            )
        if fn == "bce":
            return bce_loss(hidden, weight, targets, NegativeOptions(1), generator=gen)
        if fn == "gbce":
            return gbce_loss(hidden, weight, targets, NegativeOptions(k), generator=gen)
        if fn == "sce":
            return sce_loss(hidden, weight, targets, k, generator=gen)
        raise ValueError(fn)

    # Warm-up on a tiny problem of the same loss: loads code paths, MKL/OpenMP buffers, autograd threads, so
    # that one-off process costs are not charged to the measured call.
    call(*make(64, case["D"], min(case["V"], 2000)), min(case["K"], 15)).backward()

    n, d, v, k = case["N"], case["D"], case["V"], case["K"]
    hidden, weight, targets = make(n, d, v)

    def step() -> tuple[float, float]:
        hidden.grad = None
        weight.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        call(hidden, weight, targets, k).backward()
        return time.perf_counter() - t0, time.process_time() - c0

    clear = Path("/proc/self/clear_refs")
    clear.write_text("5")  # reset VmHWM to the current RSS
    base = _rss_kb("VmRSS")
    times = [step()]
    peak = _rss_kb("VmHWM") - base
    extra = case["repeats"] + (2 if times[0][0] < 2.0 else 0)
    times += [step() for _ in range(extra)]
    best = min(times, key=lambda x: x[0])
    return {"time_s": best[0], "cpu_s": best[1], "peak_extra_mb": peak / 1024, "runs": len(times)}


def _spawn(case: dict, env: dict[str, str] | None = None) -> dict:
    """Run one case in a fresh subprocess (``env``: its environment, default this one's) and return its row."""
    env = dict(os.environ if env is None else env, OMP_NUM_THREADS=str(case["threads"]))
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(case)],
        capture_output=True,
        text=True,
        env=env,
        timeout=case["timeout"],
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"status": f"failed: {tail[0][:200]}"}
    return {"status": "ok", **json.loads(proc.stdout.strip().splitlines()[-1])}


def _grid(quick: bool) -> tuple[list[int], list[int], list[int], list[int]]:
    if quick:
        return [1024], [32], [1_000, 10_000], [31, 127]
    return [8192], [64], [10_000, 100_000, 500_000], [127, 1023]


def main(
    quick: bool = typer.Option(False, "--quick", help="small grid (N=1024, D=32, V<=1e4, K<=127)"),
    losses: str = typer.Option(",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS)),
    vocab: str = typer.Option("", help="override the grid's V values (comma-separated)"),
    negatives: str = typer.Option("", help="override the grid's K values (comma-separated)"),
    threads: int = typer.Option(1, help="torch threads per case"),
    repeats: int = typer.Option(1, help="timed runs after the first (2 more when a run takes < 2 s)"),
    trials: int = typer.Option(1, help="fresh subprocesses per case, interleaved; fastest time, largest peak"),
    max_gb: float = typer.Option(12.0, help="skip cases whose estimated peak exceeds this"),
    torch_max_v: int = typer.Option(
        100_000, help="skip torch_linear_ce above this V (measured 553 s at V=5e5: its auto chunking is poor)"
    ),
    timeout: int = typer.Option(900, help="seconds per case"),
    out: Path = typer.Option(DEFAULT_OUT, help="JSON output (quick runs default to losses_quick.json)"),
    case: str = typer.Option("", hidden=True),
) -> None:
    if case:
        print(json.dumps(_run_case(json.loads(case))))
        return
    import torch

    from seqrec.io import atomic_write_json

    if quick and out == DEFAULT_OUT:
        out = DEFAULT_OUT.with_name("losses_quick.json")
    names = [s.strip() for s in losses.split(",") if s.strip()]
    unknown = [s for s in names if s not in VARIANTS]
    if unknown:
        raise typer.BadParameter(f"unknown losses {unknown}; allowed: {', '.join(VARIANTS)}")
    console = Console()
    ns, ds, vs, ks = _grid(quick)
    vs = [int(float(x)) for x in vocab.split(",")] if vocab else vs
    ks = [int(x) for x in negatives.split(",")] if negatives else ks
    results: list[dict] = []
    for n in ns:
        for d in ds:
            for v in vs:
                for name in names:
                    spec = VARIANTS[name]
                    k_list = [None] if spec.get("exact") else ([spec["fixed_k"]] if "fixed_k" in spec else ks)
                    for k in k_list:
                        row = {"loss": name, "N": n, "D": d, "V": v, "K": k, "status": "pending"}
                        est = _estimate_gb(name, n, d, v, k or 0)
                        if est > max_gb:
                            row["status"] = f"skipped: est. {est:.0f} GB > --max-gb {max_gb:g}"
                        elif name == "torch_linear_ce" and v > torch_max_v:
                            row["status"] = f"skipped: V > --torch-max-v {torch_max_v}"
                        results.append(row)
    for trial in range(trials):
        for row in results:
            if row["status"] not in ("pending", "ok"):
                continue
            c = dict(row, K=row["K"] or 0, threads=threads, repeats=repeats, timeout=timeout)
            try:
                res = _spawn(c)
            except subprocess.TimeoutExpired:
                res = {"status": f"timeout after {timeout} s"}
            if res["status"] != "ok":
                row.update(res)
            elif row["status"] == "pending":
                row.update(res, trials=1)
            else:
                row["trials"] += 1
                row["peak_extra_mb"] = max(row["peak_extra_mb"], res["peak_extra_mb"])
                if res["time_s"] < row["time_s"]:
                    row.update(time_s=res["time_s"], cpu_s=res["cpu_s"])
            console.log(f"trial {trial + 1}/{trials}", row)
    table = Table(title=f"seqrec.losses on CPU ({threads} thread(s)): forward + backward")
    for col in ["loss", "N", "D", "V", "K", "time (s)", "cpu (s)", "peak extra (MB)", "status"]:
        table.add_column(col, justify="left" if col in ("loss", "status") else "right")
    for r in results:
        ok = r["status"] == "ok"
        table.add_row(
            r["loss"],
            str(r["N"]),
            str(r["D"]),
            f"{r['V']:,}",
            "-" if r["K"] is None else str(r["K"]),
            f"{r['time_s']:.3f}" if ok else "",
            f"{r['cpu_s']:.3f}" if ok else "",
            f"{r['peak_extra_mb']:.1f}" if ok else "",
            r["status"],
        )
    console.print(table)
    if 8192 in ns and 64 in ds and 100_000 in vs and 1023 in ks:
        targets = _targets(results, 8192, 64, 100_000, 1023)
    else:
        targets = ["issue targets are defined at N=8192, D=64, V=1e5, K=1023: not in this grid"]
    for line in targets:
        console.print(line)
    atomic_write_json(
        out,
        {
            "command": " ".join(["python", "benchmarks/losses.py", *sys.argv[1:]]),
            "memory_method": "VmHWM - VmRSS around the first full-size call, fresh subprocess (see docstring)",
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "threads": threads,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "results": results,
            "targets": targets,
        },
    )
    console.print(f"wrote {out}")


def _targets(results: list[dict], n: int, d: int, v: int, k: int) -> list[str]:
    """Issue targets at (N, D, V): CCE vs materialised CE, CCE⁻ vs materialised CE⁻ at the largest K."""

    def get(loss: str, kk: int | None) -> dict | None:
        for r in results:
            if (r["loss"], r["N"], r["D"], r["V"], r["K"]) == (loss, n, d, v, kk) and r["status"] == "ok":
                return r
        return None

    lines = []
    for fast, slow, kk, mem_target in [("ce", "ce_materialized", None, 0.10), ("cce_neg", "ce_neg", k, 0.25)]:
        a, b = get(fast, kk), get(slow, kk)
        if a is None or b is None:
            lines.append(f"target {fast} vs {slow} (N={n}, D={d}, V={v}, K={kk}): not measured")
            continue
        mem = a["peak_extra_mb"] / max(b["peak_extra_mb"], 1e-9)
        tim = a["time_s"] / b["time_s"]
        cpu = a["cpu_s"] / b["cpu_s"]
        ok = mem <= mem_target and tim <= 1.0
        lines.append(
            f"target {fast} vs {slow} (N={n}, D={d}, V={v}, K={kk}): memory {mem:.3f}x (<= {mem_target}), "
            f"wall time {tim:.3f}x (<= 1.0), cpu time {cpu:.3f}x -> {'MET' if ok else 'NOT MET'}"
        )
    return lines


if __name__ == "__main__":
    typer.run(main)
