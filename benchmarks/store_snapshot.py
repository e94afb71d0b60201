"""Snapshot a running benchmark grid into the repository, so a grid that takes several sittings survives them.

A grid's output directory (``seqrec bench ... --output DIR``) holds ``results.sqlite`` and ``cells/`` (the cells'
run directories, with weights, never committed). This script copies only the store, consistently while the
runner writes to it (the SQLite online-backup API, not a file copy of a WAL database), and writes the report of
what is done so far beside it:

    python benchmarks/store_snapshot.py /work/runs/loss-study benchmarks/results/loss_study_ml100k --study \
        --command "seqrec bench configs/bench/loss-study.yaml --output OUT --study"

``summary.json`` beside it: the grid command, cells by status, the grid's wall time (first cell started to last
finished, and the sum over cells), the environment of the cells, and with ``--study`` the study's numbers per
dataset (Spearman table, random-forest importance, best cell per memory budget).

The store is committed gzipped (``results.sqlite.gz``). To resume in a new sitting, put it back and re-run the
same ``seqrec bench`` command: done cells are kept, cells that were running when the snapshot was taken run again
from scratch (the snapshot holds no checkpoints; in the original ``DIR`` they continue from ``cells/<id>/run/last``).

    mkdir -p DIR && gunzip -c benchmarks/results/loss_study_ml100k/results.sqlite.gz > DIR/results.sqlite

``seqrec report`` reads an unpacked copy (``gunzip -k``); the report files beside the snapshot are current.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from seqrec.bench.pivot import load_pivot
from seqrec.bench.report import write_report
from seqrec.bench.store import ResultStore
from seqrec.io import atomic_write_bytes


def snapshot(source: Path, dest: Path) -> Path:
    """Copy ``source/results.sqlite`` to ``dest/results.sqlite`` (atomic: written beside, then renamed)."""
    src_path = source / ResultStore.FILENAME
    if not src_path.is_file():
        raise SystemExit(f"error: {src_path}: no results store here (expected a `seqrec bench --output` directory)")
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / ResultStore.FILENAME
    tmp = final.with_suffix(".sqlite.tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    out = sqlite3.connect(tmp)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()
    _self_contained(tmp)
    tmp.replace(final)
    return final


def _self_contained(path: Path) -> None:
    """Rollback journal instead of WAL (the store's own mode), compacted: one file to commit, no -wal beside it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("VACUUM")
    finally:
        conn.close()


def summary(dest: Path, command: str | None, study: bool) -> dict[str, Any]:
    """What the snapshot holds, in numbers (see the module docstring)."""
    store = ResultStore.open(dest, readonly=True)
    try:
        cells = store.cells()
        start, end = store.conn.execute(
            "SELECT min(started_at), max(finished_at) FROM cells WHERE status = 'done'").fetchone()
    finally:
        store.close()
    done = [c for c in cells if c.status == "done"]
    out: dict[str, Any] = {"command": command, "cells": len(cells),
                           "status": dict(Counter(c.status for c in cells))}
    if done:
        out["wall_s"] = {"first_start_to_last_finish": end - start if start is not None and end is not None else None,
                         "sum_over_done_cells": sum(c.wall_s or 0.0 for c in done)}
        envs = {json.dumps({k: (c.environment or {}).get(k) for k in ("git_commit", "threads", "torch")},
                           sort_keys=True) for c in done}
        out["environments"] = [json.loads(e) for e in sorted(envs)]
    if study:
        from seqrec.bench.study import budget_lines, forest_importance, spearman_table, study_points

        points = study_points(load_pivot(dest))
        out["study"] = {}
        for ds in dict.fromkeys(q.dataset for q in points):
            pts = [q for q in points if q.dataset == ds]
            out["study"][ds] = {"cells": len(pts), "spearman": spearman_table(pts),
                                "forest": forest_importance(pts), "budgets": budget_lines(pts)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the grid's --output directory")
    parser.add_argument("dest", type=Path, help="where the snapshot and its report go (under benchmarks/results/)")
    parser.add_argument("--study", action="store_true", help="add the loss-study section to the report")
    parser.add_argument("--command", help="the seqrec bench command that ran the grid (recorded in summary.json)")
    args = parser.parse_args(argv)
    store = snapshot(args.source, args.dest)
    paths = write_report(args.dest, study=args.study)  # reads the store read-only: it stays one file
    info = summary(args.dest, args.command, args.study)
    atomic_write_bytes(args.dest / "summary.json", (json.dumps(info, indent=1) + "\n").encode())
    packed = compress(store)
    done = info["status"].get("done", 0)
    print(f"{packed}: {done}/{info['cells']} cells done; report {paths.markdown}, {paths.csv}, {paths.html}, "
          f"{args.dest / 'summary.json'}")
    return 0


def compress(store: Path) -> Path:
    """``results.sqlite`` -> ``results.sqlite.gz`` (what is committed: the JSON epoch records shrink ~8x), with a
    fixed gzip timestamp so an unchanged store gives an unchanged file; the uncompressed copy is removed."""
    packed = store.with_name(store.name + ".gz")
    atomic_write_bytes(packed, gzip.compress(store.read_bytes(), compresslevel=9, mtime=0))
    store.unlink()
    return packed


if __name__ == "__main__":
    sys.exit(main())
