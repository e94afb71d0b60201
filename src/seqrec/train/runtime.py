"""The process a run executes in: device choice, threads, seeding, peak memory and the environment record."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.cores import available_cores
from seqrec.version import __version__


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else as given (validated by the config)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def setup_process(threads: int | None, seed: int, device: str) -> torch.device:
    """Thread count, global seeds and the device of a run (called once, before the model is built).

    ``threads`` None: one per available core (:func:`available_cores`), unless ``OMP_NUM_THREADS`` is set. The
    count never depends on the current load: on CPU some models (xLSTM) give slightly different floats with
    another thread count, and the same seed must give the same metrics. Robustness to a busy core comes from
    the passive OpenMP wait policy set in :mod:`seqrec` instead.
    """
    if threads:
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(available_cores())
    seed_everything(seed)
    return resolve_device(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory allocated (CUDA) or the process's peak RSS (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when tracked files differ), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(commit: bool = False) -> dict[str, Any]:
    """Versions, device and thread count of this process (recorded in metrics.json and benchmark cells)."""
    env = {
        "seqrec": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }
    if commit:
        env["git_commit"] = git_commit()
    return env
