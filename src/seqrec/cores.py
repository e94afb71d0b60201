"""CPUs this process may actually use (affinity mask, cgroup quota): the default thread count, without torch."""

from __future__ import annotations

import math
import os
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")


def own_cgroup(controller: str | None, proc_cgroup: Path = PROC_CGROUP) -> Path:
    """This process's cgroup, relative to the hierarchy's mount: the v2 line (``0::/path``, ``controller`` None)
    or the v1 line listing ``controller`` (``4:cpu,cpuacct:/path``). "." when unknown or escaping the mount."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return Path(".")
    for line in lines:
        hier, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        wanted = (hier == "0" and names == "") if controller is None else controller in names.split(",")
        if wanted:
            rel = Path(path.strip().lstrip("/"))
            return Path(".") if ".." in rel.parts else rel
    return Path(".")


def _levels(mount: Path, rel: Path) -> list[Path]:
    """``mount / rel`` and each of its ancestors up to ``mount``: a quota anywhere on the way limits this process."""
    out = [mount / rel]
    while out[-1] != mount and out[-1] != out[-1].parent:
        out.append(out[-1].parent)
    return out


def _v2_quota(level: Path) -> float | None:
    try:
        quota, period = (level / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(level: Path) -> float | None:
    try:
        quota_us = int((level / "cpu.cfs_quota_us").read_text())
        period_us = int((level / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs granted by a cgroup CPU quota (containers, ``docker --cpus``, systemd slices), or None without one.

    cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"), else v1 ``cpu/cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` (quota -1: none), read at this process's own cgroup (``/proc/self/cgroup``) and at every
    ancestor up to the mount, the smallest quota winning: without a cgroup namespace the limit sits in a nested
    group (``/sys/fs/cgroup/system.slice/job.scope/cpu.max``), with one the process's group is the mount itself.
    Unreadable files mean no quota at that level.
    """
    quotas = [q for level in _levels(root, own_cgroup(None, proc_cgroup)) if (q := _v2_quota(level)) is not None]
    if not quotas:
        v1 = root / "cpu"
        quotas = [q for level in _levels(v1, own_cgroup("cpu", proc_cgroup)) if (q := _v1_quota(level)) is not None]
    return min(quotas) if quotas else None


def available_cores(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = PROC_CGROUP) -> int:
    """CPUs this process may run on: its affinity mask (taskset, cpusets), capped by a cgroup CPU quota.

    ``os.cpu_count()`` (and torch's default) counts the host's CPUs: in a container limited to 2 CPUs on a
    64-core host, 64 OpenMP threads would be throttled at every barrier. A fractional quota rounds down (1.5
    CPUs -> 1 thread), since a second thread would be throttled for the missing half.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)
