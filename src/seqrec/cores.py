"""CPUs this process may actually use (affinity mask, cgroup quota): the default thread count, without torch."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup CPU quota (containers, ``docker --cpus``), or None when there is no quota.

    cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") at the root of this process's namespace, else v1
    ``cpu/cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: none). Unreadable files mean no quota.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores(root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask (taskset, cpusets), capped by a cgroup CPU quota.

    ``os.cpu_count()`` (and torch's default) counts the host's CPUs: in a container limited to 2 CPUs on a
    64-core host, 64 OpenMP threads would be throttled at every barrier. A fractional quota rounds down (1.5
    CPUs -> 1 thread), since a second thread would be throttled for the missing half.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)
