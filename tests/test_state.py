"""The shared state (bot/state.py) on both of its databases: the SQLite file of one machine and a real PostgreSQL on
127.0.0.1. Every exactly-once decision holds under threads racing for it, the records round-trip, the digest's
outbox works the same."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.digest import Outbox
from bot.slack.store import SlackStore
from bot.state import Database, StateError, redact
from bot.types import Answer, Citation
from ingest.runlog import AddedDocument


@pytest.fixture(params=["sqlite", "postgresql"])
def db_factory(request, tmp_path):
    """A function making Database handles on one fresh database of either kind (tuple or dict rows)."""
    if request.param == "sqlite":
        return lambda dicts=False: Database(tmp_path / "slack.sqlite", dicts=dicts)
    url = request.getfixturevalue("postgres").database("state_" + uuid.uuid4().hex[:8])
    return lambda dicts=False: Database(tmp_path / "slack.sqlite", url, dicts=dicts)


def race(n: int, work) -> list:
    """`work(i)` from n threads released at once; their results."""
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_a_key_is_taken_once_whoever_races_for_it(db_factory):
    stores = [SlackStore(db_factory()) for _ in range(2)]  # two handles: as two replicas would hold
    results = race(16, lambda i: stores[i % 2].take("question:C1:1700000000.000100"))
    assert results.count(True) == 1
    queued = race(16, lambda i: stores[i % 2].enqueue(f"question:C1:{i // 16}", {"kind": "thread"}, 600, f"owner{i}", 30,
                                                     taken="question:C1:1700000000.000200"))
    assert queued.count(True) == 1
    assert stores[0].delivery_counts()["pending"] == 1


def test_a_delivery_is_leased_to_one_claimant(db_factory):
    store = SlackStore(db_factory())
    assert store.enqueue("d1", {"kind": "post"}, 600, "gone-owner", lease=0.0)
    time.sleep(0.01)  # the lease has run out: anyone may claim it, but only one does
    claims = race(12, lambda i: store.claim("d1", f"owner{i}", 30))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].job == {"kind": "post"}
    assert store.claim("d1", "late", 30) is None  # held now


def test_answers_and_feedback_round_trip(db_factory):
    store = SlackStore(db_factory())
    cited = Citation(1, "doc1", "T", "s", ("It was signed.",), "https://example.com/t", "O", "2025-06-27")
    first = store.record_answer(Answer("When was it signed?", True), "C1", "U1")
    second = store.record_answer(Answer("again", True, citations=(cited,)), "C2", "U2")
    assert second > first
    assert store.answer(second).question == "again" and store.answer(second).citations == (cited,)
    assert store.answer(999999) is None
    store.record_feedback(second, "U9", "C2", "up")
    store.record_feedback(first, "U8", "C1", "down")
    assert store.votes_since(0) == {"up": 1, "down": 1}
    records = store.feedback()
    assert [(r["vote"], r["user"], r["channel"], r["question"]) for r in records] == [
        ("up", "U9", "C2", "again"), ("down", "U8", "C1", "When was it signed?")]
    assert [c["title"] for c in records[0]["citations"]] == ["T"] and records[1]["citations"] == []
    assert records[0]["at"].endswith("Z")


def test_the_digest_outbox_on_either_database(db_factory):
    from bot.story import StoryArticle

    outbox = Outbox(db_factory(dicts=True))
    outbox.start(["C1", "C2"], 0)
    entries = [AddedDocument(i, "2026-11-29T10:00:00+00:00", f"key{i}", "v1", f"doc{i}") for i in (1, 2)]
    outbox.enqueue(entries, 2)
    outbox.enqueue(entries, 2)  # the same entries again: nothing doubles
    assert [r["doc_id"] for r in outbox.pending("C1")] == ["doc1", "doc2"]
    assert outbox.cursors() == {"C1": 2, "C2": 2}
    article = StoryArticle(doc_id="doc1", doc_key="key1", title="T", outlet="O", published="2025-06-27", url=None,
                           source="s", lead="L")
    outbox.claim("C1", "digest-1", [article])
    outbox.posted("C1", "digest-1", "1700000000.000100")
    assert [r["doc_id"] for r in outbox.pending("C1")] == ["doc2"]
    posted = [r for r in outbox.announcements() if r["status"] == "posted"]
    assert [(r["channel"], r["doc_id"], r["message_ts"]) for r in posted] == [("C1", "doc1", "1700000000.000100")]
    outbox.start(["C1"], 0)  # C2 is no longer configured: it forgets its cursor and what it had pending
    assert set(outbox.cursors()) == {"C1"}


def test_an_unreachable_database_is_one_clear_error_without_the_password(tmp_path):
    from conftest import free_port

    url = f"postgresql://dealbot:hunter2-secret@127.0.0.1:{free_port()}/dealbot"
    with pytest.raises(StateError) as caught:
        SlackStore(Database(tmp_path / "x.sqlite", url))
    message = str(caught.value)
    assert "cannot connect" in message and "hunter2-secret" not in message and "dealbot:***@127.0.0.1" in message
    assert redact(url) == url.replace("hunter2-secret", "***")
