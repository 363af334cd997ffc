"""The App Home tab, driven as Slack drives it: a signed `app_home_opened` event over real HTTP to the real app,
views.publish received by the fake Web API, the status facts read from the real index and run log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from bot.pipeline import Pipeline
from bot.slack.app import SlackSecrets, create_app
from bot.slack.server import make_http_server
from bot.slack.store import SlackStore
from bot.status import read_status
from bot.types import Answer
from conftest import ROOT, SAMPLE, make_settings, write_article
from ingest.sync import run_ingest
from slack_fakes import FakeSlackAPI, event_callback, post_event

SECRET = "0123456789abcdef0123456789abcdef"


def home_opened(user: str = "U42", tab: str = "home") -> dict:
    """An `app_home_opened` event, shaped as Slack documents it."""
    return {"type": "app_home_opened", "user": user, "channel": "D42", "tab": tab, "event_ts": f"{time.time():.6f}"}


@pytest.fixture(scope="module")
def home(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("home")
    folder = root / "articles"
    for day, title in (("2025-07-01", "First fixture report on magnets"), ("2025-08-01", "Second fixture report on licences"),
                       ("2025-09-01", "Third fixture report on tariffs"), ("2025-10-01", "Fourth fixture report on ports")):
        write_article(folder, f"{day}.md", title, f"This test fixture article, {title.lower()}, was written for the Home tab tests.",
                      published=day)
    with FakeSlackAPI() as fake:
        settings = make_settings(root / "data", sources=[folder, SAMPLE, root / "missing-folder"],
                                 slack_api_url=fake.base_url, digest_channels="CDIGEST01", ingest_schedule="*/30 * * * *")
        run_ingest(settings, embedder=embedder)
        store = SlackStore(settings.slack_db)
        answer_id = store.record_answer(Answer("q", False), "C1", "U1")
        store.record_feedback(answer_id, "U1", "C1", "up")
        store.record_feedback(answer_id, "U2", "C1", "up")
        store.record_feedback(answer_id, "U3", "C1", "down")
        app = create_app(settings, Pipeline(settings, embedder), SlackSecrets("xoxb-test-token", signing_secret=SECRET))
        server = make_http_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        yield f"http://127.0.0.1:{server.effective_port}/slack/events", fake, settings
        server.close()


def published_view(fake, count: int = 1, timeout: float = 30) -> tuple[str, dict]:
    call = fake.wait_for("views.publish", count=count, timeout=timeout)[-1]
    view = call.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    return call.args["user_id"], view


def test_the_home_tab_is_published_on_app_home_opened_with_the_status_facts(home):
    url, fake, settings = home
    fake.reset()
    started = time.monotonic()
    status, _ = post_event(url, event_callback(home_opened("U42")), SECRET)
    assert status == 200 and time.monotonic() - started < 3
    user, view = published_view(fake)
    assert user == "U42" and view["type"] == "home"
    assert len(view["blocks"]) <= 100
    text = json.dumps(view, ensure_ascii=False)
    info = read_status(settings)
    assert info.documents == 5
    assert f"{info.documents} articles in {info.passages} passages" in text
    assert "Last ingest run: " + info.last_run.finished in text and "5 added" in text
    assert "missing-folder" in text and "error: " in text  # each source's last run and its errors
    assert "<#CDIGEST01>" in text and "`*/30 * * * *`" in text and "next run" in text
    assert "/dealbot timeline" in text and "Mention me" in text and "direct message" in text
    # three example questions drawn from the newest articles' titles
    for title in ("Fourth fixture report on ports", "Third fixture report on tariffs", "Second fixture report on licences"):
        assert f"What's the gist of “{title}”?" in text
    assert "First fixture report" not in text
    assert "👍 2" in text and "👎 1" in text


def test_the_messages_tab_publishes_nothing_and_a_failed_publish_is_logged_then_retried(home, caplog):
    url, fake, _ = home
    fake.reset()
    post_event(url, event_callback(home_opened("U43", tab="messages")), SECRET)
    time.sleep(1.0)
    assert fake.calls_to("views.publish") == []

    fake.fail_next("views.publish", status=500, error="internal_error")
    with caplog.at_level("WARNING", logger="dealbot.slack"):
        post_event(url, event_callback(home_opened("U44")), SECRET)
        fake.wait_for("views.publish")
        deadline = time.monotonic() + 10
        while "publishing the Home tab for U44 failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "publishing the Home tab for U44 failed: HTTP 500 internal_error" in caplog.text
    assert "xoxb-test-token" not in caplog.text
    post_event(url, event_callback(home_opened("U44")), SECRET)
    user, view = published_view(fake, count=2)
    assert fake.calls_to("views.publish")[-1].status == 200 and user == "U44" and view["type"] == "home"


def test_the_home_tab_follows_the_index(home, embedder):
    url, fake, settings = home
    folder = settings.sources[0].location
    write_article(Path(folder), "2025-11-01.md", "Fifth fixture report on shipping",
                  "This test fixture article was added after the Home tab was first shown.", published="2025-11-01")
    run_ingest(settings, embedder=embedder)
    fake.reset()
    post_event(url, event_callback(home_opened("U45")), SECRET)
    _, view = published_view(fake)
    text = json.dumps(view, ensure_ascii=False)
    assert "6 articles in" in text and "What's the gist of “Fifth fixture report on shipping”?" in text


def test_the_manifest_turns_on_the_home_tab_and_its_event():
    import yaml

    manifest = yaml.safe_load((ROOT / "config" / "slack-manifest.yml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"chat:write", "channels:history", "groups:history"} <= set(manifest["oauth_config"]["scopes"]["bot"])
