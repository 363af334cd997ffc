"""What the Slack bot keeps, in SQLite in the data directory: questions already taken (so a retried event is answered
once, across restarts and replicas sharing the file), the answers it sent, feedback on them, and the channels it
has already told that it is not enabled there."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from ..types import Answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taken (key TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, channel TEXT, user TEXT, question TEXT NOT NULL,
    answer TEXT NOT NULL, answered INTEGER NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, answer_id INTEGER NOT NULL REFERENCES answers(id),
    user TEXT, channel TEXT, vote TEXT NOT NULL CHECK (vote IN ('up', 'down'))
);
"""


class SlackStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        with self._lock, closing(self._connect()) as conn, conn:
            return conn.execute(sql, args)

    def take(self, key: str) -> bool:
        """True the first time `key` is seen, False ever after: the one place retries are told from new work."""
        return self._write("INSERT OR IGNORE INTO taken (key, at) VALUES (?, ?)", (key, time.time())).rowcount == 1

    def record_answer(self, answer: Answer, channel: str | None, user: str | None, payload: dict) -> int:
        cur = self._write(
            "INSERT INTO answers (at, channel, user, question, answer, answered, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), channel, user, answer.question, answer.text, int(answer.answered), json.dumps(payload)),
        )
        return int(cur.lastrowid)

    def answer_payload(self, answer_id: int) -> dict | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT payload FROM answers WHERE id = ?", (answer_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_feedback(self, answer_id: int, user: str | None, channel: str | None, vote: str) -> None:
        self._write(
            "INSERT INTO feedback (at, answer_id, user, channel, vote) VALUES (?, ?, ?, ?, ?)",
            (time.time(), answer_id, user, channel, vote),
        )

    def votes_since(self, since: float) -> dict[str, int]:
        """How many 👍 ("up") and 👎 ("down") were given after `since` (epoch seconds)."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT vote, COUNT(*) FROM feedback WHERE at >= ? GROUP BY vote", (since,)).fetchall()
        return {"up": 0, "down": 0, **dict(rows)}

    def feedback(self) -> list[dict]:
        """Every vote with the question, answer and citations it was about, oldest first."""
        with closing(self._connect()) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT f.id, f.at, f.vote, f.user, f.channel, a.question, a.answer, a.payload "
                "FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id"
            ).fetchall()
        out = []
        for r in rows:
            record = {k: r[k] for k in ("id", "vote", "user", "channel", "question", "answer")}
            record["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["at"]))
            record["citations"] = json.loads(r["payload"])["citations"]
            out.append(record)
        return out
