"""The ingest's own state, in SQLite under the data directory (state.sqlite).

- runs: each run's report, newest last (`dealbot status` shows the last one);
- source_runs: each source's outcome in each run, so `status` can say when a source last ran and how it went;
- http_cache: the ETag / Last-Modified a URL last answered with, sent back next time so an unchanged page costs
  a 304. A URL's validators are recorded only once its document is safely in the index;
- feeds: the entries a feed listed when it last answered 200, used again when it answers 304;
- added_documents: a journal of the documents added to the index (new to readers, not a new version of one they
  had), in the order they were added, so that whatever announces new articles (the Slack digest) reads only what
  was added since it last looked, never the whole index. An entry is written just before its document, so a run
  killed in between leaves an entry whose document the next run writes (and journals again), never a document
  without an entry.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .report import LoggedRun, RunReport, SourceReport

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
CREATE TABLE IF NOT EXISTS added_documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    version TEXT NOT NULL,
    doc_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AddedDocument:
    """One entry of the journal of added documents: `id` grows with every entry."""

    id: int
    at: str
    doc_key: str
    version: str
    doc_id: str


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.executescript(_SCHEMA)
    return conn


def record_run(path: Path, finished: str, report: RunReport) -> None:
    with closing(_connect(path)) as conn, conn:
        data = report.to_dict()
        run_id = conn.execute("INSERT INTO runs (finished, report) VALUES (?, ?)", (finished, json.dumps(data))).lastrowid
        conn.executemany(
            "INSERT INTO source_runs (source, run_id, finished, counts) VALUES (?, ?, ?, ?)",
            [(source, run_id, finished, json.dumps(counts)) for source, counts in data["per_source"].items()],
        )


def last_run(path: Path) -> LoggedRun | None:
    if not path.exists():
        return None
    with closing(_connect(path)) as conn:
        row = conn.execute("SELECT finished, report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return LoggedRun(row[0], RunReport.from_dict(json.loads(row[1]))) if row else None


def last_source_runs(path: Path) -> dict[str, LoggedRun]:
    """For every source that ever ran: its most recent run's finish time and counts."""
    if not path.exists():
        return {}
    with closing(_connect(path)) as conn:
        rows = conn.execute(
            "SELECT source, finished, counts FROM source_runs s WHERE run_id = "
            "(SELECT MAX(run_id) FROM source_runs WHERE source = s.source) ORDER BY source"
        ).fetchall()
    return {source: LoggedRun(finished, SourceReport.from_dict(json.loads(counts))) for source, finished, counts in rows}


def added_after(path: Path, after_id: int) -> list[AddedDocument]:
    """The journal's entries after entry `after_id`, oldest first."""
    if not path.exists():
        return []
    with closing(_connect(path)) as conn:
        rows = conn.execute(
            "SELECT id, at, doc_key, version, doc_id FROM added_documents WHERE id > ? ORDER BY id", (after_id,)
        ).fetchall()
    return [AddedDocument(*row) for row in rows]


def last_added_id(path: Path) -> int:
    """The newest journal entry's id (0 when there is none): where a reader that starts now begins."""
    if not path.exists():
        return 0
    with closing(_connect(path)) as conn:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM added_documents").fetchone()[0]


class HttpState:
    """The run's connection to state.sqlite: validators and feed entries, and the journal of added documents."""

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

    def record_added(self, documents: list[tuple[str, str, str]]) -> None:
        """Journal documents (doc_key, version, doc_id) about to be added to the index."""
        if not documents:
            return
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.conn:
            self.conn.executemany(
                "INSERT INTO added_documents (at, doc_key, version, doc_id) VALUES (?, ?, ?, ?)",
                [(at, *d) for d in documents],
            )
