"""The digest of new articles: after each scheduled ingest run, one message per digest channel ("N new articles on
the story"), each article announced once per channel.

**What is new.** The ingest journals every document it adds to the index (ingest.runlog: added, not a new version
of a stored one; a syndicated copy is stored as an alternate of the first copy, never added). Each channel has a
cursor into that journal, so a run reads only the entries added since the last one, never the whole index. A
channel's cursor starts at the end of the journal when the digest is turned on for it (nothing already in the index
is announced) or, on a fresh index, after the first run (its first ingest is the back catalogue, not news).
Articles added by a plain `dealbot ingest` between two scheduled runs are announced after the next scheduled run.

**Exactly once, nothing lost.** An outbox in the state database (bot/state.py) holds one row per (channel, doc_id). New entries are
queued as pending in the transaction that advances the cursor. Before posting, the rows to post are claimed under a
fresh digest id in one transaction; after Slack accepts the message they are marked posted. A post that fails stays
pending and goes out with the next run's digest. When the outcome of a post is unknown (a timeout, a 5xx, a
dropped connection: Slack may have accepted it), the next run first looks for the message in the channel's history
by the digest id it carries in its Slack message metadata, and marks it posted if it is there instead of posting
it again. A doubled post therefore needs Slack to accept a message and then not list it in the channel's history.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, Sequence

from ingest import runlog
from ingest.index import Index
from ingest.settings import Settings

from . import metrics, story
from .state import Database, slack_state
from .story import StoryArticle

log = logging.getLogger("dealbot.digest")

# A post's outcome is looked for in the channel's history from this long before it was attempted (clock skew).
HISTORY_MARGIN_SECONDS = 60.0


class DeliveryError(Exception):
    """Posting (or checking) a digest failed. `uncertain`: Slack may have accepted the post all the same."""

    def __init__(self, reason: str, uncertain: bool):
        super().__init__(reason)
        self.uncertain = uncertain


class Poster(Protocol):
    """Where digests go (bot.slack.digest.SlackDigestPoster): raises DeliveryError on failure."""

    def post(self, channel: str, digest_id: str, articles: Sequence[StoryArticle], max_items: int) -> str:
        """Post one digest message listing `articles`; return its message ts."""

    def find(self, channel: str, digest_id: str, since: float) -> str | None:
        """The ts of the digest `digest_id` if the channel has it (posted after `since`, epoch seconds)."""


@dataclass(frozen=True)
class Preview:
    """What the next digest would post to one channel (`dealbot digest --dry-run`)."""

    channel: str
    articles: tuple[StoryArticle, ...]
    max_items: int
    note: str = ""

    def to_dict(self) -> dict:
        return {"channel": self.channel, "count": len(self.articles), "articles": [a.to_dict() for a in self.articles],
                "more": max(0, len(self.articles) - self.max_items), "note": self.note or None}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS digest_cursors (
    channel TEXT PRIMARY KEY,
    after_id INTEGER,  -- the last journal entry taken; NULL: start after the next run (a fresh index)
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS digest_items (
    channel TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'gone')),
    queued_at TEXT NOT NULL,
    digest_id TEXT,  -- set when a post of it is attempted
    attempted_at REAL,
    posted_at TEXT,
    message_ts TEXT,
    title TEXT, url TEXT, outlet TEXT, published TEXT,
    PRIMARY KEY (channel, doc_id)
)
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Outbox:
    """The digest's state in the state database (slack.sqlite, or state_url's): each channel's cursor into the
    journal, and one row per article and channel (pending, posted or gone). Every decision is one transaction."""

    def __init__(self, path: Path | Database):
        self.db = path if isinstance(path, Database) else Database(path, dicts=True)
        self.path = self.db.path
        self.db.create(_SCHEMA)

    def _transaction(self, work):
        with self.db.transaction(exclusive=True) as conn:
            return work(conn)

    def _read(self, sql: str, args: tuple = ()) -> list[dict]:
        return self.db.query(sql, args)

    def cursors(self) -> dict[str, int | None]:
        return {r["channel"]: r["after_id"] for r in self._read("SELECT channel, after_id FROM digest_cursors")}

    def start(self, channels: Sequence[str], start_id: int | None) -> None:
        """Give each channel not seen before a cursor at `start_id` (None: after the next run). A channel no longer
        configured forgets its cursor and what was still pending for it, so turning it on again starts afresh."""

        def work(conn):
            marks = ",".join("?" * len(channels)) or "SELECT '' WHERE 1 = 0"  # no channel: forget every one
            conn.execute(f"DELETE FROM digest_cursors WHERE channel NOT IN ({marks})", tuple(channels))
            conn.execute(f"DELETE FROM digest_items WHERE status != 'posted' AND channel NOT IN ({marks})", tuple(channels))
            conn.executemany(
                "INSERT INTO digest_cursors (channel, after_id, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(c, start_id, _now()) for c in channels],
            )

        self._transaction(work)

    def enqueue(self, entries: Sequence[runlog.AddedDocument], baseline_id: int) -> None:
        """Queue the journal entries past each channel's cursor as pending and move the cursor past them, in one
        transaction; a cursor waiting for its first run moves to `baseline_id` instead. An article that left the
        index before it was announced and came back is pending again."""
        now = _now()
        end = max((e.id for e in entries), default=0)

        def work(conn):
            for cursor in conn.execute("SELECT channel, after_id FROM digest_cursors").fetchall():
                channel, after = cursor["channel"], cursor["after_id"]
                if after is not None:
                    conn.executemany(
                        "INSERT INTO digest_items (channel, doc_id, doc_key, status, queued_at) "
                        "VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (channel, doc_id) DO UPDATE SET "
                        "doc_key = excluded.doc_key, status = 'pending', digest_id = NULL, attempted_at = NULL "
                        "WHERE digest_items.status = 'gone'",
                        [(channel, e.doc_id, e.doc_key, now) for e in entries if e.id > after],
                    )
                moved = baseline_id if after is None else max(after, end)
                conn.execute("UPDATE digest_cursors SET after_id = ? WHERE channel = ?", (moved, channel))

        self._transaction(work)

    def rewind(self, journal_end: int) -> None:
        """Cursors past the journal's end (it was replaced) go back to its start."""
        self._transaction(lambda conn: conn.execute(
            "UPDATE digest_cursors SET after_id = 0 WHERE after_id > ?", (journal_end,)))

    def pending(self, channel: str) -> list[dict]:
        return self._read(
            "SELECT doc_id, doc_key, digest_id, attempted_at FROM digest_items WHERE channel = ? AND status = 'pending' "
            "ORDER BY queued_at, doc_id", (channel,)
        )

    def claim(self, channel: str, digest_id: str, articles: Sequence[StoryArticle]) -> None:
        """Decide to post `articles` to `channel` as digest `digest_id`: recorded before the post is sent."""
        attempted = time.time()

        def work(conn):
            conn.executemany(
                "UPDATE digest_items SET digest_id = ?, attempted_at = ?, title = ?, url = ?, outlet = ?, published = ? "
                "WHERE channel = ? AND doc_id = ? AND status = 'pending'",
                [(digest_id, attempted, a.title, a.url, a.outlet, a.published, channel, a.doc_id) for a in articles],
            )

        self._transaction(work)

    def posted(self, channel: str, digest_id: str, ts: str) -> None:
        self._transaction(lambda conn: conn.execute(
            "UPDATE digest_items SET status = 'posted', posted_at = ?, message_ts = ? "
            "WHERE channel = ? AND digest_id = ? AND status = 'pending'", (_now(), ts, channel, digest_id)
        ))

    def release(self, channel: str, digest_id: str) -> None:
        """The post of `digest_id` certainly failed: its articles wait for the next digest, no history check."""
        self._transaction(lambda conn: conn.execute(
            "UPDATE digest_items SET digest_id = NULL, attempted_at = NULL "
            "WHERE channel = ? AND digest_id = ? AND status = 'pending'", (channel, digest_id)
        ))

    def gone(self, channel: str, doc_ids: Sequence[str]) -> None:
        """These pending articles are no longer in the index: nothing to announce."""
        self._transaction(lambda conn: conn.executemany(
            "UPDATE digest_items SET status = 'gone' WHERE channel = ? AND doc_id = ? AND status = 'pending'",
            [(channel, d) for d in doc_ids],
        ))

    def announcements(self) -> list[dict]:
        """Every article queued for a channel, oldest first, with its status, when it was posted and where."""
        rows = self._read(
            "SELECT channel, doc_id, status, queued_at, posted_at, message_ts, digest_id, title, url, outlet, published "
            "FROM digest_items ORDER BY queued_at, channel, doc_id"
        )
        return [dict(r) for r in rows]


class Digest:
    """The digest service of one process: `start` once, then `after_run` after each scheduled ingest run."""

    def __init__(self, settings: Settings, poster: Poster | None, index: Index | None = None):
        self.settings = settings
        self.poster = poster
        self.channels = settings.digest.channels
        self.outbox = Outbox(slack_state(settings, dicts=True))
        self._index = index

    @property
    def index(self) -> Index:
        """The index, opened again while it does not exist yet (a fresh index is created by the first run)."""
        if self._index is None or self._index.collection is None:
            from ingest.store import open_index

            self._index = open_index(self.settings)
        return self._index

    def start(self, fresh_index: bool) -> None:
        """Begin the digest for channels that had none: at the end of the journal, or after the next run when the
        index is fresh (so neither the back catalogue nor a first ingest is announced)."""
        self.outbox.start(self.channels, None if fresh_index else runlog.last_added_id(self.settings.state_db))

    def after_run(self) -> str:
        """Queue what the run added, then post one digest per channel with anything pending. Returns what was
        done, for the schedule's log line ("" when there was nothing to post)."""
        baseline = runlog.last_added_id(self.settings.state_db)  # read first: entries journaled meanwhile are kept
        cursors = self.outbox.cursors()
        if any(c is not None and c > baseline for c in cursors.values()):
            log.warning("the journal of added documents in %s starts again below the digest's place in it (the file "
                        "was replaced?): reading it from its start", self.settings.state_db)
            self.outbox.rewind(baseline)
            cursors = self.outbox.cursors()
        known = [c for c in cursors.values() if c is not None]
        entries = runlog.added_after(self.settings.state_db, min(known)) if known else []
        self.outbox.enqueue(entries, baseline)
        return "; ".join(filter(None, (self._deliver(channel) for channel in self.channels)))

    def _deliver(self, channel: str) -> str:
        try:
            self._confirm_earlier_attempts(channel)
        except DeliveryError as exc:
            log.warning("digest for %s: could not check whether an earlier post arrived (%s); trying again at the "
                        "next run", channel, exc)
            return f"{channel}: not posted ({exc}), kept for the next run"
        articles = self._pending_articles(channel)
        if not articles:
            return ""
        digest_id = uuid.uuid4().hex
        self.outbox.claim(channel, digest_id, articles)
        try:
            ts = self.poster.post(channel, digest_id, articles, self.settings.digest.max_items)
        except DeliveryError as exc:
            if not exc.uncertain:
                self.outbox.release(channel, digest_id)
            metrics.DIGEST_POSTS.labels("failed").inc()
            log.warning("digest for %s: posting %d new articles failed (%s); kept for the next run",
                        channel, len(articles), exc)
            return f"{channel}: {len(articles)} new articles not posted ({exc}), kept for the next run"
        self.outbox.posted(channel, digest_id, ts)
        metrics.DIGEST_POSTS.labels("posted").inc()
        return f"{channel}: {len(articles)} new article{'s' if len(articles) != 1 else ''} posted"

    def _confirm_earlier_attempts(self, channel: str) -> None:
        """Mark posted the earlier digests whose post may have reached Slack and did (found in the history)."""
        attempts: dict[str, float] = {}
        for row in self.outbox.pending(channel):
            if row["digest_id"]:
                attempts[row["digest_id"]] = min(attempts.get(row["digest_id"], row["attempted_at"]), row["attempted_at"])
        for digest_id, attempted in attempts.items():
            ts = self.poster.find(channel, digest_id, attempted - HISTORY_MARGIN_SECONDS)
            if ts:
                log.info("digest for %s: the earlier post %s did arrive (ts %s)", channel, digest_id, ts)
                self.outbox.posted(channel, digest_id, ts)

    def _pending_articles(self, channel: str) -> list[StoryArticle]:
        rows = self.outbox.pending(channel)
        if not rows:
            return []
        found = {a.doc_key: a for a in story.articles(self.index, [r["doc_key"] for r in rows])}
        missing = [r["doc_id"] for r in rows if r["doc_key"] not in found]
        if missing:  # removed from the index (or folded into a copy) before it could be announced
            self.outbox.gone(channel, missing)
        return story.chronological(found.values())

    def preview(self) -> list[Preview]:
        """What the next digest would post to each channel, without posting or recording anything."""
        cursors = self.outbox.cursors()
        previews = []
        for channel in self.channels:
            after = cursors.get(channel)
            if after is None:
                previews.append(Preview(channel, (), self.settings.digest.max_items,
                                        "the digest starts at the next scheduled run: nothing already in the index "
                                        "is announced"))
                continue
            keys = [r["doc_key"] for r in self.outbox.pending(channel)]
            keys += [e.doc_key for e in runlog.added_after(self.settings.state_db, after)]
            found = story.chronological(story.articles(self.index, keys)) if keys else []
            previews.append(Preview(channel, tuple(found), self.settings.digest.max_items))
        return previews


def announce_new_articles(digest: Digest | None) -> str:
    """The digest step of a scheduled ingest run: never raises (the schedule goes on); returns "; digest: ..." for
    the run's log line, or "" when there was nothing to post."""
    if digest is None:
        return ""
    try:
        done = digest.after_run()
    except Exception as exc:  # a broken digest must not stop the ingest schedule; what is pending stays pending
        log.exception("the digest of new articles failed")
        return f"; digest failed: {type(exc).__name__}"
    return f"; digest: {done}" if done else ""
