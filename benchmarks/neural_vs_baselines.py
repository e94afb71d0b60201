"""The neural models next to the simple baselines, dataset by dataset, with the margin over the best baseline.

    python benchmarks/neural_vs_baselines.py \
        --run ml-100k=out/ml100k-sasrec --run ml-100k=out/ml100k-bert4rec --run ml-1m=out/ml1m-sasrec ...

Reads ``benchmarks/results/baselines.json`` (``benchmarks/baselines.py``: every baseline tuned on validation) and
the ``metrics.json`` of each neural run directory (``seqrec train`` with a shipped recipe, same split and
protocol: leave-one-out, full ranking, seen items filtered). Checks that each run's protocol and test-user count
match the baselines' before putting them in one table. Writes ``benchmarks/results/neural_vs_baselines.json``
(``--update``: rows of the given runs replace the stored rows of the same dataset and model, the other stored rows
stay) and prints the Markdown table (test NDCG@10 / HR@10 with 95% bootstrap CIs, fit or train seconds) followed by
each model's margin over the dataset's best baseline (difference, ratio, and whether the CIs overlap).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def _fmt(metrics: dict, ci: dict, key: str) -> str:
    lo_hi = ci.get(key)
    return f"{metrics[key]:.4f} [{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]" if lo_hi else f"{metrics[key]:.4f}"


def baseline_rows(entry: dict) -> list[dict[str, Any]]:
    rows = []
    for b in entry["baselines"]:
        if "test" not in b:
            rows.append({"name": b["name"], "kind": "baseline", "skipped": b.get("skipped")})
            continue
        rows.append({"name": b["name"], "kind": "baseline", "params": b.get("params", {}),
                     "test": b["test"]["metrics"], "ci": b["test"]["ci"], "seconds": b.get("fit_seconds"),
                     "seconds_what": "fit"})
    return rows


def run_row(path: Path, protocol: dict, test_users: int) -> dict[str, Any]:
    m = json.loads((path / "metrics.json").read_text())
    p = m["protocol"]
    for key in ("ranking", "filter_seen", "split"):
        if p.get(key) != protocol.get(key):
            raise SystemExit(f"{path}: protocol {key}={p.get(key)!r} differs from the baselines' {protocol.get(key)!r}")
    if m["num_test_users"] != test_users:
        raise SystemExit(f"{path}: {m['num_test_users']} test users, the baselines had {test_users}")
    return {"name": m["model"], "kind": "model", "run": str(path), "max_len": p.get("max_len"), "test": m["test"],
            "ci": m["test_ci95"], "seconds": m["train_time_s"], "seconds_what": "train",
            "epochs": m["epochs_trained"], "best_epoch": m["best_epoch"],
            "load_note": m.get("environment", {}).get("threads")}


def margins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = [r for r in rows if r["kind"] == "baseline" and "test" in r]
    best = max(base, key=lambda r: r["test"]["NDCG@10"])
    out = []
    for r in rows:
        if r["kind"] != "model":
            continue
        a, b = r["test"]["NDCG@10"], best["test"]["NDCG@10"]
        (alo, ahi), (blo, bhi) = r["ci"]["NDCG@10"], best["ci"]["NDCG@10"]
        out.append({"model": r["name"], "best_baseline": best["name"], "ndcg_diff": a - b, "ndcg_ratio": a / b,
                    "ci_overlap": not (alo > bhi or ahi < blo)})
    return out


def markdown(dataset: str, rows: list[dict[str, Any]], marg: list[dict[str, Any]]) -> str:
    lines = [f"**{dataset}**", "", "| model / baseline | NDCG@10 [95% CI] | HR@10 [95% CI] | seconds | notes |",
             "|---|---|---|---:|---|"]
    for r in rows:
        if "test" not in r:
            lines.append(f"| {r['name']} | skipped | | | {r.get('skipped')} |")
            continue
        note = (", ".join(f"{k}={v}" for k, v in r.get("params", {}).items()) if r["kind"] == "baseline"
                else f"max_len {r['max_len']}, {r['epochs']} epochs (best {r['best_epoch']})")
        name = f"**{r['name']}**" if r["kind"] == "model" else r["name"]
        lines.append(f"| {name} | {_fmt(r['test'], r['ci'], 'NDCG@10')} | {_fmt(r['test'], r['ci'], 'HR@10')} | "
                     f"{r['seconds']:.1f} ({r['seconds_what']}) | {note} |")
    for m in marg:
        verdict = "within the CIs" if m["ci_overlap"] else "CIs apart"
        lines.append(f"\n{m['model']} vs the best baseline ({m['best_baseline']}): NDCG@10 {m['ndcg_diff']:+.4f} "
                     f"(x{m['ndcg_ratio']:.2f}), {verdict}.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baselines", type=Path, default=ROOT / "benchmarks" / "results" / "baselines.json")
    ap.add_argument("--run", action="append", default=[], help="DATASET=RUN_DIR (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "neural_vs_baselines.json")
    ap.add_argument("--update", action="store_true",
                    help="keep the stored rows of --out that no --run replaces (same dataset and model)")
    args = ap.parse_args()
    base = {e["dataset"]: e for e in json.loads(args.baselines.read_text())["results"]}
    runs: dict[str, list[Path]] = {}
    for spec in args.run:
        ds, _, path = spec.partition("=")
        if ds not in base:
            raise SystemExit(f"--run {spec}: no baselines for dataset {ds!r} in {args.baselines}")
        runs.setdefault(ds, []).append(Path(path))
    stored = json.loads(args.out.read_text()) if args.update else {"commands": [], "datasets": []}
    kept = {d["dataset"]: [r for r in d["rows"] if r["kind"] == "model"] for d in stored["datasets"]}
    report, text = [], []
    for ds in dict.fromkeys([*kept, *runs]):
        entry = base[ds]
        new = [run_row(p, entry["protocol"], entry["data"]["test_users"]) for p in runs.get(ds, [])]
        by_name = {r["name"]: r for r in new}
        rows = [by_name.pop(r["name"], r) for r in kept.get(ds, [])]  # a replaced row keeps its place
        rows += by_name.values()
        rows += baseline_rows(entry)
        marg = margins(rows)
        report.append({"dataset": ds, "protocol": entry["protocol"], "rows": rows, "margins": marg})
        text.append(markdown(ds, rows, marg))
    print("\n\n".join(text))
    commands = stored["commands"]
    commands.append(" ".join(["python", "benchmarks/neural_vs_baselines.py", *sys.argv[1:]]))
    atomic_write_text(args.out, json.dumps({"commands": commands, "datasets": report}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
