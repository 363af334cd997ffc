"""The ingest's own state, in SQLite under the data directory (state.sqlite).

- runs: each run's report, newest last (`dealbot status` shows the last one);
- source_runs: each source's outcome in each run, so `status` can say when a source last ran and how it went;
- http_cache: the ETag / Last-Modified a URL last answered with, sent back next time so an unchanged page costs
  a 304. A URL's validators are recorded only once its document is safely in the index;
- feeds: the entries a feed listed when it last answered 200, used again when it answers 304.
"""

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
);
CREATE TABLE IF NOT EXISTS source_runs (
    source TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    finished TEXT NOT NULL,
    counts TEXT NOT NULL,
    PRIMARY KEY (source, run_id)
);
CREATE TABLE IF NOT EXISTS http_cache (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT
);
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    entries TEXT NOT NULL
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.executescript(_SCHEMA)
    return conn


def record_run(path: Path, finished: str, report: dict) -> None:
    with closing(_connect(path)) as conn, conn:
        run_id = conn.execute("INSERT INTO runs (finished, report) VALUES (?, ?)", (finished, json.dumps(report))).lastrowid
        conn.executemany(
            "INSERT INTO source_runs (source, run_id, finished, counts) VALUES (?, ?, ?, ?)",
            [(source, run_id, finished, json.dumps(counts)) for source, counts in report.get("per_source", {}).items()],
        )


def last_run(path: Path) -> dict | None:
    if not path.exists():
        return None
    with closing(_connect(path)) as conn:
        row = conn.execute("SELECT finished, report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return {"finished": row[0], **json.loads(row[1])} if row else None


def last_source_runs(path: Path) -> dict[str, dict]:
    """For every source that ever ran: its most recent run's finish time and counts."""
    if not path.exists():
        return {}
    with closing(_connect(path)) as conn:
        rows = conn.execute(
            "SELECT source, finished, counts FROM source_runs s WHERE run_id = "
            "(SELECT MAX(run_id) FROM source_runs WHERE source = s.source) ORDER BY source"
        ).fetchall()
    return {source: {"finished": finished, **json.loads(counts)} for source, finished, counts in rows}


class HttpState:
    """Validators and feed entries, read and written during one run."""

    def __init__(self, path: Path):
        self.conn = _connect(path)

    def close(self) -> None:
        self.conn.close()

    def validators(self, url: str) -> tuple[str | None, str | None]:
        row = self.conn.execute("SELECT etag, last_modified FROM http_cache WHERE url = ?", (url,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def remember(self, url: str, etag: str | None, last_modified: str | None) -> None:
        with self.conn:
            if etag or last_modified:
                self.conn.execute(
                    "INSERT OR REPLACE INTO http_cache (url, etag, last_modified) VALUES (?, ?, ?)",
                    (url, etag, last_modified),
                )
            else:
                self.conn.execute("DELETE FROM http_cache WHERE url = ?", (url,))

    def feed_entries(self, url: str) -> list[dict] | None:
        row = self.conn.execute("SELECT entries FROM feeds WHERE url = ?", (url,)).fetchone()
        return json.loads(row[0]) if row else None

    def remember_feed(self, url: str, entries: list[dict], etag: str | None, last_modified: str | None) -> None:
        """A feed's entries and its validators, together: a later 304 must find the entries it stands for."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO feeds (url, entries) VALUES (?, ?)", (url, json.dumps(entries)))
            self.conn.execute(
                "INSERT OR REPLACE INTO http_cache (url, etag, last_modified) VALUES (?, ?, ?)",
                (url, etag, last_modified),
            )
