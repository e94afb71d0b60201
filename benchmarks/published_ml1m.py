"""Published ML-1M numbers re-run on the same file and protocol: one row per method, one entry per seed.

    SEQREC_DATA_DIR=../shared/data seqrec train --config configs/sasrec-ml-1m.yaml \
        --set train.seed=44 --set train.threads=1 --output out/sasrec-ml1m-s44
    python benchmarks/published_ml1m.py --add sasrec-ce=out/sasrec-ml1m-s44 [--add ROW=RUN_DIR ...]

Each ``--add`` reads the run directory's ``metrics.json`` and ``config.yaml`` (seed, recipe) and records the run
under its row in ``benchmarks/results/published_ml1m.json``, replacing an earlier entry of the same row and seed,
so the three seeds of a row can come from different sittings (a run directory holds weights and is never
committed; its numbers are). Every run must have the protocol of the published figures: ``ml-1m.txt``,
leave-one-out, full-catalogue ranking, seen items filtered. Prints the Markdown table of the README: per row the
mean test NDCG@10 and HR@10 over seeds with their spread, each seed's NDCG@10 with its 95% bootstrap interval, the
mean validation NDCG@10 (what recipes are compared on), wall time per run, and the published figure beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from seqrec.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "published_ml1m.json"

SASREC_PLUS = {"NDCG@10": 0.1821, "HR@10": 0.3152, "source": "SASRec+ (Klenitskiy & Vasilev, RecSys 2023)"}
# row -> (what it is, the recipe's command, the published test NDCG@10 / HR@10 on ml-1m.txt and where from)
ROWS: dict[str, dict[str, Any]] = {
    "sasrec-ce": {
        "what": "SASRec, full cross-entropy, max_len 200",
        "recipe": "configs/sasrec-ml-1m.yaml",
        "published": SASREC_PLUS,
    },
    "sasrec-ce-long": {
        "what": "SASRec, full cross-entropy, max_len 200, patience 20",
        "recipe": "configs/sasrec-ml-1m-long.yaml",
        "published": SASREC_PLUS,
    },
    "sasrec-ce-fast": {
        "what": "SASRec, full cross-entropy, max_len 200, annealed 20-epoch schedule",
        "recipe": "configs/sasrec-ml-1m-fast.yaml",
        "published": SASREC_PLUS,
    },
    "gsasrec": {
        "what": "gSASRec (256 negatives, t 0.75), max_len 200",
        "recipe": "configs/gsasrec-ml-1m.yaml",
        "published": {"NDCG@10": 0.1726, "source": "gSASRec (Petrov & Macdonald, RecSys 2023)"},
    },
    "bert4rec": {
        "what": "BERT4Rec, trained long enough",
        "recipe": "configs/bert4rec-ml-1m.yaml",
        "published": {"NDCG@10": 0.1537, "source": "Petrov & Macdonald, RecSys 2022 replicability study"},
    },
    "sasrec-bce": {
        "what": "SASRec, one-negative BCE (the original SASRec loss)",
        "recipe": "configs/sasrec-ml-1m-bce.yaml",
        "published": {"NDCG@10": 0.13, "source": "approximate, SASRec+ and gSASRec papers' BCE rows"},
    },
}
PROTOCOL = {"split": "leave_one_out", "ranking": "full", "filter_seen": True}
TEST_USERS = 6040
# what makes a run one of a row's: its recipe's values of these keys (the seed, threads and budget may differ;
# batch size, schedule, patience and grouping tell the SASRec CE recipes apart)
RECIPE_KEYS = (("model", "name"), ("model", "hidden"), ("loss", "name"), ("loss", "num_negatives"),
               ("loss", "gbce_t"), ("data", "max_len"), ("train", "batch_size"), ("train", "scheduler"),
               ("train", "patience"), ("train", "length_grouping"))


def run_entry(row: str, run_dir: Path) -> dict[str, Any]:
    """The record of one finished run, checked against the published protocol."""
    try:
        m = json.loads((run_dir / "metrics.json").read_text())
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{run_dir}: not a finished run directory ({err})") from None
    p = m["protocol"]
    for key, want in PROTOCOL.items():
        if p.get(key) != want:
            raise SystemExit(f"{run_dir}: protocol {key}={p.get(key)!r}, the published figures use {want!r}")
    if m.get("dataset") != "ml-1m" or m["num_test_users"] != TEST_USERS:
        raise SystemExit(f"{run_dir}: dataset {m.get('dataset')!r} with {m['num_test_users']} test users, "
                         f"expected ml-1m with {TEST_USERS}")
    recipe = yaml.safe_load((ROOT / ROWS[row]["recipe"]).read_text())
    for section, key in RECIPE_KEYS:
        want, got = recipe[section].get(key), cfg.get(section, {}).get(key)
        if want is not None and got != want:
            raise SystemExit(f"{run_dir}: {section}.{key}={got!r}, row {row!r} is {ROWS[row]['recipe']} with "
                             f"{section}.{key}={want!r}")
    return {
        "row": row, "seed": cfg["train"]["seed"], "model": m["model"], "max_len": p.get("max_len"),
        "loss": cfg["loss"]["name"], "test": {k: m["test"][k] for k in ("NDCG@10", "HR@10", "MRR@10")},
        "test_ci95": {k: m["test_ci95"][k] for k in ("NDCG@10", "HR@10")},
        "valid_NDCG@10": m["valid"]["NDCG@10"], "epochs_trained": m["epochs_trained"],
        "best_epoch": m["best_epoch"], "train_time_s": round(m["train_time_s"], 1),
        "total_time_s": round(m["total_time_s"], 1), "threads": m.get("environment", {}).get("threads"),
        "run": str(run_dir), "source": "metrics.json",
    }


def load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"what": __doc__.split("\n")[0], "runs": []}


def add(doc: dict[str, Any], entry: dict[str, Any]) -> None:
    doc["runs"] = [r for r in doc["runs"] if (r["row"], r["seed"]) != (entry["row"], entry["seed"])] + [entry]
    doc["runs"].sort(key=lambda r: (list(ROWS).index(r["row"]), r["seed"]))


def table(doc: dict[str, Any]) -> str:
    lines = ["| method | seeds | test NDCG@10 (mean ± sd) | per seed [95% CI] | HR@10 (mean) "
             "| valid NDCG@10 (mean) | seconds per run | published NDCG@10 |", "|---|---|---|---|---|---|---|---|"]
    for row, spec in ROWS.items():
        runs = [r for r in doc["runs"] if r["row"] == row]
        pub = spec["published"]
        if not runs:
            lines.append(f"| {spec['what']} (`{spec['recipe']}`) | 0 | not run yet | | | | | {pub['NDCG@10']} |")
            continue
        nd = [r["test"]["NDCG@10"] for r in runs]
        sd = f" ± {statistics.stdev(nd):.4f}" if len(nd) > 1 else ""
        per = "; ".join(f"{r['seed']}: {r['test']['NDCG@10']:.4f} [{r['test_ci95']['NDCG@10'][0]:.4f}, "
                        f"{r['test_ci95']['NDCG@10'][1]:.4f}]" for r in runs)
        hr = statistics.mean(r["test"]["HR@10"] for r in runs)
        valid = statistics.mean(r["valid_NDCG@10"] for r in runs)  # what recipes are compared on
        # training time over all sittings of a resumed run where known (total_time_s is the last sitting's)
        wall = ", ".join(f"{r['train_time_s']:,.0f} (train)" if r.get("train_time_s")
                         else f"{r['total_time_s']:,.0f} (train + eval)" for r in runs)
        lines.append(f"| {spec['what']} (`{spec['recipe']}`) | {len(runs)} | {statistics.mean(nd):.4f}{sd} | {per} "
                     f"| {hr:.4f} | {valid:.4f} | {wall} | {pub['NDCG@10']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--add", action="append", default=[], metavar="ROW=RUN_DIR",
                    help=f"record a finished run under ROW ({', '.join(ROWS)})")
    args = ap.parse_args(argv)
    doc = load()
    for item in args.add:
        row, _, path = item.partition("=")
        if row not in ROWS or not path:
            raise SystemExit(f"--add {item!r}: expected ROW=RUN_DIR with ROW one of {', '.join(ROWS)}")
        add(doc, run_entry(row, Path(path)))
    if args.add:
        doc["rows"] = ROWS
        atomic_write_json(RESULTS, doc)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
