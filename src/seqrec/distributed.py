"""Distributed data-parallel (DDP) training on ``torch.distributed``: launch, process group, rank helpers.

How a run becomes distributed:

- one machine: ``seqrec train --devices N ...`` re-runs the same command in N worker processes under torch's own
  elastic launcher (``python -m torch.distributed.run --standalone --nproc_per_node N -m seqrec.cli train ...``)
  and exits with its exit code;
- several machines: start the launcher yourself on every node, e.g.
  ``torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m seqrec.cli train ...``,
  or ``srun`` one task per process (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID`` stand in for
  ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; export ``MASTER_ADDR``, and optionally ``MASTER_PORT``, in the job script).

Inside a launch :func:`init` joins the process group: gloo on CPU, nccl on CUDA with device ``cuda:LOCAL_RANK``.
The training side (sharded batches, the DDP wrapper, sharded evaluation) lives in :mod:`seqrec.train.loop` and
:mod:`seqrec.eval.ranking`; :mod:`seqrec.train.run` lets rank 0 alone write. Every rank must read the same
``--data-dir`` and run directory (a shared file system when there are several machines).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from seqrec.cores import available_cores

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launch_env() -> dict[str, str] | None:
    """This process's rendezvous variables (``ENV_KEYS``), or None outside a distributed launch.

    torchrun sets them all. Under SLURM (no ``WORLD_SIZE``) they are derived from ``SLURM_PROCID``,
    ``SLURM_NTASKS`` and ``SLURM_LOCALID``, with ``MASTER_ADDR`` defaulting to 127.0.0.1 (one node only) and
    ``MASTER_PORT`` to one derived from the job id, so two jobs sharing a node do not collide.
    """
    env = os.environ
    if "WORLD_SIZE" in env:
        return {k: env.get(k, "0") for k in ENV_KEYS}
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return {
            "RANK": env["SLURM_PROCID"],
            "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
            "MASTER_ADDR": env.get("MASTER_ADDR", "127.0.0.1"),
            "MASTER_PORT": env.get("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000)),
        }
    return None


def in_launch() -> bool:
    """True inside torchrun/srun: the command should train its shard, not launch workers."""
    return launch_env() is not None


def init(device: torch.device) -> torch.device:
    """Join the default process group if launched and not joined yet; returns this rank's device.

    On CUDA every rank takes ``cuda:LOCAL_RANK`` (nccl); on CPU the device is unchanged (gloo).
    """
    env = launch_env()
    if env is None or dist.is_initialized():
        return device
    os.environ.update(env)  # env:// init reads them (a no-op under torchrun)
    if device.type == "cuda":
        device = torch.device("cuda", int(env["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]), device_id=device)
    else:
        dist.init_process_group("gloo", rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]))
    return device


def cleanup() -> None:
    """Leave the process group (no barrier: after an error the other ranks may never reach one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if world_size() > 1:
        dist.barrier()


def rank() -> int:
    """Rank in the default group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes in the default group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process is the one that writes and prints (global rank 0), also before init and after cleanup."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    env = launch_env()
    return env is None or int(env["RANK"]) == 0


@contextlib.contextmanager
def local_main_first() -> Iterator[None]:
    """Run the body on each node's local rank 0 first, then on the others (e.g. to fill a data cache once)."""
    if world_size() == 1:
        yield
        return
    first = int((launch_env() or {}).get("LOCAL_RANK", "0")) == 0
    if not first:
        dist.barrier()
    yield
    if first:
        dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` without a process group."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def launch(nproc: int, args: list[str]) -> int:
    """Run ``seqrec <args>`` in ``nproc`` local workers under torch's elastic launcher; returns its exit code.

    ``OMP_NUM_THREADS`` defaults to the available cores (affinity, cgroup quota) divided among the workers
    (torchrun would otherwise force 1).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "seqrec.cli", *args]
    return subprocess.run(cmd, env=env, check=False).returncode
