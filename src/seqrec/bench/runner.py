"""``seqrec bench``: run every cell of a grid in its own process and record it in the results store.

Life of a cell (see :mod:`seqrec.bench.store` for the tables):

1. ``pending`` (new) -> data check: a named dataset that is not on disk (downloads are off unless
   ``download=True``) marks the cell ``skipped`` with the one-line reason, before any training.
2. ``running``: ``DIR/cells/<id>/`` is wiped, ``request.json`` written, and ``python -m seqrec.bench.cell``
   started (it dies with the runner: ``PR_SET_PDEATHSIG``), with stdout/stderr in ``stdout.log``/``stderr.log``.
3. When the process has exited, the parent reads ``run/metrics.json``, ``run/history.jsonl`` and ``cell.json``
   and inserts them with ``status = 'done'`` in one transaction; a non-zero exit or a signal (an OOM kill is
   SIGKILL) marks it ``failed`` with the reason.

Re-running skips ``done`` cells (and ``failed`` ones unless ``retry_failed``). A cell found ``running`` (or
``pending`` with reason ``interrupted``) was interrupted (Ctrl-C, ``kill -9``, power loss, the end of a sitting):
when its folder still holds this cell's request and an epoch checkpoint (``run/last/``), it continues from there
(``seqrec.bench.cell`` resumes exactly, random streams included, so the result equals an uninterrupted run), and
its recorded wall time adds the training seconds the checkpoint already held; otherwise it runs again from
scratch. A lock file keeps two runners off one directory.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from seqrec.bench.cell import REQUEST, RESULT, RUN
from seqrec.bench.grid import Cell, expand, load_grid, sample_cells
from seqrec.bench.store import ResultStore
from seqrec.config import Config, config_to_dict
from seqrec.cores import available_cores
from seqrec.errors import DataError
from seqrec.io import writable_location

CELLS = "cells"
LOCK = ".bench.lock"

# metrics.json key -> stored metric name (the per-cell columns of the benchmark table, plus extras)
SCALARS: dict[str, str] = {
    "epoch_time_max_s": "epoch_time_max_s",
    "epoch_time_avg_s": "epoch_time_avg_s",
    "epoch_time_sum_s": "epoch_time_sum_s",
    "peak_memory_mb": "peak_memory_mb",
    "loss_memory_mb": "loss_memory_mb",
    "grad_norm_max": "grad_norm_max",
    "lr": "lr",
    "train_loss": "train_loss",
    "params": "params",
    "epochs_trained": "epochs_trained",
    "best_epoch": "best_epoch",
    "throughput_seq_s": "throughput_seq_s",
    "train_time_s": "train_time_s",
    "eval_time_s": "eval_time_s",
    "total_time_s": "total_time_s",
}


@dataclass
class BenchSummary:
    """What a ``run_bench`` call did, by cell id."""

    output: Path
    ran: list[str] = field(default_factory=list)  # cells trained in this call (done or failed)
    cached: list[str] = field(default_factory=list)  # done (or failed) in an earlier call, not re-run
    skipped: list[str] = field(default_factory=list)  # dataset not available
    failed: list[str] = field(default_factory=list)  # crashed in this call
    total: int = 0


def cell_metrics(metrics: dict[str, Any], cell: dict[str, Any]) -> dict[str, tuple[float | None, ...]]:
    """Flatten a run's ``metrics.json`` and the cell's ``cell.json`` into ``name -> (value, ci_low, ci_high)``."""
    out: dict[str, tuple[float | None, ...]] = {}
    for key, name in SCALARS.items():
        if metrics.get(key) is not None:
            out[name] = (float(metrics[key]),)
    ci = metrics.get("test_ci95") or {}
    for name, value in (metrics.get("test") or {}).items():
        lo_hi = ci.get(name)
        out[name] = (float(value), *(float(x) for x in lo_hi)) if lo_hi else (float(value),)
    for name, value in (metrics.get("valid") or {}).items():
        out[f"valid/{name}"] = (float(value),)
    for baseline, entry in (metrics.get("baselines") or {}).items():  # "<baseline>/<metric>" (bench.pivot)
        ci = entry.get("test_ci95") or {}
        for name, value in (entry.get("test") or {}).items():
            lo_hi = ci.get(name)
            out[f"{baseline}/{name}"] = (float(value), *(float(x) for x in lo_hi)) if lo_hi else (float(value),)
    for side, value in (metrics.get("kcore") or {}).items():  # resolved k-core: the report's protocol line
        out[f"kcore_{side}"] = (float(value),)
    if cell.get("utilisation_pct") is not None:
        out["utilisation_pct"] = (float(cell["utilisation_pct"]),)
    return out


def dataset_unavailable(config: Config, data_dir: str | os.PathLike | None, download: bool) -> str | None:
    """The one-line reason a cell's dataset cannot be used offline, or None when it is on disk (cheap check)."""
    from seqrec.data.prepare import resolve_data_dir, resolve_source

    data = config.data.model_copy(update={"download": bool(download and config.data.download)})
    try:
        resolve_source(data, resolve_data_dir(data_dir))
    except DataError as err:
        return str(err).replace("\n", " ")
    return None


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the cell when the runner dies, so a killed runner never leaves a cell training."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the runner died before prctl took effect
        os._exit(1)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


def _failure_reason(code: int, cell_dir: Path) -> str:
    last = _last_line(cell_dir / "stderr.log")
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}" + (f": {last}" if last else "")
    return last or f"exit status {code}"


def _lock(output: Path) -> IO[str]:
    handle = open(output / LOCK, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataError(f"{output}: another `seqrec bench` is running on this directory") from None
    return handle


def _same_request(cell: Cell, cell_dir: Path) -> bool:
    """Whether ``cell_dir`` was written for this very cell (its id is the hash of the resolved config)."""
    try:
        return json.loads((cell_dir / REQUEST).read_text()).get("id") == cell.id
    except (OSError, ValueError, AttributeError):
        return False


def start_cell_process(
    cell: Cell, cell_dir: Path, data_dir: str | os.PathLike | None, threads: int | None = None,
    keep: bool = False,
) -> subprocess.Popen:
    """Write the request and start the cell's process (it dies with the runner).

    ``keep``: an interrupted cell whose folder holds its own request keeps the folder (and appends to its logs),
    so the cell process can resume from the checkpoint there; otherwise ``cell_dir`` is wiped first.
    ``threads``: torch/OpenMP threads of the cell when the runner runs several cells at once (environment only,
    so the cell's config, and with it its id, does not change).
    """
    keep = keep and _same_request(cell, cell_dir)
    if cell_dir.exists() and not keep:
        shutil.rmtree(cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    from seqrec.io import atomic_write_json

    atomic_write_json(cell_dir / REQUEST, {"id": cell.id, "labels": cell.labels,
                                           "config": config_to_dict(cell.config)})
    (cell_dir / RESULT).unlink(missing_ok=True)  # only this attempt's process may say the cell finished
    cmd = [sys.executable, "-m", "seqrec.bench.cell", str(cell_dir)]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    env = None
    if threads is not None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    mode = "ab" if keep else "wb"
    with open(cell_dir / "stdout.log", mode) as so, open(cell_dir / "stderr.log", mode) as se:
        return subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=functools.partial(_die_with_parent, os.getpid()))


def _record_finished(
    store: ResultStore, summary: BenchSummary, cell: Cell, cell_dir: Path, code: int, wall: float, tag: str,
    console: Console,
) -> None:
    """Read a finished cell's outputs into the store (``done``) or record why it failed."""
    summary.ran.append(cell.id)
    if code == 0 and (cell_dir / RESULT).is_file():
        try:
            metrics = json.loads((cell_dir / RUN / "metrics.json").read_text())
            result = json.loads((cell_dir / RESULT).read_text())
            history = [json.loads(line) for line in
                       (cell_dir / RUN / "history.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as err:
            why = f"unreadable cell output: {err}"
        else:
            env = {**result.get("environment", {}), "utilisation_source": result.get("utilisation_source")}
            resumed = result.get("resumed")
            if resumed:  # continued from an earlier sitting's checkpoint: its training time counts too
                env["resumed"] = resumed
                wall += float(resumed.get("earlier_train_s", 0.0))
            store.record_done(cell.id, history, cell_metrics(metrics, result), env, wall)
            ndcg = metrics.get("test", {}).get("NDCG@10", float("nan"))
            console.print(f"{tag}: [green]done[/] in {wall:.1f} s, test NDCG@10 {ndcg:.4f}", highlight=False)
            return
    else:
        why = _failure_reason(code, cell_dir)
    store.set_status(cell.id, "failed", why, wall_s=wall)
    summary.failed.append(cell.id)
    console.print(f"{tag}: [red]failed[/] ({why})", highlight=False)


Active = dict[str, tuple[subprocess.Popen, Cell, Path, float, str]]  # cell id -> its running process and where


def _reap(active: Active, store: ResultStore, summary: BenchSummary, console: Console, block: bool) -> None:
    """Record every finished cell; with ``block``, wait until at least one has finished."""
    while True:
        for cid, (proc, cell, cell_dir, t0, tag) in list(active.items()):
            code = proc.poll()
            if code is not None:
                del active[cid]
                _record_finished(store, summary, cell, cell_dir, code, time.perf_counter() - t0, tag, console)
                block = False
        if not block or not active:
            return
        time.sleep(0.2)


def _checked_output(output: str | Path) -> Path:
    """The results directory, refused (one line) if it is a file or cannot be written, before any work."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: output path exists and is not a directory")
    problem = writable_location(output)
    if problem is not None:
        raise DataError(f"{output}: cannot write the results directory ({problem})")
    return output


def run_bench(
    grid_path: str | Path,
    output: str | Path,
    *,
    data_dir: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    retry_failed: bool = False,
    download: bool = False,
    jobs: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    console: Console | None = None,
) -> BenchSummary:
    """Run (or resume) the grid in ``grid_path`` into ``output``; see the module docstring.

    ``jobs``: cells trained at the same time (None: the grid file's ``jobs``, else 1), each with
    ``available cores // jobs`` threads unless its config sets ``train.threads`` (epoch times then include the
    neighbours' load; the store's meta records ``jobs``). ``sample``: train only a seeded random subset of that
    many cells (``grid.sample_cells``; the store's meta records it).
    """
    console = console or Console(quiet=True)
    output = _checked_output(output)
    grid = load_grid(grid_path)
    jobs = jobs if jobs is not None else (grid.jobs or 1)
    if jobs < 1:
        raise DataError(f"--jobs: expected a positive number of parallel cells, got {jobs}")
    cells = expand(grid, overrides)  # every cell's config validated before anything is written
    grid_size = len(cells)
    if sample is not None:
        cells = sample_cells(cells, sample, sample_seed)
    output.mkdir(parents=True, exist_ok=True)
    lock = _lock(output)
    store = ResultStore.open(output)
    summary = BenchSummary(output=output, total=len(cells))
    threads = max(1, available_cores() // jobs) if jobs > 1 else None
    active: Active = {}

    def reap(block: bool) -> None:
        _reap(active, store, summary, console, block)

    try:
        store.set_meta("grid", grid.spec())
        store.set_meta("overrides", overrides or [])
        store.set_meta("cell_ids", [c.id for c in cells])
        store.set_meta("jobs", jobs)
        store.set_meta("sample", None if sample is None else {"cells": len(cells), "of": grid_size,
                                                              "seed": sample_seed})
        for cell in cells:
            status = store.ensure_cell(cell.id, cell.ordinal, cell.labels, config_to_dict(cell.config))
            tag = f"[{cell.ordinal + 1}/{len(cells)}] {cell.describe()}"
            if status == "done" or (status == "failed" and not retry_failed):
                summary.cached.append(cell.id)
                console.print(f"{tag}: {status} earlier, not re-run")
                continue
            reason = dataset_unavailable(cell.config, data_dir, download)
            if reason is not None:
                store.set_status(cell.id, "skipped", reason)
                summary.skipped.append(cell.id)
                console.print(f"{tag}: [yellow]skipped[/] ({reason})", highlight=False)
                continue
            interrupted = status == "running" or (status == "pending" and store.reason(cell.id) == "interrupted")
            if interrupted:
                console.print(f"{tag}: interrupted earlier, running again (from its last epoch checkpoint when "
                              "it has one)")
            while len(active) >= jobs:
                reap(block=True)
            cell_dir = output / CELLS / cell.id
            store.set_status(cell.id, "running")
            console.print(f"{tag}: running", highlight=False)
            cell_threads = threads if cell.config.train.threads is None else None
            active[cell.id] = (start_cell_process(cell, cell_dir, data_dir, cell_threads, keep=interrupted), cell,
                               cell_dir, time.perf_counter(), tag)
        while active:
            reap(block=True)
    except BaseException:  # Ctrl-C (or any error): stop the running cells, leave them to be re-run
        for cid, (proc, *_rest) in active.items():
            proc.kill()
            proc.wait()
            store.set_status(cid, "pending", "interrupted")
        raise
    finally:
        store.close()
        lock.close()
    return summary


__all__ = ["BenchSummary", "cell_metrics", "dataset_unavailable", "run_bench", "start_cell_process"]
