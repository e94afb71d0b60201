"""Compare a seqrec benchmark with the seed's benchmark table, cell by cell.

    python benchmarks/seed_compare.py RESULTS [--seed-table ../shared/seeds/benchmark-table.txt]
        [--out benchmarks/results/seed_compare.md] [--json benchmarks/results/seed_compare.json]

RESULTS is a results directory written by ``seqrec bench`` (``results.sqlite``) or a report CSV written by
``seqrec report`` (``report.csv``, e.g. ``benchmarks/results/seed_grid/report.csv``).

The seed table is an Excel pivot pasted as Markdown: a "Max of value" super-header, the real header row
("Row Labels", "EpochTime (Max)", "GPU/Memory(MiB)", ..., "NDCG@10/test", ...), then label-only rows that open
a model ("BERT4Rec", "SAS4Rec", "xLSTM") or a dataset ("100K", "1M", "10M") and rows labelled by max_len that
carry the values ("1,193" has a thousands separator, "-" and "" are missing). The "Grand Total (Max)" row is
shifted by twelve columns in the seed file and is not a cell: it is skipped. Cells are matched by (model,
dataset, max_len); the seed's "SAS4Rec" is SASRec.

Output: a Markdown table (accuracy: NDCG@10 with seqrec's 95% interval, HR@10, MRR@10, Recall@10; cost: epoch
time, peak memory, epochs trained, params), each seed value next to seqrec's with the difference or the
ratio, plus the cells found on one side only; the same numbers as JSON. It is printed and written atomically.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.bench.pivot import KEY_AXES, load_pivot
from seqrec.errors import DataError, SeqrecError
from seqrec.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = ROOT.parent / "shared" / "seeds" / "benchmark-table.txt"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "seed_compare.md"

# seed header -> seqrec column key (seqrec.bench.pivot.COLUMNS)
SEED_COLUMNS = {
    "NDCG@10/test": "NDCG@10",
    "HitRate@10/test": "HR@10",
    "MRR@10/test": "MRR@10",
    "Recall@10/test": "Recall@10",
    "Epoch Time (Avg)": "epoch_time_avg",
    "EpochTime (Max)": "epoch_time_max",
    "Epoch Time (Sum)": "epoch_time_sum",
    "GPU/Memory(MiB)": "memory",
    "Epoch Trained": "epochs",
    "TotalParams": "params",
}
MODELS = {"sas4rec": "sasrec", "sasrec": "sasrec", "bert4rec": "bert4rec", "xlstm": "xlstm", "gru4rec": "gru4rec"}
DATASETS = {"100k": "ml-100k", "1m": "ml-1m", "10m": "ml-10m", "20m": "ml-20m", "steam": "steam"}
QUALITY = ("NDCG@10", "HR@10", "MRR@10", "Recall@10")
COST = ("epoch_time_avg", "memory", "epochs", "params")
LABELS = {"NDCG@10": "NDCG@10", "HR@10": "HR@10", "MRR@10": "MRR@10", "Recall@10": "Recall@10",
          "epoch_time_avg": "Epoch time (avg, s)", "memory": "Peak memory (MiB)", "epochs": "Epochs trained",
          "params": "Params"}
NOTES = [
    "The seed's values are shown as the seed wrote them, rounded (HR@10 to 2 decimals, NDCG@10/MRR@10/Recall@10 "
    "to 3, epoch times to whole seconds), so a ratio carries that rounding (HR@10 0.14 is 0.135-0.145).",
    "The seed table does not state its protocol (split, full or sampled ranking, seen-item filtering); seqrec's "
    "is printed above. A difference in NDCG@10 is a difference of protocol and implementation together.",
    "Peak memory: the seed's column is GPU memory (1177 MiB in every 100K cell, empty for 1M); seqrec's is CUDA "
    "peak allocated memory on a GPU and the process's peak RSS on CPU. Epoch times depend on each side's hardware.",
    "The seed's Loss/train (about 4,900 on 100K, 46,000-51,000 on 1M) is on another scale than seqrec's mean "
    "per-example loss (about 5.6), probably a sum over batches: not compared.",
]

Key = tuple[str, str, int]


@dataclass
class SeedTable:
    cells: dict[Key, dict[str, float | None]]
    skipped: list[str] = field(default_factory=list)  # rows that are not cells, with why


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str, where: str) -> float | None:
    t = text.replace(",", "").strip()
    if t in ("", "-", "–"):
        return None
    try:
        return float(t)
    except ValueError:
        raise DataError(f"{where}: expected a number, '-' or nothing, got {text!r}") from None


def parse_seed_table(path: Path) -> SeedTable:
    """The seed's pivot as ``(model, dataset, max_len) -> {column key: value}`` (see the module docstring)."""
    if not path.is_file():
        raise DataError(f"{path}: seed benchmark table not found (pass --seed-table)")
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("|")
                  and _cells(ln)[0].lower() == "row labels"), None)
    if start is None:
        raise DataError(f"{path}: no table header row starting with 'Row Labels'")
    header = _cells(lines[start])
    cols = {SEED_COLUMNS[h]: j for j, h in enumerate(header) if h in SEED_COLUMNS}
    missing = [h for h, k in SEED_COLUMNS.items() if k in QUALITY and k not in cols]
    if missing:
        raise DataError(f"{path}:{start + 1}: header row lacks {', '.join(missing)}")
    table = SeedTable({})
    model = dataset = None
    for n, line in enumerate(lines[start + 1:], start + 2):
        if not line.lstrip().startswith("|"):
            break  # the table ends at its first non-table line
        row = _cells(line)
        label, values = row[0], row[1:]
        if set(row) <= {""} or re.fullmatch(r"[-: ]+", "".join(row)):
            continue
        if label.lower().startswith("grand total"):
            table.skipped.append(f"line {n}: '{label}' (a total, its values shifted off their columns)")
            continue
        if all(v in ("", "-") for v in values):  # a group label
            if label.lower() in DATASETS:
                dataset = DATASETS[label.lower()]
            else:
                model, dataset = MODELS.get(label.lower(), label.lower()), None
            continue
        if not label.isdigit() or model is None or dataset is None:
            table.skipped.append(f"line {n}: '{label}' (values without a model, dataset and max_len)")
            continue
        get = {k: _number(row[j] if j < len(row) else "", f"{path}:{n} column '{header[j]}'")
               for k, j in cols.items()}
        table.cells[(model, dataset, int(label))] = get
    return table


def _float(x: str | None) -> float | None:
    return float(x) if x not in (None, "") else None


def load_seqrec(results: Path) -> tuple[dict[Key, dict[str, tuple]], list[str], list[str]]:
    """``(model, dataset, max_len) -> {column key: (mean, low, high)}``, protocol lines, environment lines."""
    out: dict[Key, dict[str, tuple]] = {}
    if results.is_file() and results.suffix == ".csv":
        with results.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if not set(KEY_AXES) <= set(header):
                raise DataError(f"{results}: not a seqrec report CSV (needs columns {', '.join(KEY_AXES)})")
            extra = header[3:header.index("seeds")] if "seeds" in header else []
            for n, r in enumerate(reader, 2):
                if r["model.name"] == "popularity":
                    continue
                try:
                    key = _key(r["model.name"], r["data.name"], int(r["data.max_len"]), [r[a] for a in extra])
                    out[key] = {k: (_float(r.get(k)), _float(r.get(f"{k}_ci_low")), _float(r.get(f"{k}_ci_high")))
                                for k in LABELS}
                except ValueError as err:
                    raise DataError(f"{results}:{n}: {err}") from None
        return out, *_report_lines(results.with_suffix(".md"))
    pivot = load_pivot(results)
    for r in pivot.rows:
        key = _key(str(r.key["model.name"]), str(r.key["data.name"]), int(r.key["data.max_len"]),
                   [f"{a}={r.key[a]}" for a in pivot.axes[3:]])
        out[key] = {k: (r.stats[k].mean, r.stats[k].low, r.stats[k].high) for k in LABELS if k in r.stats}
    return out, pivot.protocol, pivot.environment


def _report_lines(md: Path) -> tuple[list[str], list[str]]:
    """Protocol and environment lines of the report written next to a CSV (``seqrec report`` writes both)."""
    if not md.is_file():
        return [], []
    lines = md.read_text(encoding="utf-8").splitlines()
    protocol = [ln.split("**Protocol:**", 1)[1].strip() for ln in lines if ln.startswith("**Protocol:**")]
    env = [ln.split("Environment:", 1)[1].strip() for ln in lines if ln.startswith("Environment:")]
    return protocol, env


def _key(model: str, dataset: str, max_len: int, extra: list[str]) -> Key:
    """Another swept key (loss, size) makes several seqrec rows per seed cell: it goes into the model name."""
    return (model + (f" ({', '.join(extra)})" if extra else ""), dataset, max_len)


def _base_model(name: str) -> str:
    return name.split(" (", 1)[0]


def compare(seed: SeedTable, ours: dict[Key, dict[str, tuple]]) -> dict[str, Any]:
    """Matched cells with per-metric seed / seqrec / difference / ratio, and the cells of one side only."""
    matched, seqrec_only = [], []
    used = set()
    for key in sorted(ours, key=lambda k: (k[1], k[0], k[2])):
        skey = (_base_model(key[0]), key[1], key[2])
        if skey not in seed.cells:
            seqrec_only.append(key)
            continue
        used.add(skey)
        metrics = {}
        for k in LABELS:
            a = seed.cells[skey].get(k)
            b, lo, hi = ours[key].get(k, (None, None, None))
            m: dict[str, Any] = {"seed": a, "seqrec": b,
                                 "diff": None if a is None or b is None else b - a,
                                 "ratio": None if not a or b is None else b / a}
            if k == "NDCG@10":
                m["seqrec_ci95"] = [lo, hi] if lo is not None and hi is not None else None
                m["seed_in_ci"] = None if a is None or m["seqrec_ci95"] is None else lo <= a <= hi
            metrics[k] = m
        matched.append({"model": key[0], "dataset": key[1], "max_len": key[2], "metrics": metrics})
    seed_only = [k for k in sorted(seed.cells, key=lambda k: (k[1], k[0], k[2])) if k not in used]
    return {"matched": matched,
            "seed_only": [dict(zip(("model", "dataset", "max_len"), k, strict=True)) for k in seed_only],
            "seqrec_only": [dict(zip(("model", "dataset", "max_len"), k, strict=True)) for k in seqrec_only],
            "seed_rows_skipped": seed.skipped}


def _fmt(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"×{x:.2f}"


def _table(header: list[str], rows: list[list[str]], labels: int = 3) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < labels else "---:"
                                                            for i in range(len(header))) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _missing(cells: list[dict]) -> str:
    groups: dict[tuple[str, str], list[int]] = {}
    for c in cells:
        groups.setdefault((c["model"], c["dataset"]), []).append(c["max_len"])
    return "; ".join(f"{m} {d} max_len {', '.join(map(str, ls))}" for (m, d), ls in groups.items())


def render_markdown(result: dict[str, Any]) -> str:
    m = result["matched"]
    lines = ["## seqrec vs the seed's benchmark table", "",
             f"Seed table: `{result['seed_table']}`; seqrec results: `{result['results']}`.", "",
             f"Command: `{result['command']}`", ""]
    lines += [f"**seqrec protocol:** {p}" for p in result["protocol"]] or ["**seqrec protocol:** unknown (a report "
                                                                          "CSV without its .md next to it)"]
    lines += [""] + [f"seqrec environment: {e}" for e in result["environment"]] + [""]
    nd = [c["metrics"]["NDCG@10"] for c in m if c["metrics"]["NDCG@10"]["ratio"] is not None]
    if nd:
        higher = sum(x["diff"] > 0 for x in nd)
        inside = sum(bool(x["seed_in_ci"]) for x in nd)
        ratios = sorted(x["ratio"] for x in nd)
        lines += [f"{len(m)} cells in both: seqrec's NDCG@10 is higher in {higher} and lower in {len(nd) - higher} "
                  f"(ratio seqrec / seed ×{ratios[0]:.2f} to ×{ratios[-1]:.2f}); the seed's value lies inside "
                  f"seqrec's 95% interval in {inside}.", ""]
    lines += ["### Accuracy (test)", ""]
    head = ["Model", "Dataset", "max_len", "NDCG@10 seed", "NDCG@10 seqrec [95% CI]", "NDCG@10 Δ", "NDCG@10 ×",
            "Seed in CI"]
    for k in QUALITY[1:]:
        head += [f"{k} seed", f"{k} seqrec", f"{k} ×"]
    rows = []
    for c in m:
        x = c["metrics"]["NDCG@10"]
        ci = x.get("seqrec_ci95")
        row = [c["model"], c["dataset"], str(c["max_len"]), _fmt(x["seed"], "g"),
               _fmt(x["seqrec"], ".4f") + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""),
               _fmt(x["diff"], "+.4f"), _ratio(x["ratio"]),
               {True: "yes", False: "no", None: "–"}[x["seed_in_ci"]]]
        for k in QUALITY[1:]:
            y = c["metrics"][k]
            row += [_fmt(y["seed"], "g"), _fmt(y["seqrec"], ".4f"), _ratio(y["ratio"])]
        rows.append(row)
    lines += _table(head, rows) if rows else ["_no cell in both_"]
    lines += ["", "### Cost and size", ""]
    head = ["Model", "Dataset", "max_len"]
    for k in COST:
        head += [f"{LABELS[k]} seed", f"{LABELS[k]} seqrec", "×"]
    fmts = {"epoch_time_avg": ".2f", "memory": ".0f", "epochs": ".0f", "params": ".0f"}
    rows = [[c["model"], c["dataset"], str(c["max_len"])]
            + [v for k in COST for v in (_fmt(c["metrics"][k]["seed"], "g"),
                                         _fmt(c["metrics"][k]["seqrec"], fmts[k]), _ratio(c["metrics"][k]["ratio"]))]
            for c in m]
    lines += _table(head, rows) if rows else ["_no cell in both_"]
    lines += ["", f"Only in the seed table ({len(result['seed_only'])}): {_missing(result['seed_only']) or 'none'}.",
              "", f"Only in seqrec ({len(result['seqrec_only'])}): {_missing(result['seqrec_only']) or 'none'}."]
    if result["seed_rows_skipped"]:
        lines += ["", "Seed rows not read as cells: " + "; ".join(result["seed_rows_skipped"]) + "."]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in NOTES] + ["", "Δ = seqrec − seed; × = seqrec / seed."]
    return "\n".join(lines) + "\n"


def run(results: Path, seed_table: Path, out: Path, json_out: Path) -> str:
    seed = parse_seed_table(seed_table)
    ours, protocol, environment = load_seqrec(results)
    result = {"command": " ".join(["python", *sys.argv]), "seed_table": str(seed_table), "results": str(results),
              "protocol": protocol, "environment": environment, "notes": NOTES, **compare(seed, ours)}
    md = render_markdown(result)
    for path, text in ((out, md), (json_out, json.dumps(result, indent=2) + "\n")):
        atomic_write_text(path, text)
        path.chmod(0o644)  # results are meant to be shared (mkstemp creates 0600)
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="results directory of `seqrec bench`, or a report CSV")
    ap.add_argument("--seed-table", type=Path, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown output")
    ap.add_argument("--json", type=Path, default=None, help="JSON output (default: --out with .json)")
    args = ap.parse_args(argv)
    try:
        md = run(args.results, args.seed_table, args.out, args.json or args.out.with_suffix(".json"))
    except SeqrecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
