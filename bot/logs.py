"""How dealbot's processes log: readable text, or JSON (`--log-format json`, DEALBOT_LOG_FORMAT, `log_format`) with
one object per line: time, level, event (the message), logger, and the fields a line carries (event id, channel,
latency, outcome...). python-json-logger writes the objects.

Whatever the format, a filter on the handler masks secrets before a line is written: the values of the Slack tokens,
the signing secret and any *_API_KEY / *_TOKEN / *_SECRET / PGPASSWORD variable of the environment, a password in a
database URL, and anything shaped like a Slack token, wherever they appear (message, fields, traceback). Question
text goes into a line only with `log_questions = true` (`question_fields`).
"""

from __future__ import annotations

import logging
import os
import re
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "[redacted]"
_SECRET_NAMES = re.compile(r"(?:^SLACK_(?:BOT_TOKEN|APP_TOKEN|SIGNING_SECRET)$|_API_KEY$|_TOKEN$|_SECRET$|^PGPASSWORD$)")
_SHAPES = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+|(?<=://)([^:/@\s]+):[^@/\s]+(?=@)")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def secrets_in_env(env=None) -> list[str]:
    """The secret values of the environment worth masking (long enough not to mask ordinary words)."""
    env = os.environ if env is None else env
    return sorted({v for k, v in env.items() if _SECRET_NAMES.search(k) and len(v) >= 6}, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _SHAPES.sub(lambda m: f"{m.group(1)}:{MASK}" if m.group(1) else MASK, text)


class Redact(logging.Filter):
    """Masks secrets in a record's message, arguments, fields and traceback before any formatter sees them."""

    def __init__(self, secrets: list[str] | None = None):
        super().__init__()
        self.secrets = secrets_in_env() if secrets is None else secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, mask(value, self.secrets))
        return True


class _Text(logging.Formatter):
    """The text format, with a line's fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        return line + ("  " + " ".join(f"{k}={v}" for k, v in fields.items()) if fields else "")


def formatter(fmt: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={
            "asctime": "time", "levelname": "level", "message": "event", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z", json_ensure_ascii=False)
    return _Text(text_format, datefmt="%Y-%m-%dT%H:%M:%S%z")


def configure(fmt: str = "text", level: int = logging.INFO, stream=None, text_format: str = TEXT_FORMAT) -> None:
    """Send every log line to stderr (or `stream`) in `fmt` ("text" or "json"), secrets masked."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt, text_format))
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def question_fields(settings, question: str) -> dict:
    """What a log line says of a question: its text only with log_questions, else its length."""
    if getattr(settings, "log_questions", False):
        return {"question": question}
    return {"question_chars": len(question)}
