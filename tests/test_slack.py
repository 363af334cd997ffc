"""The Slack bot driven as Slack drives it: signed requests over real HTTP to the real app on waitress, a fake Slack
Web API on 127.0.0.1 recording what the bot sent, the real pipeline (model, Chroma) answering."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request

import pytest

from bot.slack.app import SlackSecrets, create_app
from bot.slack.blocks import answer_message
from bot.slack.server import make_http_server
from bot.slack.store import SlackStore
from bot.types import Answer, Citation, Sentence
from conftest import make_settings, run_cli
from slack_fakes import (
    FakeSlackAPI,
    FakeSocketModeServer,
    app_mention,
    block_actions,
    event_callback,
    message_im,
    new_ts,
    post_action,
    post_event,
    post_form,
    slash_command,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SECRETS = SlackSecrets(bot_token="xoxb-test-token", signing_secret=SECRET)


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(scope="module")
def pipeline(sample_pipeline):
    return sample_pipeline


def start_bot(pipeline, fake, data_dir, **slack):
    settings = make_settings(data_dir, slack_api_url=fake.base_url, **slack)
    # The index is the module's; only the Slack state lives in this bot's own data dir.
    settings = dataclasses.replace(pipeline.settings, data_dir=settings.data_dir, slack=settings.slack)
    app = create_app(settings, pipeline, SECRETS)
    server = make_http_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()
    return server, f"http://127.0.0.1:{server.effective_port}", settings


@pytest.fixture(scope="module")
def bot(pipeline, fake, tmp_path_factory):
    server, url, settings = start_bot(pipeline, fake, tmp_path_factory.mktemp("slack-bot"))
    yield url + "/slack/events", settings
    server.close()


@pytest.fixture(autouse=True)
def _fresh_fake(request):
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


def blocks_text(call) -> str:
    blocks = call.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return json.dumps(blocks, ensure_ascii=False)


def answered(fake, count=1):
    """The chat.update calls that replaced placeholders with answers."""
    return fake.wait_for("chat.update", count=count, timeout=30)


def test_mention_in_a_channel_is_answered_in_its_thread_with_sources_and_buttons(bot, fake):
    url, _ = bot
    event = app_mention("When was the deal signed?", channel="C1")
    status, _ = post_event(url, event_callback(event), SECRET)
    assert status == 200
    placeholder = fake.wait_for("chat.postMessage")[0]
    assert placeholder.args["thread_ts"] == event["ts"] and placeholder.args["channel"] == "C1"
    assert placeholder.args["unfurl_links"] is False and placeholder.args["unfurl_media"] is False
    update = answered(fake)[0]
    assert update.args["ts"] == "1700000000.000100" or update.args["ts"].startswith("17")
    body = blocks_text(update)
    assert "signed" in update.args["text"] and "[1]" in update.args["text"]
    assert "White House announces trade deal with China on rare earth exports — The Hill, 2025-06-27" in body
    assert "feedback_up" in body and "feedback_down" in body
    assert len(fake.calls_to("chat.postMessage")) == 1


def test_mention_inside_a_thread_answers_in_that_thread_in_its_context(bot, fake):
    url, _ = bot
    root = new_ts()
    fake.set_replies("C2", root, [
        {"type": "message", "user": "U1", "text": "<@UBOT> What was agreed in London?", "ts": root},
        {"type": "message", "bot_id": "BBOT", "user": "UBOT", "text": "Some earlier answer", "ts": new_ts()},
    ])
    event = app_mention("and when was it signed?", channel="C2", thread_ts=root)
    post_event(url, event_callback(event), SECRET)
    update = answered(fake)[0]
    replies = fake.calls_to("conversations.replies")
    assert replies and replies[0].args["ts"] == root
    assert fake.calls_to("chat.postMessage")[0].args["thread_ts"] == root
    assert "signed" in update.args["text"]


def test_direct_messages_are_answered_in_the_dm_or_its_thread(bot, fake):
    url, _ = bot
    post_event(url, event_callback(message_im("What share of rare earths comes from China?", channel="D7")), SECRET)
    post_event(url, event_callback(message_im("Who is the commerce secretary?", channel="D7", thread_ts="1699999999.000100")), SECRET)
    updates = answered(fake, 2)
    posts = fake.calls_to("chat.postMessage")
    assert {p.args.get("thread_ts") for p in posts} == {None, "1699999999.000100"}
    assert all(p.args["channel"] == "D7" for p in posts)
    assert any("Sixty percent" in u.args["text"] for u in updates)


def test_a_retried_event_is_answered_exactly_once(bot, fake):
    url, _ = bot
    event = app_mention("What did China agree to?", channel="C3")
    payload = event_callback(event)
    for retry in (None, 1, 2):
        assert post_event(url, payload, SECRET, retry_num=retry)[0] == 200
    # A retry can be the only delivery: a new event that arrives with a retry header is still answered.
    only_retry = event_callback(app_mention("Where were the talks held?", channel="C3"))
    post_event(url, only_retry, SECRET, retry_num=1)
    answered(fake, 2)
    time.sleep(1.0)
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert len(fake.calls_to("chat.update")) == 2


def test_forged_or_stale_requests_get_401_and_do_nothing(bot, fake):
    url, _ = bot
    payload = event_callback(app_mention("When was the deal signed?"))
    assert post_event(url, payload, "not-the-secret")[0] == 401
    assert post_event(url, payload, SECRET, timestamp=int(time.time()) - 3600)[0] == 401
    assert post_event(url, payload, SECRET, signature_override="v0=" + "0" * 64)[0] == 401
    time.sleep(1.0)
    assert fake.calls == []


def test_bots_edits_and_joins_are_ignored(bot, fake):
    url, _ = bot
    for event in (
        message_im("I am another bot", bot_id="B999"),
        message_im("edited question?", subtype="message_changed"),
        message_im("joined", subtype="channel_join"),
        message_im("my own words", user="UBOT", bot_id="BBOT"),
    ):
        assert post_event(url, event_callback(event), SECRET)[0] == 200
    time.sleep(1.5)
    assert [c.method for c in fake.calls if c.method.startswith("chat.")] == []


def test_empty_mention_gets_help_and_a_huge_question_is_cut_with_a_note(bot, fake):
    url, _ = bot
    post_event(url, event_callback(app_mention("<@UBOT>", channel="C4")), SECRET)
    help_post = fake.wait_for("chat.postMessage")[0]
    assert "/dealbot" in help_post.args["text"]
    fake.reset()
    huge = "When was the deal signed? " + "please " * 400
    post_event(url, event_callback(app_mention(huge, channel="C4")), SECRET)
    update = answered(fake)[0]
    assert "longer than 1000 characters" in blocks_text(update)


def test_nothing_from_question_or_article_text_becomes_a_mention(bot, fake):
    url, _ = bot
    post_event(url, event_callback(app_mention("<!channel> <!here|here> What did the <@U777> EU agree with China?", channel="C5")), SECRET)
    update = answered(fake)[0]
    assert update.args["text"] == "I couldn't find a direct answer in the articles."
    assert "Sources" not in blocks_text(update)
    # An article whose text carries markup is rendered inert.
    evil = Answer(
        "q <!everyone>",
        True,
        (Sentence("Ping <!channel> and <@U123> & <https://x.test|click>", 1),),
        (Citation(1, "d", "Title <!here>", "/x.md", ("q",), url="https://e.test/a?b=1&c=<2>", outlet="O&O"),),
    )
    message = json.dumps(answer_message(evil, 5))
    for forbidden in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://x.test"):
        assert forbidden not in message
    assert "&lt;!channel&gt;" in message and "&amp;" in message


def test_slash_command_is_acknowledged_at_once_and_answered_privately_with_share(bot, fake):
    url, _ = bot
    started = time.monotonic()
    status, body = post_form(url, slash_command("When was the deal signed?", response_url=fake.response_url("cmd1")), SECRET)
    assert status == 200 and time.monotonic() - started < 3
    response = fake.wait_for("response_url", timeout=30)[0]
    assert response.args["response_type"] == "ephemeral"
    text = json.dumps(response.args["blocks"], ensure_ascii=False)
    assert "share_answer" in text and "The Hill" in text

    status, body = post_form(url, slash_command("   "), SECRET)
    assert status == 200 and "/dealbot" in body


def test_feedback_clicks_are_recorded_and_acknowledged(bot, fake):
    url, settings = bot
    post_event(url, event_callback(app_mention("Who is the commerce secretary?", channel="C6")), SECRET)
    update = answered(fake)[0]
    blocks = update.args["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    up = next(e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "feedback_up")
    status, _ = post_action(url, block_actions("feedback_up", up["value"], user="U9", channel="C6", response_url=fake.response_url("fb")), SECRET)
    assert status == 200
    thanks = fake.wait_for("response_url")[0]
    assert "Thanks" in thanks.args["text"]
    records = SlackStore(settings.slack_db).feedback()
    assert [(r["vote"], r["user"], r["channel"], r["question"]) for r in records][-1] == (
        "up", "U9", "C6", "Who is the commerce secretary?"
    )
    assert records[-1]["citations"][0]["title"].startswith("White House announces")
    exported = run_cli("feedback", "--json", env={"DEALBOT_DATA_DIR": str(settings.data_dir)})
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)[-1]["vote"] == "up"


def test_share_button_posts_the_answer_in_the_channel(bot, fake):
    url, _ = bot
    post_form(url, slash_command("What share of rare earths comes from China?", channel_id="C8", response_url=fake.response_url("c")), SECRET)
    response = fake.wait_for("response_url", timeout=30)[0]
    share = next(e for b in response.args["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "share_answer")
    fake.reset()
    post_action(url, block_actions("share_answer", share["value"], channel="C8", response_url=fake.response_url("s")), SECRET)
    post = fake.wait_for("chat.postMessage")[0]
    assert post.args["channel"] == "C8" and "Sixty percent" in post.args["text"]


def test_rate_limited_web_api_calls_are_retried(bot, fake):
    url, _ = bot
    fake.fail_next("chat.update", status=429, retry_after=0)
    post_event(url, event_callback(app_mention("What tariff did Trump impose on China in April?", channel="C9")), SECRET)
    updates = fake.wait_for("chat.update", count=2, timeout=30)
    assert [u.status for u in updates] == [429, 200]
    assert "145 percent" in updates[1].args["text"]


def test_a_failure_while_answering_is_told_in_the_thread(bot, fake, monkeypatch, pipeline):
    url, _ = bot

    def broken(*args, **kwargs):
        raise RuntimeError("index unavailable")

    monkeypatch.setattr(pipeline, "ask", broken)
    post_event(url, event_callback(app_mention("When was the deal signed?", channel="C10")), SECRET)
    update = answered(fake)[0]
    assert "something went wrong" in update.args["text"] and "RuntimeError" in update.args["text"]


def test_outside_allowed_channels_the_bot_says_so_once(pipeline, fake, tmp_path):
    server, url, _ = start_bot(pipeline, fake, tmp_path, slack_allowed_channels="C_OK")
    try:
        for _ in range(2):
            post_event(url + "/slack/events", event_callback(app_mention("When was the deal signed?", channel="C_NO")), SECRET)
        post_event(url + "/slack/events", event_callback(app_mention("When was the deal signed?", channel="C_OK")), SECRET)
        answered(fake)
        time.sleep(0.5)
        notices = [c for c in fake.calls_to("chat.postMessage") if c.args["channel"] == "C_NO"]
        assert len(notices) == 1 and "not enabled" in notices[0].args["text"]
    finally:
        server.close()


def test_healthz(bot):
    url, _ = bot
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url.replace("/slack/events", "/healthz")) as r:
        assert r.status == 200 and r.read() == b"ok\n"


def test_socket_mode_against_a_local_websocket_server(pipeline, fake, tmp_path):
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    settings = dataclasses.replace(pipeline.settings, data_dir=tmp_path, slack=make_settings(tmp_path, slack_api_url=fake.base_url).slack)
    app = create_app(settings, pipeline, SlackSecrets(bot_token="xoxb-test-token", app_token="xapp-test-token"))
    with FakeSocketModeServer() as ws:
        fake.socket_url = ws.url
        handler = SocketModeHandler(app, app_token="xapp-test-token", web_client=app.client)
        handler.connect()
        try:
            envelope = ws.send_envelope(event_callback(app_mention("When was the deal signed?", channel="C11")))
            ws.wait_for_ack(envelope)
            update = answered(fake)[0]
            assert "signed" in update.args["text"]
            assert fake.calls_to("apps.connections.open")[0].headers.get("authorization") == "Bearer xapp-test-token"
        finally:
            handler.close()


def test_serve_needs_tokens_and_names_the_missing_one(tmp_path):
    r = run_cli("serve", "--http", env={"DEALBOT_DATA_DIR": str(tmp_path)})
    assert r.returncode == 1 and "SLACK_BOT_TOKEN" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("serve", "--http", env={"DEALBOT_DATA_DIR": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-1"})
    assert r.returncode == 1 and "SLACK_SIGNING_SECRET" in r.stderr
    r = run_cli("serve", env={"DEALBOT_DATA_DIR": str(tmp_path), "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "bad"})
    assert r.returncode == 1 and "SLACK_APP_TOKEN" in r.stderr


def test_dealbot_serve_http_process_end_to_end(fake, tmp_path):
    """The real command: loads model and index, binds --host/--port, answers a signed mention via the fake API."""
    import subprocess

    from conftest import DEALBOT, ROOT, free_port

    env = {"DEALBOT_DATA_DIR": str(tmp_path), "DEALBOT_SLACK_API_URL": fake.base_url,
           "SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_SIGNING_SECRET": SECRET}
    assert run_cli("ingest", env=env).returncode == 0
    port = free_port()
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DEALBOT_", "SLACK_")) and "proxy" not in k.lower()}
    proc = subprocess.Popen([str(DEALBOT), "serve", "--http", "--port", str(port)], env={**environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 90
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
        status, _ = post_event(f"http://127.0.0.1:{port}/slack/events",
                               event_callback(app_mention("When was the deal signed?", channel="C12")), SECRET)
        assert status == 200
        assert "signed" in answered(fake)[0].args["text"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ---------------------------------------------------------------- LLM answers streamed into the thread message

@pytest.fixture(scope="module")
def llm_bot(pipeline, fake, fake_llm, tmp_path_factory):
    from conftest import llm_pipeline

    server, url, settings = start_bot(llm_pipeline(pipeline, fake_llm, "cooperative"), fake,
                                      tmp_path_factory.mktemp("slack-llm-bot"), slack_stream_interval_seconds=0.4)
    yield url + "/slack/events", settings
    server.close()


def final_update(fake, timeout=30):
    """The chat.update calls up to and including the one that carries the buttons (the final answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        updates = fake.calls_to("chat.update")
        if updates and "feedback_up" in blocks_text(updates[-1]):
            return updates
        time.sleep(0.05)
    raise AssertionError(f"no final answer within {timeout}s: {[c.args.get('text') for c in fake.calls_to('chat.update')]}")


def test_an_llm_answer_streams_into_the_thread_message_then_gets_sources_and_buttons(llm_bot, fake, fake_llm):
    url, settings = llm_bot
    fake_llm.token_delay = 0.07  # about 2 s of writing
    post_event(url, event_callback(app_mention("When was the deal signed?", channel="C20")), SECRET)
    updates = final_update(fake)
    *partials, final = updates
    assert len(fake.calls_to("chat.postMessage")) == 1 and all(u.args["ts"] == updates[0].args["ts"] for u in updates)
    texts = [p.args["text"] for p in partials]
    assert len(texts) >= 3, texts
    assert all(t.endswith(" …") for t in texts)
    bodies = [t.removesuffix(" …") for t in texts]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(bodies, bodies[1:]))  # growing
    assert all("Sources" not in blocks_text(p) and "feedback_up" not in blocks_text(p) for p in partials)
    interval = settings.slack.stream_interval_seconds
    gaps = [b.at - a.at for a, b in zip(updates, updates[1:])]
    assert min(gaps) >= 0.75 * interval, gaps  # never faster than the throttle (less jitter in arrival)
    assert "signed earlier this week" in final.args["text"] and final.args["text"].endswith("[1]")
    body = blocks_text(final)
    assert "*Sources*" in body and "The Hill, 2025-06-27" in body and "feedback_down" in body
    assert fake_llm.requests[-1]["body"]["stream"] is True


def test_an_llm_failure_in_slack_gives_the_offline_answer_with_a_note(llm_bot, fake, fake_llm):
    url, _ = llm_bot

    def down(body):
        raise ConnectionResetError

    fake_llm.behaviours["cooperative"] = down
    post_event(url, event_callback(app_mention("What share of rare earths comes from China?", channel="C21")), SECRET)
    final = final_update(fake)[-1]
    assert "Sixty percent" in final.args["text"]
    assert "Offline answer: the model failed" in blocks_text(final)


def test_llm_text_cannot_mention_anyone_in_slack(llm_bot, fake, fake_llm):
    url, _ = llm_bot
    fake_llm.token_delay = 0.05
    fake_llm.behaviours["cooperative"] = lambda body: "Ping <!channel> and <@U123> and <!here|here> about the deal [1]."
    post_event(url, event_callback(app_mention("When was the deal signed?", channel="C22")), SECRET)
    updates = final_update(fake)
    assert len(updates) >= 2  # partial updates were sent too
    for u in updates:
        sent = json.dumps(u.args, ensure_ascii=False)
        for forbidden in ("<!channel>", "<@U123>", "<!here"):
            assert forbidden not in sent
    assert "&lt;!channel&gt;" in updates[-1].args["text"]
