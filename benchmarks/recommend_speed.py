"""Top-10 recommendations for every ML-100K user through the Python API, timed, and checked against the CLI.

    python benchmarks/recommend_speed.py [--run DIR] [--repeats 5] [--threads 2]

``--run`` is a run directory of the ML-100K SASRec recipe; when it does not exist it is trained first
(``configs/sasrec-ml-100k.yaml`` with ``train.epochs=3``: accuracy does not matter here, only the shapes).
Timed, after ``Recommender.load``: ``recommend(users=<all 943>, k=10)`` including the (cached) dataset lookup of
the users' histories; median and max over ``--repeats`` fresh loads. The CLI (``seqrec recommend --users FILE
--format csv``) must print exactly the same (user, rank, item, score) rows. Writes
``benchmarks/results/recommend_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("out/bench-recommend/run"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recommend_speed.json")
    args = ap.parse_args()

    import polars as pl
    import torch

    from seqrec import Recommender

    torch.set_num_threads(args.threads)
    if not (args.run / "metrics.json").is_file():
        from seqrec.config import load_config

        cfg = load_config(ROOT / "configs" / "sasrec-ml-100k.yaml",
                          ["train.epochs=3", "train.progress=false", f"train.threads={args.threads}"])
        Recommender(cfg).fit(output_dir=args.run, overwrite=True)
    from seqrec.data import prepare_data

    users = [str(u) for u in prepare_data(Recommender.load(args.run).config.data).user_ids]  # all (warms the cache)
    times, frame = [], None
    for _ in range(args.repeats):
        rec = Recommender.load(args.run)
        t0 = time.perf_counter()
        frame = rec.recommend(users=users, k=10)
        times.append(time.perf_counter() - t0)
    assert frame is not None and frame.height == 10 * len(users)

    with tempfile.TemporaryDirectory() as tmp:
        ufile = Path(tmp) / "users.txt"
        ufile.write_text("\n".join(users) + "\n")
        cli = subprocess.run([sys.executable, "-m", "seqrec.cli", "recommend", "--checkpoint", str(args.run),
                              "--users", str(ufile), "--k", "10", "--format", "csv"],
                             capture_output=True, text=True, check=True, env={**os.environ})
        (Path(tmp) / "cli.csv").write_text(cli.stdout)
        from_cli = pl.read_csv(Path(tmp) / "cli.csv", schema_overrides={"user": pl.String, "item": pl.String})
    cols = ["user", "rank", "item", "score"]
    same = from_cli.select(cols).with_columns(pl.col("score").cast(pl.Float32)).equals(frame.select(cols))
    result = {
        "users": len(users),
        "k": 10,
        "threads": args.threads,
        "recommend_s_median": statistics.median(times),
        "recommend_s_max": max(times),
        "repeats": args.repeats,
        "cli_output_equal": bool(same),
        "load_average": os.getloadavg(),
        "command": "python benchmarks/recommend_speed.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(result, indent=2))
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
