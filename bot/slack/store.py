"""What the Slack bot keeps, in the state database (bot/state.py: SQLite in the data directory, or the PostgreSQL
database of `state_url` that replicas share): questions already taken (so a retried event is answered once, across
restarts and replicas), the replies not yet delivered (so an answer survives a failing Web API and a restart), the
answers it sent, feedback on them, and the channels it has already told that it is not enabled there."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ingest.settings import Settings

from ..serialise import answer_from_record, answer_record, feedback_citation
from ..state import Database, slack_state
from ..types import Answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taken (key TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, channel TEXT, "user" TEXT, question TEXT NOT NULL,
    answer TEXT NOT NULL, answered INTEGER NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    job TEXT NOT NULL, created REAL NOT NULL, deadline REAL NOT NULL, next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, owner TEXT, lease_until REAL NOT NULL DEFAULT 0, error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, answer_id INTEGER NOT NULL REFERENCES answers(id),
    "user" TEXT, channel TEXT, vote TEXT NOT NULL CHECK (vote IN ('up', 'down'))
)
"""


class SlackStore:
    def __init__(self, path: Path | Database):
        self.db = path if isinstance(path, Database) else Database(path)
        self.path = self.db.path
        self.db.create(_SCHEMA)

    @classmethod
    def of(cls, settings: Settings) -> "SlackStore":
        """The store of `settings`: the state_url's database, else slack.sqlite in the data directory."""
        return cls(slack_state(settings))

    def _write(self, sql: str, args: tuple) -> int:
        return self.db.execute(sql, args)

    def take(self, key: str) -> bool:
        """True the first time `key` is seen, False ever after: the one place retries are told from new work."""
        return self._write("INSERT INTO taken (key, at) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, time.time())) == 1

    # Deliveries: every reply is a row until Slack took it. Whoever works on one holds its lease (owner and
    # lease_until), so one replica or thread at a time does; a row whose owner died is taken over.

    def enqueue(self, key: str, job: dict, window: float, owner: str, lease: float, taken: str | None = None) -> bool:
        """Keep a reply to deliver within `window` seconds, leased to `owner`; with `taken`, only if that key was
        never taken before (one transaction: a question is both taken and queued, or neither). False if not new."""
        now = time.time()
        with self.db.transaction() as conn:
            if taken and conn.execute("INSERT INTO taken (key, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                      (taken, now)).rowcount == 0:
                return False
            inserted = conn.execute(
                "INSERT INTO deliveries (key, state, job, created, deadline, next_at, owner, lease_until) "
                "VALUES (?, 'pending', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, json.dumps(job), now, now + window, now, owner, now + lease),
            ).rowcount
            return inserted == 1

    def claim_due(self, owner: str, lease: float, limit: int = 50) -> list["Delivery"]:
        """Pending deliveries due now that nobody holds (or whose holder died), leased to `owner`, oldest due first."""
        now = time.time()
        rows = self.db.query(
            "SELECT key, owner, lease_until FROM deliveries WHERE state = 'pending' AND next_at <= ? "
            "ORDER BY next_at LIMIT ?", (now, limit * 2),
        )
        keys = [key for key, holder, until in rows if until < now or _gone(holder)]
        return [d for d in (self.claim(key, owner, lease, force=True) for key in keys[:limit]) if d is not None]

    def claim(self, key: str, owner: str, lease: float, force: bool = False) -> "Delivery | None":
        """Lease one pending delivery to `owner` if nobody else holds it (`force`: also if its holder died).

        The lease is taken by a compare-and-set on the holder and lease read, so of two replicas claiming one
        delivery at once the database lets one through."""
        now = time.time()
        row = next(iter(self.db.query(
            "SELECT owner, lease_until, job, deadline, attempts FROM deliveries WHERE key = ? AND state = 'pending'",
            (key,),
        )), None)
        if row is None or (row[1] >= now and not (force and _gone(row[0]))):  # held, even by this process
            return None
        won = self._write(
            "UPDATE deliveries SET owner = ?, lease_until = ? WHERE key = ? AND state = 'pending' "
            "AND COALESCE(owner, '') = ? AND lease_until = ?",
            (owner, now + lease, key, row[0] or "", row[1]),
        )
        return Delivery(key, json.loads(row[2]), row[3], row[4]) if won == 1 else None

    def renew(self, key: str, owner: str, lease: float) -> bool:
        """Extend `owner`'s lease on a pending delivery; False if it is finished or another holder took it."""
        return self._write(
            "UPDATE deliveries SET lease_until = ? WHERE key = ? AND owner = ? AND state = 'pending'",
            (time.time() + lease, key, owner),
        ) == 1

    def save(self, delivery: "Delivery", owner: str, lease: float) -> None:
        """Record how far a delivery got (its job), renewing the lease."""
        self._write(
            "UPDATE deliveries SET job = ?, lease_until = ? WHERE key = ? AND owner = ?",
            (json.dumps(delivery.job), time.time() + lease, delivery.key, owner),
        )

    def postpone(self, delivery: "Delivery", owner: str, wait: float, error: str) -> None:
        """Release a delivery that failed this time; it is due again in `wait` seconds."""
        self._write(
            "UPDATE deliveries SET job = ?, attempts = attempts + 1, next_at = ?, lease_until = 0, error = ? "
            "WHERE key = ? AND owner = ?",
            (json.dumps(delivery.job), time.time() + wait, error[:500], delivery.key, owner),
        )

    def release(self, delivery: "Delivery", owner: str) -> None:
        """Give a delivery back untouched (its holder is stopping): anyone may take it now."""
        self._write("UPDATE deliveries SET job = ?, lease_until = 0 WHERE key = ? AND owner = ?",
                    (json.dumps(delivery.job), delivery.key, owner))

    def close_delivery(self, delivery: "Delivery", owner: str, state: str, error: str = "") -> None:
        """The end of a delivery: 'delivered', or 'failed' (given up after its window)."""
        self._write(
            "UPDATE deliveries SET state = ?, job = ?, lease_until = 0, error = ? WHERE key = ? AND owner = ?",
            (state, json.dumps(delivery.job), error[:500] or None, delivery.key, owner),
        )

    def release_all(self, owner: str) -> None:
        self._write("UPDATE deliveries SET lease_until = 0 WHERE owner = ? AND state = 'pending'", (owner,))

    def hurry(self) -> None:
        """Make every pending delivery due now (Slack answers again: no reason to wait out the back-off)."""
        self._write("UPDATE deliveries SET next_at = ? WHERE state = 'pending' AND next_at > ?", (time.time(),) * 2)

    def next_due(self) -> float | None:
        return self.db.query("SELECT MIN(next_at) FROM deliveries WHERE state = 'pending'")[0][0]

    def delivery_counts(self) -> dict[str, int]:
        """Deliveries by state: 'pending' (still being retried), 'delivered', 'failed' (given up)."""
        rows = self.db.query("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        return {"pending": 0, "delivered": 0, "failed": 0} | dict(rows)

    def prune_deliveries(self, older_than: float) -> None:
        """Forget finished deliveries older than `older_than` seconds (the answers themselves stay)."""
        self._write("DELETE FROM deliveries WHERE state != 'pending' AND created < ?", (time.time() - older_than,))

    def record_answer(self, answer: Answer, channel: str | None, user: str | None) -> int:
        """Keep an answer sent (bot.serialise's record of it), to show it again and to export its feedback."""
        with self.db.transaction() as conn:
            row = conn.execute(
                'INSERT INTO answers (at, channel, "user", question, answer, answered, payload) '
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (time.time(), channel, user, answer.question, answer.text, int(answer.answered),
                 json.dumps(answer_record(answer))),
            ).fetchone()
        return int(row[0])

    def answer(self, answer_id: int) -> Answer | None:
        """The answer kept under `answer_id`, or None."""
        rows = self.db.query("SELECT payload FROM answers WHERE id = ?", (answer_id,))
        return answer_from_record(json.loads(rows[0][0])) if rows else None

    def record_feedback(self, answer_id: int, user: str | None, channel: str | None, vote: str) -> None:
        self._write(
            'INSERT INTO feedback (at, answer_id, "user", channel, vote) VALUES (?, ?, ?, ?, ?)',
            (time.time(), answer_id, user, channel, vote),
        )

    def votes_since(self, since: float) -> dict[str, int]:
        """How many 👍 ("up") and 👎 ("down") were given after `since` (epoch seconds)."""
        rows = self.db.query("SELECT vote, COUNT(*) FROM feedback WHERE at >= ? GROUP BY vote", (since,))
        return {"up": 0, "down": 0, **dict(rows)}

    def feedback(self) -> list[dict]:
        """Every vote with the question, answer and citations it was about, oldest first."""
        rows = self.db.query(
            'SELECT f.id, f.at, f.vote, f."user", f.channel, a.question, a.answer, a.payload '
            "FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id"
        )
        out = []
        for id_, at, vote, user, channel, question, answer, payload in rows:
            record = {"id": id_, "vote": vote, "user": user, "channel": channel, "question": question, "answer": answer}
            record["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            record["citations"] = [feedback_citation(c) for c in answer_from_record(json.loads(payload)).citations]
            out.append(record)
        return out


@dataclass
class Delivery:
    """A reply on its way: `job` says what to send where and how far it got (see bot/slack/delivery.py)."""

    key: str
    job: dict
    deadline: float
    attempts: int = 0


def new_owner() -> str:
    """Who holds a lease: this host and process, and a unique id (a process may run more than one app)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _gone(owner: str | None) -> bool:
    """Whether a lease's holder is a process of this host that no longer runs (killed, crashed)."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
