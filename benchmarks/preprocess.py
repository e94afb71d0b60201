"""Preprocessing at scale: a seeded ML-20M-sized log through seqrec's data pipeline, stage by stage.

    python benchmarks/preprocess.py [--formats ml-csv,parquet] [--repeats 3] [--seed 0]
    python benchmarks/preprocess.py --users 2000 --items 800 --rows 200000 --repeats 1 --out /tmp/x.json  # quick

The log (numpy, seeded) has ML-20M's size: 138,493 users, 27,278 items, 20,000,263 rows of (userId, movieId,
rating, timestamp). Item popularity is a shifted power law ``p ∝ (rank + 1000) ** -3`` (ranks permuted; the top
item gets ~0.2% of the rows, a third of the items fewer than 5, as in MovieLens' long tail); user lengths are
log-normal (sigma 1.2, at least 1, at most a third of the catalogue), so the 5-core filter drops short users and
rare items over several passes. A user never rates an item twice (as in MovieLens). Timestamps increase along
each user's sequence with a quarter of the gaps zero (ties), and rows are written sorted by (userId, movieId)
like ML-20M's ``ratings.csv``: the pipeline must restore the chronology, ties in file order.

The file goes into a temporary directory that is deleted at the end, in each ``--formats`` layout:

* ``ml-csv``: ``<tmp>/ml-20m/ratings.csv`` read as the named dataset ``ml-20m`` (``read_ml_csv``, integer ids);
* ``parquet``: ``<tmp>/ratings.parquet`` read as ``data.name=file`` (``read_parquet``, ids become strings).

Each repeat runs the pipeline in a fresh child process (so the generator's memory is not counted), calling the
functions ``seqrec.data.prepare.build`` calls, in its order: ``read_source`` (load) → ``preprocess`` (checks,
stable sort, iterative 5-core, dense ids; its own step timings are printed below it) → ``Interactions.offsets``
(CSR) → ``leave_one_out`` and ``global_temporal`` (q=0.9). Per stage: wall seconds and the peak resident memory
during the stage (``VmHWM``, reset before each stage through ``/proc/self/clear_refs``). Medians over
``--repeats``; every repeat and both layouts must give bit-identical arrays (a checksum is compared), and one
more run with the plain ``preprocess_reference`` (skip: ``--no-reference``) must give the same checksum as the
vectorised ``preprocess``. JSON goes to ``benchmarks/results/preprocess.json`` with the environment (cores,
polars thread pool, load average: this machine is shared, so the cpu seconds are the steadier figure). Exit 1
when any checksum differs. RePlay's own figure for its Polars split of ML-20M (1.66 s, the split alone) is
quoted beside ours, not measured here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "preprocess.json"
TARGET_SECONDS = 20.0
TARGET_RSS_MIB = 4096.0
REPLAY_REFERENCE = {
    "what": "RePlay (sb-ai-lab/RePlay) Polars splitter on MovieLens-20M, the split alone",
    "seconds": 1.66,
    "measured_here": False,
}
START, END = 789_652_009, 1_427_784_002  # first and last ML-20M timestamps (1995-01-09, 2015-03-31)
LONG_USER = 300  # users longer than this draw their items exactly without replacement (Gumbel top-k)


# --------------------------------------------------------------------------------------------------
# the synthetic log


def _lengths(rng: np.random.Generator, users: int, items: int, rows: int) -> np.ndarray:
    """(users,) int64 log-normal lengths in [1, items // 3] summing to exactly ``rows``."""
    raw = rng.lognormal(0.0, 1.2, users)
    cap = max(1, items // 3)
    lengths = np.clip(np.floor(raw * rows / raw.sum()), 1, cap).astype(np.int64)
    while (gap := rows - int(lengths.sum())) != 0:  # hand the rounding remainder out (or back) at random
        room = np.flatnonzero(lengths < cap) if gap > 0 else np.flatnonzero(lengths > 1)
        pick = rng.choice(room, size=min(abs(gap), len(room)), replace=False)
        lengths[pick] += 1 if gap > 0 else -1
    return lengths


def _draw_short(rng, logp_cdf: np.ndarray, users: np.ndarray, lengths: np.ndarray, items: int):
    """Users of length <= LONG_USER: draws with replacement, duplicates dropped, three top-up rounds.
    Returns (user, item) in draw order and the users still short (they go to the exact path)."""
    import polars as pl

    got = pl.DataFrame({"user": np.zeros(0, np.int64), "item": np.zeros(0, np.int64)})
    count = np.zeros(len(lengths), dtype=np.int64)
    todo = users
    for _ in range(3):
        n = 2 * (lengths[todo] - count[todo]) + 4
        u = np.repeat(todo, n)
        i = np.minimum(np.searchsorted(logp_cdf, rng.random(len(u))), items - 1)
        got = pl.concat([got, pl.DataFrame({"user": u, "item": i})]).unique(["user", "item"], maintain_order=True)
        wanted = pl.col("user").replace_strict(users, lengths[users], return_dtype=pl.Int64)
        got = got.filter(pl.int_range(pl.len()).over("user") < wanted)
        have = got.group_by("user").len()
        count[have["user"].to_numpy()] = have["len"].to_numpy()
        todo = users[count[users] < lengths[users]]
        if len(todo) == 0:
            break
    done = got.filter(~pl.col("user").is_in(todo))
    return done["user"].to_numpy(), done["item"].to_numpy(), todo


def _draw_long(rng, logp: np.ndarray, users: np.ndarray, lengths: np.ndarray):
    """Exact sampling without replacement ∝ p: the top-L of log p + Gumbel noise, in chunks of similar lengths."""
    users = users[np.argsort(lengths[users], kind="stable")]
    out_u, out_i = [], []
    chunk = max(1, (1 << 24) // len(logp))  # 16M keys a chunk
    for s in range(0, len(users), chunk):
        uc = users[s : s + chunk]
        keys = logp[None, :] + rng.gumbel(size=(len(uc), len(logp)))  # (chunk, items)
        top = int(lengths[uc].max())
        part = np.argpartition(-keys, top - 1, axis=1)[:, :top]
        order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(part, order, axis=1)  # draw order: successive sampling
        keep = np.arange(top)[None, :] < lengths[uc][:, None]
        out_u.append(np.broadcast_to(uc[:, None], ranked.shape)[keep])
        out_i.append(ranked[keep])
    if not out_u:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_u), np.concatenate(out_i)


def synthetic_log(users: int, items: int, rows: int, seed: int):
    """The log as a polars frame (userId, movieId, rating, timestamp) sorted by (userId, movieId)."""
    import polars as pl

    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, users, items, rows)
    p = (np.arange(1, items + 1) + 1000.0) ** -3.0
    p = rng.permutation(p / p.sum())  # popularity independent of the id
    logp = np.log(p)
    cdf = np.cumsum(p)
    short = np.flatnonzero(lengths <= LONG_USER)
    su, si, left = _draw_short(rng, cdf, short, lengths, items)
    long_users = np.concatenate([np.flatnonzero(lengths > LONG_USER), left])
    lu, li = _draw_long(rng, logp, long_users, lengths)
    df = pl.DataFrame({"u": np.concatenate([su, lu]), "i": np.concatenate([si, li])})
    df = df.sort("u", maintain_order=True)  # per user: draw order = chronological order
    assert df.height == rows, (df.height, rows)

    # timestamps: a start per user, then gaps: 25% zero (ties), 65% minutes, 10% about a month
    n = df.height
    kind = rng.random(n)
    gaps = np.where(kind < 0.25, 0.0, np.where(kind < 0.9, rng.exponential(120.0, n), rng.exponential(2.6e6, n)))
    first = np.zeros(n, dtype=bool)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    first[offsets[:-1]] = True
    gaps[first] = 0.0
    within = np.cumsum(gaps)
    within -= np.repeat(within[offsets[:-1]], lengths)
    span = np.repeat(within[offsets[1:] - 1], lengths)
    start = np.repeat(rng.random(users), lengths) * np.maximum(END - START - span, 0.0)
    ts = (START + start + within).astype(np.int64)
    # MovieLens ids are sparse (1..131262 for ML-20M): a sorted random subset keeps the numeric order meaningful
    movie_ids = np.sort(rng.choice(np.arange(1, max(131_262, items) + 1), size=items, replace=False))
    out = pl.DataFrame({
        "userId": df["u"].to_numpy() + 1,
        "movieId": movie_ids[df["i"].to_numpy()],
        "rating": rng.integers(1, 11, n) / 2.0,
        "timestamp": ts,
    })  # fmt: skip
    return out.sort(["userId", "movieId"])


def log_stats(df) -> dict:
    import polars as pl

    per_user = df.group_by("userId").len()["len"]
    per_item = df.group_by("movieId").len()["len"]
    ties = df.select(pl.struct("userId", "timestamp").is_duplicated().sum()).item()
    return {
        "rows": df.height,
        "users": df["userId"].n_unique(),
        "items": df["movieId"].n_unique(),
        "user_length": {"min": int(per_user.min()), "median": float(per_user.median()), "max": int(per_user.max())},
        "item_count": {"min": int(per_item.min()), "median": float(per_item.median()), "max": int(per_item.max()),
                       "items_below_5": int((per_item < 5).sum())},
        "rows_in_timestamp_ties": int(ties),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# one repeat, in a child process


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS
        return True
    except OSError:
        return False


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def worker(fmt: str, tmp: Path, reference: bool = False) -> dict:
    """Run the pipeline once on the file of layout ``fmt`` under ``tmp``; stage timings as a dict.
    ``reference``: the plain ``preprocess_reference`` instead of ``preprocess`` (same output expected)."""
    from seqrec.config import DataConfig
    from seqrec.data.prepare import read_source, resolve_source, resolved_kcore
    from seqrec.data.preprocess import preprocess, preprocess_reference
    from seqrec.data.split import global_temporal, leave_one_out

    if fmt == "ml-csv":
        cfg = DataConfig(name="ml-20m", download=False, cache=False)
    else:
        cfg = DataConfig(name="file", path=str(tmp / "ratings.parquet"), user_col="userId", item_col="movieId",
                         time_col="timestamp", cache=False)  # fmt: skip
    stages: list[dict] = []
    resettable = _reset_hwm()

    def stage(name: str, fn):
        _reset_hwm()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        stages.append({"stage": name, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                       "peak_rss_mib": _vm_hwm_mib()})  # fmt: skip
        return out

    src = resolve_source(cfg, tmp)
    frames = [stage("load", lambda: read_source(cfg, src))[0]]  # a list, so the raw frame is freed once used
    min_user, min_item = resolved_kcore(cfg, src)
    run_preprocess = preprocess_reference if reference else preprocess
    inter, _ = stage("preprocess", lambda: run_preprocess(
        frames.pop(), rating_threshold=cfg.rating_threshold, duplicates=cfg.duplicates,
        min_user_interactions=min_user, min_item_interactions=min_item, source=src.description))  # fmt: skip
    offsets = stage("csr", inter.offsets)
    loo = stage("leave_one_out", lambda: leave_one_out(offsets, inter.items))
    gt = stage("global_temporal", lambda: global_temporal(offsets, inter.items, inter.times, 0.9, 0.05, 42))
    return {
        "format": fmt,
        "reader": src.description,
        "stages": stages,
        "preprocess_steps": inter.stats.get("step_seconds", {}),
        "hwm_reset": resettable,
        "process_peak_rss_mib": _vm_hwm_mib() if not resettable else max(s["peak_rss_mib"] for s in stages),
        "kcore": inter.stats["kcore"],
        "users": inter.num_users,
        "items": inter.num_items,
        "interactions": len(inter.items),
        "valid_users": len(loo.valid),
        "test_users": len(loo.test),
        "temporal_test_users": len(gt.test),
        "checksum": _digest(
            inter.users, inter.items, inter.times, offsets, loo.train.values, loo.test.inputs.offsets,
            loo.test.targets, gt.train.values, gt.test.inputs.values, gt.valid.users,
        ),  # fmt: skip
    }


# --------------------------------------------------------------------------------------------------
# driver


def environment(load_start: tuple[float, float, float]) -> dict:
    import polars as pl

    return {
        "note": "shared 2-core machine: a 1-thread training job held one core throughout, other jobs came and went "
                "(load average); wall seconds stretch with the load, cpu seconds much less",
        "cores": os.cpu_count(),
        "polars_threads": pl.thread_pool_size(),
        "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS"),
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "polars": pl.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _median_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for k, first in enumerate(runs[0]["stages"]):
        secs = [r["stages"][k]["seconds"] for r in runs]
        cpu = [r["stages"][k]["cpu_seconds"] for r in runs]
        rss = [r["stages"][k]["peak_rss_mib"] for r in runs]
        rows.append({"stage": first["stage"], "seconds": statistics.median(secs), "seconds_max": max(secs),
                     "cpu_seconds": statistics.median(cpu), "peak_rss_mib": statistics.median(rss)})  # fmt: skip
    for step in runs[0]["preprocess_steps"]:
        secs = [r["preprocess_steps"][step] for r in runs]
        rows.append({"stage": f"  preprocess: {step}", "seconds": statistics.median(secs), "seconds_max": max(secs),
                     "cpu_seconds": None, "peak_rss_mib": None})  # fmt: skip
    return rows


def _print_table(fmt: str, rows: list[dict], total: float, cpu: float, peak: float) -> None:
    print(f"\n{fmt}: {'stage':<30} {'wall s':>7} {'max':>7} {'cpu s':>7} {'peak RSS MiB':>13}   (medians)")
    for r in rows:
        rss = f"{r['peak_rss_mib']:13.0f}" if r["peak_rss_mib"] is not None else f"{'-':>13}"
        cpu_s = f"{r['cpu_seconds']:7.2f}" if r["cpu_seconds"] is not None else f"{'-':>7}"
        print(f"  {r['stage']:<36} {r['seconds']:7.2f} {r['seconds_max']:7.2f} {cpu_s} {rss}")
    ok = "meets" if total <= TARGET_SECONDS and peak <= TARGET_RSS_MIB else "MISSES"
    print(f"  {'total (load..split)':<36} {total:7.2f} {'':7} {cpu:7.2f} {peak:13.0f}   {ok} the target "
          f"(<= {TARGET_SECONDS:.0f} s wall, <= {TARGET_RSS_MIB:.0f} MiB)")  # fmt: skip


def _child(fmt: str, tmp: Path, reference: bool = False) -> dict:
    """One pipeline run in a fresh process (its memory alone is measured)."""
    t1 = time.perf_counter()
    cmd = [sys.executable, __file__, "--worker", fmt, str(tmp)] + (["--worker-reference"] if reference else [])
    child = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if child.returncode != 0:
        sys.stderr.write(child.stderr)
        raise SystemExit(f"the {fmt} pipeline run failed (exit {child.returncode})")
    run = json.loads(child.stdout.strip().splitlines()[-1])
    run["process_seconds"] = time.perf_counter() - t1
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--items", type=int, default=27_278)
    ap.add_argument("--rows", type=int, default=20_000_263)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formats", default="ml-csv,parquet", help="comma list of ml-csv, parquet")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the one run of the plain preprocess_reference (must give the same checksum)")
    ap.add_argument("--worker", nargs=2, metavar=("FORMAT", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args.worker_reference)))
        return 0
    load_start = os.getloadavg()
    formats = [f for f in args.formats.split(",") if f]
    for f in formats:
        if f not in ("ml-csv", "parquet"):
            ap.error(f"--formats: unknown layout {f!r} (expected ml-csv, parquet)")

    result: dict = {"command": "python benchmarks/preprocess.py " + " ".join(sys.argv[1:]),
                    "replay_reference": REPLAY_REFERENCE,
                    "target": {"seconds": TARGET_SECONDS, "peak_rss_mib": TARGET_RSS_MIB}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="seqrec-prep-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        log = synthetic_log(args.users, args.items, args.rows, args.seed)
        gen_s = time.perf_counter() - t0
        result["log"] = {"seed": args.seed, "generate_seconds": round(gen_s, 2), **log_stats(log)}
        files = {}
        if "ml-csv" in formats:
            (tmp / "ml-20m").mkdir()
            files["ml-csv"] = tmp / "ml-20m" / "ratings.csv"
            log.write_csv(files["ml-csv"])
        if "parquet" in formats:
            files["parquet"] = tmp / "ratings.parquet"
            log.write_parquet(files["parquet"])
        del log
        result["files"] = {f: {"name": p.name, "bytes": p.stat().st_size} for f, p in files.items()}
        print(f"log: {result['log']} (generated in {gen_s:.1f} s)", flush=True)
        result["runs"] = {}
        for fmt in formats:
            runs = [_child(fmt, tmp) for _ in range(args.repeats)]
            rows = _median_rows(runs)
            total = statistics.median(sum(s["seconds"] for s in r["stages"]) for r in runs)
            cpu = statistics.median(sum(s["cpu_seconds"] for s in r["stages"]) for r in runs)
            peak = statistics.median(r["process_peak_rss_mib"] for r in runs)
            _print_table(fmt, rows, total, cpu, peak)
            summary = {k: runs[0][k] for k in ("reader", "kcore", "users", "items", "interactions", "valid_users",
                                               "test_users", "temporal_test_users", "checksum", "hwm_reset")}
            result["runs"][fmt] = {
                **summary, "stages": rows, "total_seconds_median": total, "total_cpu_seconds_median": cpu,
                "peak_rss_mib_median": peak,
                "process_seconds_median": statistics.median(r["process_seconds"] for r in runs),
                "meets_target": total <= TARGET_SECONDS and peak <= TARGET_RSS_MIB,
                "per_repeat_total_seconds": [sum(s["seconds"] for s in r["stages"]) for r in runs],
                "same_checksum_every_repeat": len({r["checksum"] for r in runs}) == 1,
            }  # fmt: skip
        if not args.no_reference:
            ref = _child(formats[0], tmp, reference=True)
            fast = result["runs"][formats[0]]
            result["reference_preprocess"] = {
                "format": formats[0], "repeats": 1, "preprocess_seconds": ref["stages"][1]["seconds"],
                "preprocess_cpu_seconds": ref["stages"][1]["cpu_seconds"],
                "fast_preprocess_seconds_median": fast["stages"][1]["seconds"],
                "same_checksum_as_fast": ref["checksum"] == fast["checksum"],
            }  # fmt: skip
            print(f"\npreprocess_reference (plain polars) on {formats[0]}: {ref['stages'][1]['seconds']:.2f} s wall, "
                  f"{ref['stages'][1]['cpu_seconds']:.2f} s cpu; same output: "
                  f"{result['reference_preprocess']['same_checksum_as_fast']}")  # fmt: skip
    checksums = {r["checksum"] for r in result["runs"].values()}
    result["same_output_all_formats"] = len(checksums) == 1
    result["environment"] = environment(load_start)
    result["environment"]["repeats"] = args.repeats
    print(f"\nRePlay reference (their figure, not measured here): Polars split of ML-20M {REPLAY_REFERENCE['seconds']}"
          " s for the split alone")  # fmt: skip
    print(f"environment: {json.dumps(result['environment'])}")
    ok = result["same_output_all_formats"] and all(r["same_checksum_every_repeat"] for r in result["runs"].values())
    ok = ok and result.get("reference_preprocess", {}).get("same_checksum_as_fast", True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
