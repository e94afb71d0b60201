"""Thread defaults: cores from affinity and cgroup quotas, the passive OpenMP wait policy, no load dependence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqrec.cores import available_cores, cgroup_cpu_quota
from seqrec.train.runtime import environment, setup_process

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "400000 100000\n"}, 4.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota_v1_and_v2(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    for rel, text in files.items():
        _write(tmp_path, rel, text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_quota_of_a_nested_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    """Without a cgroup namespace the limit sits below the mount, on this process's path or an ancestor of it."""
    proc = tmp_path / "proc_cgroup"
    proc.write_text("12:cpu,cpuacct:/ci/job\n0::/system.slice/job.scope\n")
    root = tmp_path / "cg"
    _write(root, "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, proc) is None
    _write(root, "system.slice/job.scope/cpu.max", "300000 100000\n")
    assert cgroup_cpu_quota(root, proc) == 3.0  # the process's own group
    _write(root, "system.slice/cpu.max", "150000 100000\n")
    assert cgroup_cpu_quota(root, proc) == 1.5  # a tighter ancestor wins
    assert available_cores(root, proc) == 1
    _write(root, "other.slice/cpu.max", "50000 100000\n")  # another group's limit is not this process's
    assert cgroup_cpu_quota(root, proc) == 1.5
    v1 = tmp_path / "v1"  # cgroup v1: the 'cpu' controller's line, same walk
    _write(v1, "cpu/ci/job/cpu.cfs_quota_us", "200000\n")
    _write(v1, "cpu/ci/job/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(v1, proc) == 2.0
    proc.write_text("0::/../../escape\n")  # a path leaving the mount is ignored: the mount's own files count
    assert cgroup_cpu_quota(root, proc) is None


def test_available_cores_is_capped_by_the_quota_rounding_down(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cores(tmp_path) == affinity  # no quota files: the affinity mask
    _write(tmp_path, "cpu.max", "50000 100000\n")  # half a CPU still gets one thread
    assert available_cores(tmp_path) == 1
    _write(tmp_path, "cpu.max", f"{(affinity + 8) * 100000} 100000\n")  # a quota above the mask changes nothing
    assert available_cores(tmp_path) == affinity
    _write(tmp_path, "cpu.max", "150000 100000\n")
    assert available_cores(tmp_path) == 1


def test_default_threads_follow_available_cores_and_explicit_settings_win(monkeypatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr("seqrec.train.runtime.available_cores", lambda root=None: 1)
        setup_process(None, seed=0, device="cpu")
        assert torch.get_num_threads() == 1
        setup_process(2, seed=0, device="cpu")  # train.threads wins
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's environment wins over the default
        monkeypatch.setattr("seqrec.train.runtime.available_cores", lambda root=None: 7)
        setup_process(None, seed=0, device="cpu")
        assert torch.get_num_threads() == 1
        env = environment()
        assert env["cores_available"] == 7 and env["threads"] == 1
    finally:
        torch.set_num_threads(before)


def _import_seqrec(env: dict[str, str], first: str = "") -> str:
    code = f"{first}import os, seqrec, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "PYTHONPATH": SRC, **env}, capture_output=True, text=True,
        check=True, timeout=120,
    )
    return out.stdout.strip()


def test_importing_seqrec_sets_a_passive_openmp_wait_policy_unless_the_user_chose() -> None:
    assert _import_seqrec({}) == "PASSIVE"
    assert _import_seqrec({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert _import_seqrec({"GOMP_SPINCOUNT": "300000"}) == "None"  # an explicit spin count is a choice too
    assert _import_seqrec({}, first="import torch; ") == "None"  # too late once torch (libgomp) is loaded
