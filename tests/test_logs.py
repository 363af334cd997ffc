"""The log format (bot/logs.py): one JSON object per line with its fields, secrets masked in the message, the fields
and the traceback, in either format; question text only with log_questions. (A whole Slack session's logs are
read in tests/test_replicas.py.)"""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import configure, question_fields
from conftest import make_settings


@pytest.fixture
def captured(monkeypatch):
    """Configure logging as a process would, into a buffer; the root logger is restored afterwards."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-log-test-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-log-test-abcdef")
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    buffers = {}

    def setup(fmt: str) -> io.StringIO:
        buffers[fmt] = io.StringIO()
        configure(fmt, stream=buffers[fmt])
        return buffers[fmt]

    yield setup
    root.handlers[:], root.level = saved[0], saved[1]


def test_json_lines_carry_time_level_event_and_fields_with_secrets_masked(captured):
    out = captured("json")
    log = logging.getLogger("dealbot.test")
    log.info("answered", extra={"channel": "C1", "latency_ms": 12.5, "outcome": "answered"})
    log.warning("calling with token %s", "xoxb-log-test-0123456789", extra={"header": "Bearer xoxb-other-99999"})
    try:
        raise RuntimeError("the key was sk-ant-log-test-abcdef, the URL postgresql://bot:pw-123@db/x")
    except RuntimeError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    first = records[0]
    assert {"time", "level", "event", "logger"} <= set(first)
    assert (first["event"], first["level"], first["channel"], first["latency_ms"], first["outcome"]) == (
        "answered", "INFO", "C1", 12.5, "answered")
    assert records[1]["event"] == "calling with token [redacted]" and records[1]["header"] == "Bearer [redacted]"
    assert "RuntimeError" in records[2]["exc_info"] and "bot:[redacted]@db" in records[2]["exc_info"]
    text = out.getvalue()
    for secret in ("xoxb-log-test-0123456789", "sk-ant-log-test-abcdef", "xoxb-other-99999", "pw-123"):
        assert secret not in text


def test_text_lines_are_masked_too(captured):
    out = captured("text")
    logging.getLogger("dealbot.test").info("token %s", "xoxb-log-test-0123456789", extra={"channel": "C2"})
    line = out.getvalue().strip()
    assert line.endswith("INFO dealbot.test: token [redacted]  channel=C2")


def test_question_text_is_logged_only_when_asked_for(tmp_path):
    question = "What did they agree in private?"
    assert question_fields(make_settings(tmp_path), question) == {"question_chars": len(question)}
    assert question_fields(make_settings(tmp_path, log_questions="true"), question) == {"question": question}
