"""Training and the chunked CE with one core kept busy by another process, at the default thread count.

A laptop or a shared server always runs something else. With OpenMP threads that spin at every barrier, one
thread descheduled by another process makes all the others wait for its time slice, at every small op. This
script measures, idle and with one busy core (a pure-Python spin loop started by the script):

* ``train``: ``seqrec train --config C`` for each recipe of ``--configs`` (default ``configs/sasrec-ml-100k.yaml``;
  the whole recipe, default thread count), wall time and test NDCG@10 (which must not change with the load);
* ``ce`` / ``ce_materialized``: one forward + backward of the chunked and the materialised full-catalogue CE at
  N=8192, D=64, V=1e5 (``benchmarks/losses.py --case``), threads = the available cores.

under two OpenMP wait policies: ``passive`` (seqrec's default since this script: threads sleep at a barrier)
and ``spin`` (``GOMP_SPINCOUNT=300000``, libgomp's default when no policy is set, i.e. seqrec before). Stop
other jobs first; the load average before each case is recorded.

    python benchmarks/busy_core.py                      # everything (~20 min on 2 cores)
    python benchmarks/busy_core.py --only ce --policies passive
    python benchmarks/busy_core.py --policies passive --configs configs/sasrec-ml-100k-fast.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from losses import _spawn as spawn_loss_case  # this folder is on sys.path: benchmarks run as scripts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "busy_core.json"
POLICIES = {"passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin": {"GOMP_SPINCOUNT": "300000"}}  # passive: as seqrec sets
CE_CASE = {"N": 8192, "D": 64, "V": 100_000, "K": 0, "repeats": 1, "timeout": 1800}


def child_env(policy: str) -> dict[str, str]:
    """The user's environment without thread settings, plus the policy's (seqrec applies its own defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **POLICIES[policy]}


def run_train(policy: str, config: str, data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "from seqrec.cli import main; main()", "train", "--config",
               str(ROOT / config), "--output", tmp, "--overwrite", "--data-dir", data_dir,
               "--set", "train.progress=false"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=child_env(policy), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"status": "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
        m = json.loads((Path(tmp) / "metrics.json").read_text())
    return {"status": "ok", "wall_s": wall, "epochs": m["epochs_trained"], "epoch_time_avg_s": m["epoch_time_avg_s"],
            "threads": m["environment"]["threads"], "test_NDCG@10": m["test"]["NDCG@10"]}


def run_ce(policy: str, loss: str, threads: int) -> dict:
    row = spawn_loss_case({**CE_CASE, "loss": loss, "threads": threads}, env=child_env(policy))
    if row["status"] == "ok":
        row["wall_s"] = row.pop("time_s")
    return {**row, "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="train,ce", help="comma-separated: train, ce")
    ap.add_argument("--policies", default="passive,spin")
    ap.add_argument("--configs", default="configs/sasrec-ml-100k.yaml", help="comma-separated recipes for 'train'")
    ap.add_argument("--data-dir", default=os.environ.get("SEQREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from seqrec.cores import available_cores

    threads = available_cores()
    parts, policies, configs = args.only.split(","), args.policies.split(","), args.configs.split(",")
    rows: list[dict] = []
    for load in ("idle", "busy"):
        spinner = None
        if load == "busy":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for policy in policies:
                jobs = [("train", c, lambda p=policy, c=c: run_train(p, c, args.data_dir))
                        for c in configs] if "train" in parts else []
                if "ce" in parts:
                    jobs += [(loss, None, lambda p=policy, lo=loss: run_ce(p, lo, threads))
                             for loss in ("ce", "ce_materialized")]
                for what, config, job in jobs:
                    row = {"what": what, "policy": policy, "load": load, "loadavg_before": os.getloadavg()[0]}
                    if config is not None:
                        row["config"] = config
                    row.update(job())
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()

    def wall(what: str, policy: str, load: str, config: str | None = None) -> float | None:
        hit = [r for r in rows if (r["what"], r["policy"], r["load"], r.get("config")) == (what, policy, load, config)
               and r["status"] == "ok"]
        return hit[0]["wall_s"] if hit else None

    summary = {}
    cases = [("train", c, f"train {Path(c).stem}") for c in configs]
    cases += [("ce", None, "ce"), ("ce_materialized", None, "ce_materialized")]
    for policy in policies:
        for what, config, name in cases:
            idle, busy = wall(what, policy, "idle", config), wall(what, policy, "busy", config)
            if idle and busy:
                summary[f"{name}/{policy}: busy / idle"] = busy / idle
        for load in ("idle", "busy"):
            ce, mat = wall("ce", policy, load), wall("ce_materialized", policy, load)
            if ce and mat:
                summary[f"ce/{policy}/{load}: chunked / materialised"] = ce / mat
    for k, v in summary.items():
        print(f"{k:45s} {v:.2f}x")
    result = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "cores_available": threads, "cpu_count": os.cpu_count(), "rows": rows, "ratios": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
