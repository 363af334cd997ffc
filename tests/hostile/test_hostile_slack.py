"""Hostile Slack requests against the real app over real HTTP: unsigned and malformed requests are refused before
anything parses them (401, one short log line, no traceback); signed requests with odd payloads are acknowledged
and never crash a listener; every hostile question asked in Slack gets exactly one reply within Slack's limits."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from urllib.parse import urlencode, urlsplit

import pytest

from _slack_inputs import FORBIDDEN, QUESTIONS, SECRET, answered, running_bot, sent_text, wait_until, within_slack_limits
from bot.question import clean
from bot.slack.blocks import USAGE
from slack_fakes import FakeSlackAPI, app_mention, block_actions, event_callback, message_im, post_event, slash_command


@pytest.fixture(scope="module")
def fake():
    with FakeSlackAPI() as api:
        yield api


@pytest.fixture(scope="module")
def bot(sample_pipeline, fake, tmp_path_factory):
    with running_bot(sample_pipeline, fake, tmp_path_factory.mktemp("hostile-slack")) as (url, settings, app):
        yield url, settings


@pytest.fixture(autouse=True)
def _fresh_fake(fake):
    fake.reset()


def send_raw(url: str, body: bytes, headers: dict, method: str = "POST", chunked: bool = False) -> tuple[int, bytes]:
    """Any request at all, as a hostile client can send it (http.client: no header is added or checked for us)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif "Content-Length" not in headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            if chunked:
                for i in range(0, len(body), 65536):
                    piece = body[i:i + 65536]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            else:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):  # refused before it was all sent
            pass
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/json"}


EVENT = json.dumps(event_callback(app_mention("When was the deal signed?", channel="CX"))).encode()
BROKEN = b'{"type": "event_callback", "event": {"type": "app_mention", "text": '
HUGE = b'{"a": "' + b"x" * 2_000_000 + b'"}'
NOW = lambda: str(int(time.time()))  # noqa: E731
ZEROS = "v0=" + "0" * 64
SLACK_TEXT_LIMIT = 40_000  # Slack cuts a message's text there: no longer question arrives from Slack

# (id, body, headers, expected status). Headers are checked first, then the size, then the signature, then the form.
UNSIGNED = [
    ("malformed-json-no-headers", BROKEN, {"Content-Type": "application/json"}, 401),
    ("malformed-json-forged", BROKEN, _signed(BROKEN, "not-the-secret"), 401),
    ("timestamp-letters", EVENT, {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-float", EVENT, {"X-Slack-Request-Timestamp": "1700000000.5", "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-negative", EVENT, {"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-huge", EVENT, {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-arabic-digits", EVENT, {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠".encode(), "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-empty", EVENT, {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-spaces", EVENT, {"X-Slack-Request-Timestamp": " 1700000000 ", "X-Slack-Signature": ZEROS}, 401),
    ("timestamp-stale", EVENT, _signed(EVENT, ts=int(time.time()) - 3600), 401),
    ("timestamp-future", EVENT, _signed(EVENT, ts=int(time.time()) + 3600), 401),
    ("no-signature", EVENT, {"X-Slack-Request-Timestamp": "1700000000"}, 401),
    ("no-timestamp", EVENT, {"X-Slack-Signature": ZEROS}, 401),
    ("no-headers", EVENT, {}, 401),
    ("signature-not-hex", EVENT, {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=" + "z" * 64}, 401),
    ("signature-short", EVENT, {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=abc"}, 401),
    ("signature-v1", EVENT, {**_signed(EVENT), "X-Slack-Signature": "v1=" + "a" * 64}, 401),
    ("signature-of-another-body", EVENT, _signed(EVENT.replace(b"signed", b"sealed")), 401),
    ("signature-upper-case", EVENT, {**_signed(EVENT), "X-Slack-Signature": _signed(EVENT)["X-Slack-Signature"].upper()}, 401),
    ("signature-nul", EVENT, {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": b"v0=\x00"}, 400),
    ("huge-body-no-headers", HUGE, {"Content-Type": "application/json"}, 413),  # waitress: never read
    ("huge-body-forged", HUGE, _signed(HUGE, "not-the-secret"), 413),
    ("content-length-lies", EVENT, {**_signed(EVENT, "not-the-secret"), "Content-Length": str(10 ** 12)}, 413),
    ("content-length-letters", EVENT, {**_signed(EVENT, "not-the-secret"), "Content-Length": "ten"}, 400),
    ("invalid-utf8-no-headers", b"\xff\xfe\xfd" * 100, {}, 401),
    ("nul-bytes-forged", b"\x00" * 1000, _signed(b"\x00" * 1000, "nope"), 401),
    ("empty-body-no-headers", b"", {}, 401),
    ("form-no-headers", b"payload=%7B%7D", {"Content-Type": "application/x-www-form-urlencoded"}, 401),
]

SIGNED_BUT_MALFORMED = [
    ("signed-malformed-json", BROKEN, "application/json"),
    ("signed-json-array", b"[1, 2, 3]", "application/json"),
    ("signed-json-string", b'"hello"', "application/json"),
    ("signed-invalid-utf8", b'{"a": "\xff\xfe"}', "application/json"),
    ("signed-deep-nesting", b"[" * 100_000, "application/json"),
    ("signed-empty-json", b"", "application/json"),
    ("signed-form-payload-not-json", b"payload=%7Bnot+json", "application/x-www-form-urlencoded"),
    ("signed-form-payload-array", b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
    ("signed-form-garbage", b"%%%&&&===", "application/x-www-form-urlencoded"),
]


def _refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dealbot.slack" and "refused" in r.getMessage()]


@pytest.mark.parametrize("name, body, headers, status", UNSIGNED, ids=[c[0] for c in UNSIGNED])
def test_an_unsigned_or_malformed_request_is_refused_before_parsing(bot, fake, caplog, name, body, headers, status):
    url, _ = bot
    caplog.set_level(logging.INFO)
    got, _ = send_raw(url, body, headers)
    assert got == status
    refusals = _refusals(caplog)
    # One short line; waitress itself refuses some requests before the app sees them (a NUL in a header, a body
    # over the cap), without a line of ours.
    assert len(refusals) == 1 or (status in (400, 413) and not refusals)
    assert all(len(r.getMessage()) < 200 and r.exc_info is None for r in refusals)
    assert not [r for r in caplog.records if r.exc_info]
    time.sleep(0.2)
    assert [c for c in fake.calls if c.method.startswith("chat.")] == []


@pytest.mark.parametrize("name, body, ctype", SIGNED_BUT_MALFORMED, ids=[c[0] for c in SIGNED_BUT_MALFORMED])
def test_a_signed_body_that_does_not_parse_is_refused_with_400(bot, fake, caplog, name, body, ctype):
    url, _ = bot
    caplog.set_level(logging.INFO)
    got, _ = send_raw(url, body, {**_signed(body), "Content-Type": ctype})
    assert got == 400
    assert len(_refusals(caplog)) == 1 and not [r for r in caplog.records if r.exc_info]


def test_a_huge_chunked_body_is_refused_without_being_read_whole(bot):
    url, _ = bot
    status, _ = send_raw(url, HUGE, _signed(HUGE, "not-the-secret"), chunked=True)
    assert status == 413


def test_after_a_flood_of_refused_requests_a_real_question_is_answered(bot, fake):
    url, _ = bot
    for name, body, headers, _ in UNSIGNED * 3:
        send_raw(url, body, headers)
    event = app_mention("When was the deal signed?", channel="C-after-flood")
    assert post_event(url, event_callback(event), SECRET)[0] == 200
    assert "signed" in answered(fake, "C-after-flood", event["ts"])[0]["text"]


def _event(**fields) -> dict:
    base = app_mention("When was the deal signed?", channel="C-odd")
    return event_callback({**base, **fields})


def _odd_payloads() -> list[tuple[str, str, object]]:
    """(id, kind, payload): signed requests Slack could send, or an attacker with the secret could: acknowledged,
    never a crash, at most one reply."""
    no_event = event_callback(app_mention("x", channel="C-odd"))
    del no_event["event"]
    actions = [
        ("value-not-json", block_actions("feedback_up", "not json", channel="C-odd")),
        ("value-without-id", block_actions("feedback_up", json.dumps({"x": 1}), channel="C-odd")),
        ("value-id-letters", block_actions("feedback_down", json.dumps({"answer_id": "x"}), channel="C-odd")),
        ("value-id-unknown", block_actions("feedback_up", json.dumps({"answer_id": 987654}), channel="C-odd")),
        ("share-unknown", block_actions("share_answer", json.dumps({"answer_id": 987654}), channel="C-odd")),
        ("action-unknown", block_actions("launch_missiles", "1", channel="C-odd")),
    ]
    no_user = block_actions("feedback_up", json.dumps({"answer_id": 1}), channel="C-odd")
    del no_user["user"]
    return [
        ("event-missing", "event", no_event),
        ("channel-list", "event", _event(channel=["C1", "C2"])),
        ("ts-number", "event", _event(ts=1700000000.5)),
        ("text-number", "event", _event(text=12345)),
        ("text-null", "event", _event(text=None)),
        ("text-dict", "event", _event(text={"a": 1})),
        ("user-missing", "event", _event(user=None)),
        ("user-dict", "event", _event(user={"id": "U1"})),
        ("thread-ts-garbage", "event", _event(thread_ts="not-a-ts")),
        ("unknown-event-type", "event", event_callback({"type": "reaction_added", "user": "U1", "reaction": "+1"})),
        ("bot-message-im", "event", event_callback(message_im("I am a bot <!channel>", channel="D-odd", bot_id="B9"))),
        ("edited-message-im", "event", event_callback(message_im("edited", channel="D-odd", subtype="message_changed"))),
        ("url-verification", "event", {"type": "url_verification", "challenge": "abc123", "token": "t"}),
        ("unknown-envelope", "event", {"type": "app_rate_limited", "minute_rate_limited": 1}),
        ("command-no-response-url", "form", {k: v for k, v in slash_command("When?").items() if k != "response_url"}),
        ("command-no-text", "form", {k: v for k, v in slash_command("x").items() if k != "text"}),
        ("command-only-markup", "form", slash_command("<!channel> <@U1>")),
        ("command-unknown", "form", slash_command("When?", command="/other")),
        ("command-control-chars", "form", slash_command("\x00\x07When\x1b was it signed?")),
        *[(f"action-{n}", "action", p) for n, p in actions],
        ("action-no-user", "action", no_user),
        ("view-submission", "action", {"type": "view_submission", "user": {"id": "U1"}, "view": {"id": "V1"}}),
        ("shortcut", "action", {"type": "shortcut", "callback_id": "x", "user": {"id": "U1"}}),
    ]


ODD = _odd_payloads()


@pytest.mark.parametrize("name, kind, payload", ODD, ids=[c[0] for c in ODD])
def test_a_signed_odd_payload_is_acknowledged_and_never_crashes(bot, fake, caplog, name, kind, payload):
    url, _ = bot
    caplog.set_level(logging.INFO)
    if kind == "event":
        body, ctype = json.dumps(payload).encode(), "application/json"
    elif kind == "form":
        body, ctype = urlencode(payload).encode(), "application/x-www-form-urlencoded"
    else:
        body, ctype = urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    started = time.monotonic()
    status, text = send_raw(url, body, {**_signed(body), "Content-Type": ctype})
    assert time.monotonic() - started < 3
    assert status in (200, 404)  # 404: bolt's answer to a request no listener handles
    if name == "url-verification":
        assert status == 200 and b"abc123" in text
    time.sleep(0.5)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    posted = [c for c in fake.calls if c.method in ("chat.postMessage", "response_url")]
    assert len(posted) <= 2  # a placeholder and an answer at most
    for call in posted:
        for forbidden in FORBIDDEN:
            assert forbidden not in sent_text(call.args)


@pytest.mark.parametrize("name, text", QUESTIONS, ids=[n for n, _ in QUESTIONS])
def test_a_hostile_question_in_slack_gets_exactly_one_reply(bot, fake, name, text):
    url, _ = bot
    channel = f"C-{name}"
    text = text[:SLACK_TEXT_LIMIT]
    event = app_mention(text, channel=channel)
    started = time.monotonic()
    assert post_event(url, event_callback(event), SECRET)[0] == 200
    assert time.monotonic() - started < 3
    shown = answered(fake, channel, event["ts"])
    time.sleep(0.1)
    assert len(fake.thread(channel, event["ts"])) == 1 and len(shown) == 1
    within_slack_limits(shown[0])
    if not clean(_without_markup(text)):
        assert shown[0]["text"] == USAGE
    else:
        assert "Looking through" not in shown[0]["text"]
    if len(clean(_without_markup(text))) > 1000:
        assert "longer than 1000 characters" in sent_text(shown[0]["blocks"])


def _without_markup(text: str) -> str:
    from bot.slack.answering import clean_question

    return clean_question(text, 10 ** 9)[0]


SLASH = [q for q in QUESTIONS if q[0] in {"empty", "nul-only", "100kb-words", "channel", "labelled-link",
                                            "ignore-instructions", "lone-surrogates", "unclosed-links", "c0-all",
                                            "bidi-override", "100kb-emoji", "sql"}]


@pytest.mark.parametrize("name, text", SLASH, ids=[n for n, _ in SLASH])
def test_a_hostile_slash_command_is_acked_and_answered_once_privately(bot, fake, name, text):
    url, _ = bot
    hook = f"h-{name}"
    text = text[:SLACK_TEXT_LIMIT]
    # A lone surrogate goes as the bytes it stands for (%ED%B3%BF...): invalid UTF-8 inside the form.
    body = urlencode(slash_command(text, response_url=fake.response_url(hook)), errors="surrogatepass").encode()
    started = time.monotonic()
    status, ack = send_raw(url, body, {**_signed(body), "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and time.monotonic() - started < 3
    if not _without_markup(text):
        assert USAGE.encode() in ack
        time.sleep(0.3)
        assert fake.ephemeral(hook) == []
        return
    shown = wait_until(lambda: fake.ephemeral(hook), 30, "the private answer")
    time.sleep(0.1)
    assert len(fake.ephemeral(hook)) == 1 and len(fake.calls_to("response_url")) == 1
    within_slack_limits(shown[0])
