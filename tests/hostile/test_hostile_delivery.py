"""Slack never leaves a user hanging: every request is acknowledged before any work (a starved answer pool, a hanging
Web API), and every reply survives the Web API failing (429 past the retries, 5xx, hangs, lost responses, a broken
chat.update, a restart) -- delivered once when Slack is back, or the user told, never answered twice, never a
placeholder left. Bursts with Slack's retries are answered exactly once. Messages stay within Slack's limits.

Retry windows are short here (settings), so each failure lasts seconds, not minutes."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from _slack_inputs import SECRET, answered, final, running_bot, sent_text, wait_until, within_slack_limits
from bot.slack.blocks import WORKING, BlockLimits, answer_message, link_target, source_line
from bot.slack.delivery import UNDELIVERED
from bot.slack.store import SlackStore
from bot.types import NOT_FOUND, Answer, Citation, Sentence
from conftest import DEALBOT, ROOT
from slack_fakes import (FakeSlackAPI, app_mention, block_actions, event_callback, message_im, post_action, post_event,
                         post_form, slash_command)

FAST = {"api_timeout_seconds": 1, "delivery_backoff_seconds": 0.2, "delivery_window_seconds": 60}


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(autouse=True)
def _fresh_fake(fake):
    fake.reset()


@pytest.fixture
def bot(sample_pipeline, fake, tmp_path):
    with running_bot(sample_pipeline, fake, tmp_path / "bot", **FAST) as running:
        yield running


def mention(url: str, channel: str, text: str = "When was the deal signed?", retry: int | None = None) -> dict:
    event = app_mention(text, channel=channel)
    status, _ = post_event(url, event_callback(event), SECRET, retry_num=retry)
    assert status == 200
    return event


def once_each(fake, events: list[dict], timeout: float = 60) -> None:
    """Every question answered exactly once: one message in its thread, not the placeholder, and nothing else ever
    posted there but a placeholder that was removed."""
    for event in events:
        channel, ts = event["channel"], event["ts"]
        shown = answered(fake, channel, ts, timeout)
        assert len(shown) == 1, shown
        within_slack_limits(shown[0])
        assert "feedback_up" in sent_text(shown[0]["blocks"]) or shown[0]["text"] == NOT_FOUND
        ever = fake.posted(channel, ts)
        extra = [m for m in ever if m["ts"] != shown[0]["ts"]]
        assert all(m.get("deleted") and m["text"] == WORKING for m in extra), ever


def pending(settings) -> int:
    return SlackStore(settings.slack_db).delivery_counts()["pending"]


# ---------------------------------------------------------------- the Web API failing

@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_an_outage_loses_no_answer_and_answers_none_twice(bot, fake, status):
    """The issue's rows: 429 past the retries (8 of 10 lost) and 500 (10 of 10 lost) for a while."""
    url, settings, _ = bot
    fake.outage("*", seconds=3, status=status, retry_after=1)
    events = [mention(url, f"C-out-{status}-{i}") for i in range(10)]
    assert pending(settings) >= 1
    once_each(fake, events)
    wait_until(lambda: pending(settings) == 0, 10, "no reply pending")
    assert SlackStore(settings.slack_db).delivery_counts()["failed"] == 0


def test_a_failing_chat_update_posts_the_answer_anew_and_removes_the_placeholder(bot, fake):
    """The issue's row: chat.update answering 500 left 10 placeholders stuck on "Looking through the articles…"."""
    url, settings, _ = bot
    fake.outage("chat.update", seconds=120, status=500)
    events = [mention(url, f"C-upd-{i}") for i in range(10)]
    once_each(fake, events)  # no placeholder left: each was deleted (or, Slack failing already, never posted)
    removed = [m for e in events for m in fake.posted(e["channel"], e["ts"]) if m.get("deleted")]
    assert removed and all(m["text"] == WORKING for m in removed)
    wait_until(lambda: pending(settings) == 0, 10, "no reply pending")


def test_a_hanging_api_delays_answers_without_losing_any(bot, fake):
    """The issue's row: hanging 30 s lost 4 of 10 and made the rest ~60 s late. Here every call hangs for 2 s (the
    timeout is 1 s) during 4 s; acks never wait, and every answer arrives once soon after."""
    url, settings, _ = bot
    fake.outage("*", seconds=4, hang=2, status=503)
    started = time.monotonic()
    acks = []
    events = []
    for i in range(10):
        t = time.monotonic()
        events.append(mention(url, f"C-hang-{i}"))
        acks.append(time.monotonic() - t)
    assert max(acks) < 1.0, acks
    once_each(fake, events, timeout=40)
    assert time.monotonic() - started < 40


def test_a_post_whose_response_was_lost_is_found_not_posted_again(bot, fake):
    """Slack posted the message, but the answer never came back (the call timed out): the bot finds its message by
    the delivery's metadata and updates it instead of posting a second one."""
    url, settings, _ = bot
    fake.outage("chat.postMessage", seconds=2, hang=1.6, applied=True)
    events = [mention(url, f"C-lost-{i}") for i in range(3)]
    once_each(fake, events, timeout=40)
    for event in events:
        assert len(fake.posted(event["channel"], event["ts"])) == 1  # never a second message
    lookups = fake.calls_to("conversations.replies")
    assert lookups and all(c.args.get("include_all_metadata") in ("1", "true", True) for c in lookups)


def test_a_dm_answered_at_its_top_level_is_found_too_after_a_lost_response(bot, fake):
    url, settings, _ = bot
    fake.outage("chat.postMessage", seconds=2, hang=1.6, applied=True)
    event = message_im("What share of rare earths comes from China?", channel="D-lost")
    post_event(url, event_callback(event), SECRET)
    shown = wait_until(lambda: final(fake, "D-lost", None), 40, "the DM answer")
    time.sleep(0.5)
    assert len(fake.posted("D-lost", None)) == 1 and "Sixty percent" in shown[0]["text"]
    assert fake.calls_to("conversations.history")


def test_past_the_delivery_window_the_user_is_told_once(sample_pipeline, fake, tmp_path):
    with running_bot(sample_pipeline, fake, tmp_path / "bot", **{**FAST, "delivery_window_seconds": 1.5}) as (url, settings, _):
        fake.outage("*", seconds=2.5, status=500)  # past the window (1.5 s), back before the apology's ends (3 s)
        event = mention(url, "C-late")
        shown = answered(fake, "C-late", event["ts"], timeout=30)
        assert [m["text"] for m in shown] == [UNDELIVERED.format(minutes=1)]
        assert [m for m in fake.posted("C-late", event["ts"]) if not m.get("deleted")] == shown
        counts = wait_until(lambda: (c := SlackStore(settings.slack_db).delivery_counts())["failed"] and c, 10, "given up")
        assert counts["pending"] == 0 and counts["failed"] == 1


def test_pending_replies_survive_a_restart_and_show_in_status(sample_pipeline, fake, tmp_path):
    data = tmp_path / "bot"
    fake.outage("*", seconds=3600, status=500)
    with running_bot(sample_pipeline, fake, data, **FAST) as (url, settings, _):
        event = mention(url, "C-restart")
        wait_until(lambda: pending(settings) == 1, 10, "the reply pending")
    status = _status(settings.data_dir)
    assert status["slack_pending"] == 1 and status["slack_undelivered"] == 0
    assert {"index", "model", "documents", "passages", "schedule", "sources", "last_run", "llm_model"} <= set(status)
    fake.end_outages()
    assert final(fake, "C-restart", event["ts"]) == []
    with running_bot(sample_pipeline, fake, data, **FAST) as (url, settings, _):
        once_each(fake, [event])
        wait_until(lambda: pending(settings) == 0, 10, "nothing pending")
    assert _status(settings.data_dir)["slack_pending"] == 0


def _status(data_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    run = subprocess.run([str(DEALBOT), "status", "--json"], env={**env, "DEALBOT_DATA_DIR": str(data_dir)},
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_failing_response_url_delivers_the_private_answer_once_it_is_back(bot, fake):
    url, settings, _ = bot
    fake.outage("response_url", seconds=2, status=500)
    status, ack = post_form(url, slash_command("When was the deal signed?", response_url=fake.response_url("late")), SECRET)
    assert status == 200 and WORKING in ack
    shown = wait_until(lambda: fake.ephemeral("late"), 30, "the private answer")
    time.sleep(0.5)
    assert len(fake.ephemeral("late")) == 1 and "signed" in shown[0]["text"]
    assert [c.status for c in fake.calls_to("response_url")][-1] == 200


# ---------------------------------------------------------------- acks first

def test_acks_never_wait_for_busy_answer_workers(sample_pipeline, fake, tmp_path, monkeypatch):
    """The issue's row: /dealbot and a 👍 click while the answer workers were busy got no ack within 3 s."""
    release = threading.Event()
    real_ask = sample_pipeline.ask

    def slow_ask(*args, **kwargs):
        release.wait(60)
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(sample_pipeline, "ask", slow_ask)
    with running_bot(sample_pipeline, fake, tmp_path / "bot", workers=2, **FAST) as (url, settings, _):
        busy = [mention(url, f"C-busy-{i}") for i in range(4)]  # both workers stuck, two more waiting
        timings = {}
        for name, send in {
            "command": lambda: post_form(url, slash_command("Who signed?", response_url=fake.response_url("busy")), SECRET),
            "click": lambda: post_action(url, block_actions("feedback_up", json.dumps({"answer_id": 1}),
                                                            response_url=fake.response_url("click")), SECRET),
            "mention": lambda: post_event(url, event_callback(app_mention("Where?", channel="C-busy-x")), SECRET),
            "dm": lambda: post_event(url, event_callback(message_im("When?", channel="D-busy")), SECRET),
        }.items():
            started = time.monotonic()
            assert send()[0] == 200
            timings[name] = time.monotonic() - started
        assert max(timings.values()) < 1.0, timings  # well under Slack's 3 s
        release.set()
        once_each(fake, busy)
        wait_until(lambda: fake.ephemeral("busy"), 30, "the command's answer")


def test_acks_never_wait_for_a_hanging_web_api(bot, fake):
    url, _, _ = bot
    fake.outage("*", seconds=5, hang=4, status=503)
    for send in (lambda: post_event(url, event_callback(app_mention("When?", channel="C-ack-hang")), SECRET),
                 lambda: post_form(url, slash_command("When?", response_url=fake.response_url("ah")), SECRET)):
        started = time.monotonic()
        assert send()[0] == 200
        assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------- bursts with Slack's retries

@pytest.mark.parametrize("size", [20, 50])
def test_a_burst_with_retries_is_answered_exactly_once(bot, fake, size):
    """Each event sent four times at once (the original and Slack's retries 1-3), all events together."""
    url, settings, _ = bot
    events = [app_mention("What did China agree to?", channel=f"C-burst-{size}-{i}") for i in range(size)]
    sends = [(e, retry) for e in events for retry in (None, 1, 2, 3)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(lambda s: post_event(url, event_callback(s[0]), SECRET, retry_num=s[1])[0], sends))
    assert statuses == [200] * len(sends)
    once_each(fake, events, timeout=120)


def test_a_burst_through_an_outage_is_answered_exactly_once(bot, fake):
    url, settings, _ = bot
    events = [app_mention("When was the deal signed?", channel=f"C-mid-{i}") for i in range(30)]

    def send(i: int) -> int:
        if i == 10:
            fake.outage("*", seconds=3, status=500)
        return post_event(url, event_callback(events[i % 30]), SECRET, retry_num=None if i < 30 else 1)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, range(60))) == {200}
    once_each(fake, events, timeout=60)


# ---------------------------------------------------------------- caps and links

def _citation(n: int, **fields) -> Citation:
    base = dict(doc_id=f"d{n}", title=f"Article {n}", source=f"/x/{n}.md", quotes=("q",), url=f"https://e.test/{n}",
                outlet="Wire", published="2025-06-27")
    return Citation(n, **{**base, **fields})


SHAPES = {
    "1mb-title": Answer("q", True, (Sentence("It was signed.", 1),), (_citation(1, title="T" * 1_000_000),)),
    "1mb-title-words": Answer("q", True, (Sentence("It was signed.", 1),), (_citation(1, title="word " * 200_000),)),
    "5mb-sentence": Answer("q", True, (Sentence("x" * 5_000_000, 1),), (_citation(1),)),
    "5mb-sentence-words": Answer("q", True, (Sentence("word. " * 800_000, 1),), (_citation(1),)),
    "1000-sources": Answer("q", True, tuple(Sentence(f"Fact {i}.", i) for i in range(1, 1001)),
                           tuple(_citation(i, title="A long headline " * 10) for i in range(1, 1001))),
    "1mb-outlet": Answer("q", True, (Sentence("It was signed.", 1),), (_citation(1, outlet="O" * 1_000_000),)),
    "1mb-url": Answer("q", True, (Sentence("It was signed.", 1),), (_citation(1, url="https://e.test/" + "a" * 1_000_000),)),
    "markup-everywhere": Answer("<!channel>", True, (Sentence("<!here> <@U1> <#C1|x> " * 5000, 1),),
                                (_citation(1, title="<!everyone> " * 5000, outlet="<@U2>", url="https://e.test/<!channel>"),)),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_message_stays_within_slack_limits_with_a_note(name):
    """The issue's rows: a 1 MB title made a 338-block message, a 5 MB passage a 1,752-block one."""
    message = answer_message(SHAPES[name], 7, note="a note " * 1000, share=True)
    within_slack_limits(message)
    text = sent_text(message)
    assert "feedback_up" in text and "Sources" in text  # the parts that matter survive the cut
    if name in ("5mb-sentence-words", "5mb-sentence"):
        assert "(cut: the answer is longer than Slack shows)" in text
    if name == "1000-sources":
        assert "more sources)" in text
    if "title" in name:
        assert len(text) < 20_000


def test_limits_from_settings_are_kept_within_slacks():
    class Slack:
        max_blocks, max_section_chars, max_title_chars = 500, 100_000, 5
    limits = BlockLimits.of(Slack)
    assert (limits.blocks, limits.section_chars, limits.title_chars) == (50, 3000, 10)
    message = answer_message(SHAPES["1000-sources"], 1, limits=BlockLimits(blocks=10, section_chars=400, title_chars=20))
    assert len(message["blocks"]) <= 10 and all(len(b.get("text", {}).get("text", "")) <= 400 for b in message["blocks"])


LINKS = [
    ("pipe-in-url", "https://e.test/a|Totally different label", None),
    ("angle-brackets", "https://e.test/<!channel>|x>", None),
    ("javascript", "javascript:alert(1)", "not linked"),
    ("slack-scheme", "slack://open?team=T1", "not linked"),
    ("mailto", "mailto:a@b.test", "not linked"),
    ("spaces", "https://e.test/a b|c", None),
    ("newline", "https://e.test/a\n<!here>", None),
    ("ampersand", "https://e.test/?a=1&b=<2>", None),
]


@pytest.mark.parametrize("name, url, expect", LINKS, ids=[c[0] for c in LINKS])
def test_an_article_url_cannot_change_its_link_or_mention_anyone(name, url, expect):
    line = source_line(_citation(1, title="The real title", url=url))
    for forbidden in ("<!channel>", "<!here", "<@U"):
        assert forbidden not in line
    if expect == "not linked":
        assert link_target(url) is None and line.startswith("[1] The real title")
        return
    target, label = line.removeprefix("[1] <").split(">", 1)[0].split("|")
    assert label == "The real title" and " " not in target and "<" not in target and "\n" not in target


def test_an_oversized_answer_reaches_slack_whole_and_within_limits(bot, fake, monkeypatch, sample_pipeline):
    """End to end: an answer from an index holding a 1 MB title and a 5 MB passage (an old index) is posted, cut."""
    url, _, _ = bot
    monkeypatch.setattr(sample_pipeline, "ask", lambda *a, **k: SHAPES["markup-everywhere"])
    event = mention(url, "C-big")
    shown = answered(fake, "C-big", event["ts"])
    assert len(shown) == 1 and "feedback_up" in sent_text(shown[0]["blocks"])
    assert all(c.args.get("blocks") is None or len(c.args["blocks"]) <= 50 for c in fake.calls if c.method.startswith("chat."))


def test_a_killed_server_delivers_what_it_left_pending_after_a_restart(fake, tmp_path):
    """kill -9 while the Web API fails: the reply waits in slack.sqlite, leased to a process that is gone; the next
    `dealbot serve` takes it over at once and delivers it, once."""
    import signal

    from conftest import free_port, run_cli

    env = {"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_SLACK_API_URL": fake.base_url, "SLACK_BOT_TOKEN": "xoxb-test",
           "SLACK_SIGNING_SECRET": SECRET, "DEALBOT_SLACK_API_TIMEOUT_SECONDS": "1",
           "DEALBOT_SLACK_DELIVERY_BACKOFF_SECONDS": "0.2"}
    assert run_cli("ingest", env=env).returncode == 0
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}

    def serve() -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(port)], env={**environ, **env}, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url) or proc.poll() is not None, 120, "dealbot serve listening")
        assert proc.poll() is None
        return proc, url + "/slack/events"

    fake.outage("*", seconds=3600, status=500)
    first, url = serve()
    try:
        event = mention(url, "C-killed")
        store = SlackStore(tmp_path / "slack.sqlite")
        wait_until(lambda: store.delivery_counts()["pending"] == 1 and _answer_composed(store), 60, "a composed reply pending")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    fake.end_outages()
    second, _ = serve()
    try:
        once_each(fake, [event], timeout=60)
        wait_until(lambda: store.delivery_counts() == {"pending": 0, "delivered": 1, "failed": 0}, 20, "delivered")
    finally:
        second.terminate()
        second.wait(30)


def _healthy(url: str) -> bool:
    from urllib.request import ProxyHandler, build_opener

    try:
        with build_opener(ProxyHandler({})).open(url + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _answer_composed(store: SlackStore) -> bool:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(store.path)) as conn:
        jobs = [json.loads(row[0]) for row in conn.execute("SELECT job FROM deliveries WHERE state = 'pending'")]
    return bool(jobs) and all(job.get("message") for job in jobs)
