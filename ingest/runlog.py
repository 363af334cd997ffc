"""The log of ingest runs, in SQLite under the data directory: what `dealbot status` reports as the last run."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    finished TEXT NOT NULL,
    report TEXT NOT NULL
)
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.execute(_SCHEMA)
    return conn


def record_run(path: Path, finished: str, report: dict) -> None:
    with closing(_connect(path)) as conn, conn:
        conn.execute("INSERT INTO runs (finished, report) VALUES (?, ?)", (finished, json.dumps(report)))


def last_run(path: Path) -> dict | None:
    if not path.exists():
        return None
    with closing(_connect(path)) as conn:
        row = conn.execute("SELECT finished, report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return {"finished": row[0], **json.loads(row[1])} if row else None
