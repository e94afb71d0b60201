"""One benchmark cell, run in its own process: ``python -m seqrec.bench.cell CELL_DIR [--data-dir DIR]``.

Reads ``CELL_DIR/request.json`` (``{"config": <resolved config tree>}``), trains with
:meth:`seqrec.Recommender.fit` into ``CELL_DIR/run/`` and finally writes ``CELL_DIR/cell.json`` (environment
and accelerator utilisation) atomically. A ``run/`` left by an interrupted attempt of the same cell (the runner
keeps the folder only then) with an epoch checkpoint and no final metrics is resumed from that checkpoint
(``cell.json`` → ``resumed``: the epoch and the training seconds it held); any other leftover ``run/`` is removed
and the cell trains from scratch, as it does when the checkpoint proves unreadable. The parent treats the cell as
finished only when this process exits with status 0 and ``cell.json`` exists; anything else (exception, OOM kill,
signal) is a failed cell whose reason is the last line this process wrote to stderr. On NVIDIA GPUs the
utilisation is sampled with NVML (``pynvml``) every 0.5 s while training; otherwise the mean CPU utilisation of
the epochs is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

REQUEST = "request.json"
RESULT = "cell.json"
RUN = "run"


class GpuSampler:
    """Mean GPU utilisation (%) from NVML, sampled in a daemon thread; inactive without CUDA or pynvml."""

    def __init__(self, interval_s: float = 0.5):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        self.interval_s = interval_s
        try:
            import torch

            if torch.cuda.is_available():
                import pynvml  # type: ignore[import-not-found]

                pynvml.nvmlInit()
                self._nvml = pynvml
                index = torch.cuda.current_device()
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # noqa: BLE001 - no NVML: fall back to CPU utilisation
            self._handle = None

    def __enter__(self) -> GpuSampler:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            except Exception:  # noqa: BLE001
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def run_cell(cell_dir: Path, data_dir: str | None) -> None:
    from seqrec.api import Recommender
    from seqrec.config import build_config
    from seqrec.errors import CheckpointError
    from seqrec.io import atomic_write_json
    from seqrec.train.resume import checkpoint_progress
    from seqrec.train.runtime import environment

    request = json.loads((cell_dir / REQUEST).read_text())
    config = build_config(request["config"])
    run_dir = cell_dir / RUN
    progress = checkpoint_progress(run_dir) if not (run_dir / "metrics.json").exists() else None
    if progress is None and run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    with GpuSampler() as sampler:
        if progress is not None:
            print(f"resuming from {run_dir / 'last'} after epoch {progress[0]} ({progress[1]:.1f} s of training)",
                  flush=True)
            try:
                metrics = Recommender(config).fit(output_dir=run_dir, data_dir=data_dir, resume=True).metrics
            except CheckpointError as err:  # both checkpoints unreadable: the cell starts over
                print(f"warning: {err}; training from scratch", file=sys.stderr, flush=True)
                shutil.rmtree(run_dir)
                progress = None
        if progress is None:
            metrics = Recommender(config).fit(output_dir=run_dir, data_dir=data_dir).metrics
    assert metrics is not None
    history = [json.loads(line) for line in (cell_dir / RUN / "history.jsonl").read_text().splitlines() if line]
    gpu = sampler.mean()
    if gpu is not None:
        util, source = gpu, "nvml"
    else:
        cpu = [h["cpu_util_pct"] for h in history if h.get("cpu_util_pct") is not None]
        util, source = (sum(cpu) / len(cpu) if cpu else None), "cpu"
    atomic_write_json(cell_dir / RESULT, {
        "environment": {**environment(commit=True), "threads": metrics["environment"].get("threads")},
        "utilisation_pct": util,
        "utilisation_source": source,
        "wall_s": time.perf_counter() - t0,
        "resumed": None if progress is None else {"after_epoch": progress[0], "earlier_train_s": progress[1]},
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqrec.bench.cell", description=__doc__.split("\n")[0])
    parser.add_argument("cell_dir", type=Path)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    from seqrec.errors import SeqrecError

    try:
        run_cell(args.cell_dir, args.data_dir)
    except SeqrecError as err:
        print(f"error: {str(err).replace(chr(10), ' ')}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
