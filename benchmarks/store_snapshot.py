"""Snapshot a running benchmark grid into the repository, so a grid that takes several sittings survives them.

A grid's output directory (``seqrec bench ... --output DIR``) holds ``results.sqlite`` and ``cells/`` (the cells'
run directories, with weights, never committed). This script copies only the store, consistently while the
runner writes to it (the SQLite online-backup API, not a file copy of a WAL database), and writes the report of
what is done so far beside it:

    python benchmarks/store_snapshot.py /work/runs/loss-study benchmarks/results/loss_study_ml100k --study

To resume in a new sitting, put the snapshot back and re-run the same ``seqrec bench`` command: done cells are
kept, cells that were running when the snapshot was taken run again from scratch.

    mkdir -p DIR && cp benchmarks/results/loss_study_ml100k/results.sqlite DIR/
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from seqrec.bench.report import write_report
from seqrec.bench.store import ResultStore


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


def _statuses(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT status FROM cells")]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the grid's --output directory")
    parser.add_argument("dest", type=Path, help="where the snapshot and its report go (under benchmarks/results/)")
    parser.add_argument("--study", action="store_true", help="add the loss-study section to the report")
    args = parser.parse_args(argv)
    store = snapshot(args.source, args.dest)
    statuses = _statuses(store)
    paths = write_report(args.dest, study=args.study)  # reads the store read-only: it stays one file
    done = statuses.count("done")
    print(f"{store}: {done}/{len(statuses)} cells done; report {paths.markdown}, {paths.csv}, {paths.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
