"""The digest of new articles: scheduled ingest runs over the fake news site, the real index and model, the digest
posted through the real slack_sdk client to the fake Web API on 127.0.0.1 (which keeps each channel's history)."""

from __future__ import annotations

import json
import signal

import pytest

from bot.digest import Digest, announce_new_articles
from bot.slack.digest import EVENT_TYPE, SlackDigestPoster
from conftest import make_settings, run_cli
from ingest.sync import run_ingest
from news_site import MAGNETS, SIGNED, UNDATED, NewsSite, article_page, rss
from slack_fakes import FakeSlackAPI

CHANNELS = ("CDIGEST01", "CDIGEST02")
TOKEN = "xoxb-test-token"


class HistorySlack(FakeSlackAPI):
    """The fake Web API, keeping what was posted to each channel (with its metadata) for conversations.history;
    `lose_posts` posts are taken but answered with HTTP 500, as when Slack's answer is lost on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[dict]] = {}
        self.lose_posts = 0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.history.clear()
            self.lose_posts = 0

    def _answer(self, method, args, headers, path=""):
        status, extra, reply = super()._answer(method, args, headers, path)
        with self._lock:
            if method == "chat.postMessage" and status == 200:
                metadata = args.get("metadata")
                message = {**reply["message"], "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata}
                self.history.setdefault(args["channel"], []).append(message)
                if self.lose_posts:
                    self.lose_posts -= 1
                    self._calls[-1].status = 500
                    return 500, {}, {"ok": False, "error": "internal_error"}
            if method == "conversations.history" and status == 200:
                keep = str(args.get("include_all_metadata")).lower() in ("1", "true")
                messages = [m if keep else {k: v for k, v in m.items() if k != "metadata"}
                            for m in reversed(self.history.get(args.get("channel"), []))]
                return 200, {}, {"ok": True, "messages": messages, "has_more": False}
        return status, extra, reply

    def posts(self, channel: str | None = None) -> list:
        return [c for c in self.calls_to("chat.postMessage") if channel is None or c.args["channel"] == channel]


@pytest.fixture(scope="module")
def slack():
    with HistorySlack() as api:
        yield api


@pytest.fixture(autouse=True)
def _fresh_slack(request):
    if "slack" in request.fixturenames:
        request.getfixturevalue("slack").reset()


def publish(site: NewsSite, pages: dict[str, tuple]) -> None:
    """Put article pages on the site and list them all in its feed (fixture articles, see news_site)."""
    items = []
    for path, (title, paragraphs, published, outlet) in pages.items():
        site.put(path, article_page(title, paragraphs, published=published, author="Ada Fixture",
                                    canonical=site.url(path) if outlet == "Fixture Gazette" else None, site=outlet))
        items.append((title, path, "Mon, 30 Jun 2025 09:00:00 GMT"))
    site.put("/feeds/trade", rss(site.base, items), content_type="application/xml")


REVIEW = {"/news/review": ("Review of the export arrangement planned", UNDATED, "2025-08-20", "Fixture Gazette")}
NEW = {
    "/news/deal-signed": ("Rare earth export arrangement completed", SIGNED, "2025-06-28", "Fixture Gazette"),
    "/partner/deal-done": ("US and China finish rare earth pact", SIGNED[:5], "2025-06-29", "Partner Daily"),
    "/news/magnets": ("Magnet shipments recover after the arrangement", MAGNETS, "2025-07-15", "Fixture Gazette"),
}


# A test fixture article, invented for these tests.
LATER = ("A later fixture report", [
    "Port officials in the fixture town of Eastham reported a second week of steady magnet deliveries in August 2025.",
    "Two warehouse operators said they had hired extra night staff to handle the containers.",
    "A trade association planned to publish monthly delivery figures from September onwards.",
], "2025-08-01", "Fixture Gazette")


@pytest.fixture
def site():
    with NewsSite() as s:
        publish(s, REVIEW)
        yield s


def setup(tmp_path, site, slack, embedder, existing: bool = True, **env):
    """Settings with the news site's feed as source and two digest channels; the index already holds REVIEW
    (unless not `existing`); the digest started as a scheduled process starts it."""
    settings = make_settings(tmp_path / "data", sources=[site.url("/feeds/trade")], slack_api_url=slack.base_url,
                             digest_channels=",".join(CHANNELS), **env)
    if existing:
        assert run_ingest(settings, embedder=embedder).added == 1
    return settings, start(settings, fresh=not existing)


def start(settings, fresh: bool = False) -> Digest:
    digest = Digest(settings, SlackDigestPoster(TOKEN, settings))
    digest.start(fresh)
    return digest


def scheduled_run(settings, embedder, digest) -> str:
    """What a scheduled run does: sync, then the digest step; returns the run's log line's digest part."""
    run_ingest(settings, embedder=embedder)
    return announce_new_articles(digest)


def digest_blocks(call) -> str:
    return json.dumps(call.args["blocks"], ensure_ascii=False)


def test_a_run_that_adds_two_articles_posts_one_digest_per_channel_then_nothing_again(tmp_path, site, slack, embedder):
    settings, digest = setup(tmp_path, site, slack, embedder)
    publish(site, {**REVIEW, **NEW})
    line = scheduled_run(settings, embedder, digest)
    assert line == "; digest: CDIGEST01: 2 new articles posted; CDIGEST02: 2 new articles posted"
    for channel in CHANNELS:
        [post] = slack.posts(channel)
        body = digest_blocks(post)
        assert post.args["text"].startswith("2 new articles on the story")
        assert "*2 new articles on the story*" in body
        assert f"<{site.url('/news/deal-signed')}|Rare earth export arrangement completed>" in body
        assert f"<{site.url('/news/magnets')}|Magnet shipments recover after the arrangement>" in body
        assert f"“{SIGNED[0]}”" in body and f"“{MAGNETS[0]}”" in body  # each article's first sentence, exactly
        assert "Fixture Gazette, 2025-06-28" in body and "Fixture Gazette, 2025-07-15" in body
        assert "also in: Partner Daily" in body  # the syndicated copy counts once
        assert "US and China finish rare earth pact" not in body and "Review of the export" not in body
        assert post.args["unfurl_links"] is False
        assert post.args["metadata"]["event_type"] == EVENT_TYPE
    # an unchanged run posts nothing
    assert scheduled_run(settings, embedder, digest) == ""
    # a restart (the digest's state rebuilt from the data directory), then a run: nothing again
    assert scheduled_run(settings, embedder, start(settings)) == ""
    # an updated article is not new
    publish(site, {**REVIEW, **NEW, "/news/magnets": (NEW["/news/magnets"][0], MAGNETS + ["A fixture update."], "2025-07-15", "Fixture Gazette")})
    assert run_ingest(settings, embedder=embedder).updated == 1
    assert announce_new_articles(start(settings)) == ""
    assert len(slack.posts()) == 2


@pytest.mark.parametrize("status", [500, 429])
def test_a_failed_post_posts_nothing_loses_nothing_and_goes_out_once_at_the_next_run(tmp_path, site, slack, embedder, status):
    settings, digest = setup(tmp_path, site, slack, embedder)
    publish(site, {**REVIEW, **NEW})
    # 500: one answer; 429: more than the client's retries (after Retry-After)
    slack.fail_next("chat.postMessage", status=status, retry_after=0, times=6 if status == 429 else 2)
    line = scheduled_run(settings, embedder, digest)
    assert "not posted" in line and "kept for the next run" in line
    assert slack.history == {} and all(c.status == status for c in slack.posts())
    pending = [r for r in Digest(settings, None).outbox.announcements() if r["status"] == "pending"]
    assert len(pending) == 4  # two articles for each of two channels

    assert scheduled_run(settings, embedder, digest) == (
        "; digest: CDIGEST01: 2 new articles posted; CDIGEST02: 2 new articles posted")
    for channel in CHANNELS:
        assert len(slack.history[channel]) == 1
        assert "Magnet shipments recover" in digest_blocks(slack.posts(channel)[-1])
    # Only a 5xx leaves it open whether Slack took the post: then the history is checked before posting again.
    assert bool(slack.calls_to("conversations.history")) == (status == 500)
    assert scheduled_run(settings, embedder, digest) == ""
    assert all(len(slack.history[c]) == 1 for c in CHANNELS)


def test_a_post_slack_took_but_whose_answer_was_lost_is_not_posted_again(tmp_path, site, slack, embedder):
    settings, digest = setup(tmp_path, site, slack, embedder)
    publish(site, {**REVIEW, **NEW})
    slack.lose_posts = 1  # the first channel's digest reaches Slack; its answer does not reach the bot
    line = scheduled_run(settings, embedder, digest)
    assert "CDIGEST01: 2 new articles not posted (HTTP 500 internal_error)" in line
    assert "CDIGEST02: 2 new articles posted" in line

    # After a restart the next run finds the digest in the channel's history (by its metadata) and does not repost.
    assert scheduled_run(settings, embedder, start(settings)) == ""
    assert [len(slack.history[c]) for c in CHANNELS] == [1, 1]
    assert len(slack.posts("CDIGEST01")) == 1
    history = slack.calls_to("conversations.history")
    assert [h.args["channel"] for h in history] == ["CDIGEST01"]
    posted = {(r["channel"], r["status"], r["message_ts"]) for r in Digest(settings, None).outbox.announcements()}
    assert {(c, s) for c, s, _ in posted} == {(c, "posted") for c in CHANNELS}
    assert ("CDIGEST01", "posted", slack.history["CDIGEST01"][0]["ts"]) in posted


def test_the_first_run_after_turning_the_digest_on_over_an_existing_index_posts_nothing(tmp_path, site, slack, embedder):
    plain = make_settings(tmp_path / "data", sources=[site.url("/feeds/trade")])
    publish(site, {**REVIEW, **NEW})
    assert run_ingest(plain, embedder=embedder).added == 3  # the back catalogue, before the digest is on
    # the digest turned on over that index: same data directory, digest channels set
    settings = make_settings(tmp_path / "data", sources=[site.url("/feeds/trade")], slack_api_url=slack.base_url,
                             digest_channels=",".join(CHANNELS))
    digest = start(settings, fresh=False)
    assert scheduled_run(settings, embedder, digest) == ""
    assert slack.posts() == []
    # what comes after is announced, and only that
    publish(site, {**REVIEW, **NEW, "/news/later": LATER})
    assert scheduled_run(settings, embedder, digest) == (
        "; digest: CDIGEST01: 1 new article posted; CDIGEST02: 1 new article posted")
    body = digest_blocks(slack.posts("CDIGEST01")[0])
    assert "A later fixture report" in body and "Rare earth export" not in body


def test_a_replaced_run_log_does_not_hide_new_articles(tmp_path, site, slack, embedder):
    settings, digest = setup(tmp_path, site, slack, embedder)
    publish(site, {**REVIEW, **NEW})
    assert "2 new articles posted" in scheduled_run(settings, embedder, digest)
    settings.state_db.unlink()  # the journal starts again from 1, below the digest's place in it
    publish(site, {**REVIEW, **NEW, "/news/later": LATER})
    assert scheduled_run(settings, embedder, digest) == (
        "; digest: CDIGEST01: 1 new article posted; CDIGEST02: 1 new article posted")
    assert "A later fixture report" in digest_blocks(slack.posts("CDIGEST01")[-1])


def test_a_fresh_index_first_ingest_is_the_back_catalogue_not_news(tmp_path, site, slack, embedder):
    settings, digest = setup(tmp_path, site, slack, embedder, existing=False)
    publish(site, {**REVIEW, **NEW})
    assert scheduled_run(settings, embedder, digest) == ""
    publish(site, {**REVIEW, **NEW, "/news/later": LATER})
    assert "1 new article posted" in scheduled_run(settings, embedder, digest)


def test_dry_run_and_json_say_what_would_be_posted_and_what_was_announced_where_and_when(tmp_path, site, slack, embedder):
    settings, digest = setup(tmp_path, site, slack, embedder, digest_max_items=1)
    env = {"DEALBOT_DATA_DIR": str(settings.data_dir), "DEALBOT_DIGEST_CHANNELS": ",".join(CHANNELS),
           "DEALBOT_DIGEST_MAX_ITEMS": "1"}
    publish(site, {**REVIEW, **NEW})
    run_ingest(settings, embedder=embedder)

    preview = run_cli("digest", "--dry-run", env=env)
    assert preview.returncode == 0, preview.stderr
    assert "channel CDIGEST01: 2 new articles on the story" in preview.stdout
    assert "Rare earth export arrangement completed — Fixture Gazette" in preview.stdout
    assert f"“{SIGNED[0]}”" in preview.stdout and "also in: Partner Daily" in preview.stdout
    assert "and 1 more" in preview.stdout and "Magnet shipments" not in preview.stdout  # max_items = 1
    as_json = json.loads(run_cli("digest", "--dry-run", "--json", env=env).stdout)
    assert [(p["channel"], p["count"], p["more"]) for p in as_json] == [(c, 2, 1) for c in CHANNELS]
    assert as_json[0]["articles"][0]["alternates"] == [site.url("/partner/deal-done")]
    assert slack.posts() == []  # a dry run posts nothing

    assert "2 new articles posted" in announce_new_articles(digest)
    post = slack.posts("CDIGEST01")[0]
    assert "and 1 more" in digest_blocks(post) and "Magnet shipments" not in digest_blocks(post)
    record = json.loads(run_cli("digest", "--json", env=env).stdout)
    assert {(r["channel"], r["title"], r["status"]) for r in record} == {
        (c, t, "posted") for c in CHANNELS
        for t in ("Rare earth export arrangement completed", "Magnet shipments recover after the arrangement")}
    assert all(r["posted_at"] and r["message_ts"] for r in record)
    again = run_cli("digest", "--dry-run", env=env)
    assert again.stdout.count("nothing new to post") == 2


def test_digest_settings_are_checked_and_overridden_from_the_environment(tmp_path):
    settings = make_settings(tmp_path, digest_channels="C0AAA1, G0BBB2", digest_max_items=3)
    assert settings.digest.channels == ("C0AAA1", "G0BBB2") and settings.digest.max_items == 3
    assert make_settings(tmp_path).digest.channels == ()
    r = run_cli("digest", "--dry-run", env={"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_DIGEST_CHANNELS": "#general"})
    assert r.returncode == 1 and "'#general' is not a Slack channel id" in r.stderr
    r = run_cli("digest", "--dry-run", env={"DEALBOT_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1 and "the digest is off" in r.stderr


def test_ingest_schedule_posts_the_digest_and_after_a_restart_posts_nothing_again(tmp_path, site, slack, embedder):
    from test_schedule import EVERY_2_SECONDS, Process

    settings, _ = setup(tmp_path, site, slack, embedder)
    env = {"DEALBOT_DATA_DIR": str(settings.data_dir), "DEALBOT_SOURCES": site.url("/feeds/trade"),
           "DEALBOT_SLACK_API_URL": slack.base_url, "DEALBOT_DIGEST_CHANNELS": ",".join(CHANNELS),
           "SLACK_BOT_TOKEN": TOKEN}
    publish(site, {**REVIEW, **NEW})
    p = Process("ingest", "--schedule", EVERY_2_SECONDS, env=env)
    try:
        line = p.wait_for("digest:")
        assert "2 added" in line and "CDIGEST02: 2 new articles posted" in line, line
        p.wait_for("ingest 0 added")  # the next run: nothing new, nothing posted
        assert p.stop(signal.SIGTERM) == 0
    finally:
        p.proc.kill()
    assert [len(slack.posts(c)) for c in CHANNELS] == [1, 1]
    assert not any(TOKEN in s for s in p.seen)

    again = Process("ingest", "--schedule", EVERY_2_SECONDS, env=env)
    try:
        line = again.wait_for("ingest ")
        assert "0 added" in line and "digest" not in line
        assert again.stop(signal.SIGTERM) == 0
    finally:
        again.proc.kill()
    assert [len(slack.posts(c)) for c in CHANNELS] == [1, 1]
