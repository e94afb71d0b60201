"""The benchmark results store: one SQLite file (``DIR/results.sqlite``, stdlib ``sqlite3``, WAL journal).

Tables (every write is one transaction, so a crash or ``kill -9`` leaves either the old or the new state):

- ``meta(key, value)``: the grid specification (JSON) and the store's schema version.
- ``cells(id, ordinal, labels, config, status, reason, environment, started_at, finished_at, wall_s)``: one row
  per grid cell. ``id`` is a hash of the fully resolved config; ``labels`` the swept values (JSON, dotted key ->
  value); ``status`` one of pending / running / done / failed / skipped.
- ``epochs(cell_id, epoch, train_loss, grad_norm_max, lr, epoch_time_s, throughput_seq_s, peak_memory_mb,
  cpu_util_pct, record)``: the per-epoch training history (``record`` is the full JSON line).
- ``metrics(cell_id, name, value, ci_low, ci_high)``: final numbers in long format (test metrics carry their
  95% bootstrap interval).

Results of a cell are inserted only after its process has finished, together with ``status = 'done'``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1"
STATUSES = ("pending", "running", "done", "failed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY,
    ordinal INTEGER NOT NULL,
    labels TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
    reason TEXT,
    environment TEXT,
    started_at REAL,
    finished_at REAL,
    wall_s REAL
);
CREATE TABLE IF NOT EXISTS epochs (
    cell_id TEXT NOT NULL REFERENCES cells(id),
    epoch INTEGER NOT NULL,
    train_loss REAL,
    grad_norm_max REAL,
    lr REAL,
    epoch_time_s REAL,
    throughput_seq_s REAL,
    peak_memory_mb REAL,
    cpu_util_pct REAL,
    record TEXT NOT NULL,
    PRIMARY KEY (cell_id, epoch)
);
CREATE TABLE IF NOT EXISTS metrics (
    cell_id TEXT NOT NULL REFERENCES cells(id),
    name TEXT NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    PRIMARY KEY (cell_id, name)
);
"""

_EPOCH_COLS = ("train_loss", "grad_norm_max", "lr", "epoch_time_s", "throughput_seq_s", "peak_memory_mb",
               "cpu_util_pct")


@dataclass
class CellRow:
    """One row of ``cells`` with its JSON columns decoded."""

    id: str
    ordinal: int
    labels: dict[str, Any]
    config: dict[str, Any]
    status: str
    reason: str | None
    environment: dict[str, Any] | None
    wall_s: float | None


class ResultStore:
    """Thin typed access to ``results.sqlite``; open with :meth:`open` (creates the file and schema)."""

    FILENAME = "results.sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, directory: str | Path, *, create: bool = True, readonly: bool = False) -> ResultStore:
        """``readonly``: for reports; the file is never written (its journal mode stays as it is), so a
        committed or shared store can be read in place, also while a runner writes to it."""
        path = Path(directory) / cls.FILENAME
        if (readonly or not create) and not path.is_file():
            from seqrec.errors import DataError

            raise DataError(f"{path}: results store not found (run `seqrec bench` first)")
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
            return cls(conn, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)  # explicit transactions below
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        if create:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            with store.transaction():
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            return row[0]

    # -- cells --------------------------------------------------------------------------------------------------

    def ensure_cell(self, cell_id: str, ordinal: int, labels: dict, config: dict) -> str:
        """Insert the cell as pending if new (else refresh its ordinal); return its current status."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO cells (id, ordinal, labels, config, status) VALUES (?, ?, ?, ?, 'pending') "
                "ON CONFLICT(id) DO UPDATE SET ordinal = excluded.ordinal, labels = excluded.labels",
                (cell_id, ordinal, json.dumps(labels, sort_keys=True), json.dumps(config, sort_keys=True)),
            )
        return self.status(cell_id)

    def status(self, cell_id: str) -> str:
        row = self.conn.execute("SELECT status FROM cells WHERE id = ?", (cell_id,)).fetchone()
        return row[0] if row else "pending"

    def reason(self, cell_id: str) -> str | None:
        row = self.conn.execute("SELECT reason FROM cells WHERE id = ?", (cell_id,)).fetchone()
        return row[0] if row else None

    def set_status(self, cell_id: str, status: str, reason: str | None = None,
                   environment: dict | None = None, wall_s: float | None = None) -> None:
        assert status in STATUSES, status
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "UPDATE cells SET status = ?, reason = ?, "
                "started_at = CASE WHEN ? = 'running' THEN ? ELSE started_at END, "
                "finished_at = CASE WHEN ? IN ('done', 'failed', 'skipped') THEN ? ELSE NULL END, "
                "environment = COALESCE(?, environment), wall_s = COALESCE(?, wall_s) WHERE id = ?",
                (status, reason, status, now, status, now,
                 json.dumps(environment, sort_keys=True) if environment is not None else None, wall_s, cell_id),
            )

    def record_done(self, cell_id: str, history: list[dict], metrics: dict[str, tuple[float | None, ...]],
                    environment: dict, wall_s: float) -> None:
        """Insert a finished cell's history and metrics and mark it done, all in one transaction."""
        now = time.time()
        with self.transaction() as c:
            c.execute("DELETE FROM epochs WHERE cell_id = ?", (cell_id,))
            c.execute("DELETE FROM metrics WHERE cell_id = ?", (cell_id,))
            c.executemany(
                f"INSERT INTO epochs (cell_id, epoch, {', '.join(_EPOCH_COLS)}, record) "
                f"VALUES (?, ?, {', '.join('?' for _ in _EPOCH_COLS)}, ?)",
                [(cell_id, int(r["epoch"]), *(r.get(k) for k in _EPOCH_COLS), json.dumps(r)) for r in history],
            )
            c.executemany(
                "INSERT INTO metrics (cell_id, name, value, ci_low, ci_high) VALUES (?, ?, ?, ?, ?)",
                [(cell_id, name, *(list(v) + [None, None, None])[:3]) for name, v in metrics.items()],
            )
            c.execute(
                "UPDATE cells SET status = 'done', reason = NULL, environment = ?, finished_at = ?, wall_s = ? "
                "WHERE id = ?",
                (json.dumps(environment, sort_keys=True), now, wall_s, cell_id),
            )

    def cells(self) -> list[CellRow]:
        rows = self.conn.execute(
            "SELECT id, ordinal, labels, config, status, reason, environment, wall_s FROM cells ORDER BY ordinal"
        ).fetchall()
        return [
            CellRow(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5],
                    json.loads(r[6]) if r[6] else None, r[7])
            for r in rows
        ]

    def metrics(self, cell_id: str) -> dict[str, tuple[float | None, float | None, float | None]]:
        rows = self.conn.execute(
            "SELECT name, value, ci_low, ci_high FROM metrics WHERE cell_id = ?", (cell_id,)
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def epochs(self, cell_id: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT record FROM epochs WHERE cell_id = ? ORDER BY epoch", (cell_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]
