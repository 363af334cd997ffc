"""The inbox of `dealbot serve --http`: Slack events the HTTP front (bot/slack/front.py) acknowledged and the bot's
process (bot/slack/relay.py) has not yet taken in.

A SQLite file of the data directory (slack-inbox.sqlite), apart from the shared state: it belongs to this pair of
processes, not to the replicas, and the front's writes never queue behind the bot's. Written in WAL mode with
`synchronous=NORMAL`: a kept event survives either process crashing (not the machine losing power, after which
Slack's own retries of unacknowledged events are what is left).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = ("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, at REAL NOT NULL, body TEXT NOT NULL, "
           "headers TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)")


class Inbox:
    """`checkpoints=False` (the front): this side never copies the log into the file (a checkpoint syncs the disk,
    which would hold up the acknowledgements waiting on a write); the bot's side does it when it removes rows."""

    def __init__(self, path: Path, checkpoints: bool = True):
        self.path, self.checkpoints = path, checkpoints
        self._local = threading.local()
        self._conn().execute(_SCHEMA)

    @classmethod
    def of(cls, settings, checkpoints: bool = True) -> "Inbox":
        return cls(settings.data_dir / "slack-inbox.sqlite", checkpoints)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self.checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
        return conn

    def keep(self, events: list[tuple[str, dict]]) -> None:
        """Keep verified events (body, headers) in one transaction: once this returns they survive a crash."""
        now = time.time()
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO inbox (at, body, headers) VALUES (?, ?, ?)",
                             [(now, body, json.dumps(headers)) for body, headers in events])

    def oldest(self, limit: int = 200) -> list[tuple[int, str, dict]]:
        """The oldest events not yet taken in: (id, body, headers)."""
        rows = self._conn().execute("SELECT id, body, headers FROM inbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(id_, body, json.loads(headers)) for id_, body, headers in rows]

    def failed(self, id_: int) -> int:
        """Count a failed attempt at taking in an event; how many it has had."""
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE inbox SET attempts = attempts + 1 WHERE id = ?", (id_,))
            row = conn.execute("SELECT attempts FROM inbox WHERE id = ?", (id_,)).fetchone()
        return row[0] if row else 0

    def forget(self, ids: list[int]) -> None:
        """Remove events taken in."""
        if ids:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("DELETE FROM inbox WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
