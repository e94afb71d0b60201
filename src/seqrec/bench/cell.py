"""One benchmark cell, run in its own process: ``python -m seqrec.bench.cell CELL_DIR [--data-dir DIR]``.

Reads ``CELL_DIR/request.json`` (``{"config": <resolved config tree>}``), trains with
:meth:`seqrec.Recommender.fit` into ``CELL_DIR/run/`` and finally writes ``CELL_DIR/cell.json`` (environment
and accelerator utilisation) atomically. The parent treats the cell as finished only when this process exits
with status 0 and ``cell.json`` exists; anything else (exception, OOM kill, signal) is a failed cell whose
reason is the last line this process wrote to stderr. On NVIDIA GPUs the utilisation is sampled with NVML
(``pynvml``) every 0.5 s while training; otherwise the mean CPU utilisation of the epochs is reported.
"""

from __future__ import annotations

import argparse
import json
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
    from seqrec.io import atomic_write_json
    from seqrec.train.runtime import environment

    request = json.loads((cell_dir / REQUEST).read_text())
    config = build_config(request["config"])
    t0 = time.perf_counter()
    with GpuSampler() as sampler:
        metrics = Recommender(config).fit(output_dir=cell_dir / RUN, data_dir=data_dir).metrics
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
