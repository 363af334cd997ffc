"""Running the Slack app in one process: HTTP on waitress (a WSGI server) through bolt's WSGI adapter, or Socket
Mode through slack_sdk's built-in client. Both answer from the same Pipeline, loaded before the first request.
`dealbot serve --http` puts an HTTP front of its own before the app instead (bot/slack/front.py, with the same
request check); the one-process WSGI server stays for embedding the app and for tests.

In HTTP mode a request reaches bolt only once it is shown to come from Slack: its signature headers are checked,
then its body is read (at most `slack.max_request_bytes`) and its signature verified, then the body is checked to
be what Slack sends (UTF-8 JSON or a form). Anything else is refused with 401 (413 for a body over the cap, 400 for
a signed body that does not parse) and one short log line, before anything parses it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from ..metrics import Readiness, probe
from .app import context_of

log = logging.getLogger("dealbot.slack")

EVENTS_PATH = "/slack/events"
MAX_CLOCK_SKEW = 300  # seconds: Slack's own rule for a request's timestamp
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Refused(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class RequestCheck:
    """Slack's request signing (v0: HMAC-SHA256 of "v0:{timestamp}:{body}"), checked before anything is parsed."""

    secret: str
    max_bytes: int

    def body(self, environ) -> bytes:
        """The request's body once it is shown to be Slack's; Refused otherwise."""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        self.headers(timestamp, signature, environ.get("CONTENT_LENGTH") or "")
        body = self._read(environ)
        self.verify(timestamp, signature, body, environ.get("CONTENT_TYPE", ""))
        return body

    def headers(self, timestamp: str, signature: str, declared: str) -> None:
        """What can be refused before the body is read: the signature headers and the declared length."""
        if not timestamp or not signature:
            raise Refused("401 Unauthorized", "no signature headers")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise Refused("401 Unauthorized", "the timestamp is not a number")
        if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
            raise Refused("401 Unauthorized", "the timestamp is more than 5 minutes off")
        if not _SIGNATURE.fullmatch(signature):
            raise Refused("401 Unauthorized", "the signature is malformed")
        if declared and not declared.isdigit():
            raise Refused("400 Bad Request", "Content-Length is not a number")
        if declared and int(declared) > self.max_bytes:
            raise Refused("413 Payload Too Large", f"a body of {declared} bytes (the cap is {self.max_bytes})")

    def verify(self, timestamp: str, signature: str, body: bytes, content_type: str) -> dict | None:
        """The body's signature, then its form; the JSON object of a JSON body (None for a form)."""
        if len(body) > self.max_bytes:
            raise Refused("413 Payload Too Large", f"a body over {self.max_bytes} bytes")
        expected = "v0=" + hmac.new(self.secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Refused("401 Unauthorized", "the signature does not match")
        return _check_form(body, content_type)

    def _read(self, environ) -> bytes:
        declared = environ.get("CONTENT_LENGTH") or ""
        stream = environ.get("wsgi.input") or io.BytesIO()
        return stream.read(int(declared)) if declared else stream.read(self.max_bytes + 1)


def _check_form(body: bytes, content_type: str) -> dict | None:
    """A signed body must still be what Slack sends: UTF-8, and a JSON object or a form (whose `payload`, if any,
    is a JSON object). Returns the JSON object of a JSON body."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            parsed = json.loads(text)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            return parsed
        payload = parse_qs(text, strict_parsing=bool(text)).get("payload")
        if payload and not isinstance(json.loads(payload[0]), dict):
            raise ValueError("payload is not a JSON object")
        return None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise Refused("400 Bad Request", f"a signed body that does not parse ({type(exc).__name__})") from None


def wsgi_app(app: App, readiness: Readiness | None = None):
    """The WSGI application: Slack's requests at /slack/events, a health check at /healthz, readiness at /readyz,
    Prometheus metrics at /metrics (bot/metrics.py), 404 elsewhere."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)
    ctx = context_of(app)
    readiness = readiness or Readiness(ctx.pipeline)
    check = RequestCheck(ctx.signing_secret, ctx.settings.slack.max_request_bytes) if ctx.signing_secret else None

    def application(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != EVENTS_PATH and (answer := probe(path, environ.get("REQUEST_METHOD", ""), readiness)):
            start_response(answer[0], [("Content-Type", answer[1])])
            return [answer[2]]
        if path != EVENTS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if check is not None:
            try:
                body = check.body(environ)
            except Refused as refused:
                log.warning("refused a request from %s: %s", environ.get("REMOTE_ADDR", "?"), refused.reason)
                start_response(refused.status, [("Content-Type", "text/plain")])
                return [refused.status.encode() + b"\n"]
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return slack(environ, start_response)

    return application


def make_http_server(app: App, host: str, port: int, threads: int = 8, readiness: Readiness | None = None):
    """A waitress server bound to host:port (not yet serving): call .run(), and .close() to stop."""
    from waitress.server import create_server

    limit = context_of(app).settings.slack.max_request_bytes
    return create_server(wsgi_app(app, readiness), host=host, port=port, threads=threads, ident="dealbot",
                         max_request_body_size=limit + 1)


def serve_socket_mode(app: App, app_token: str) -> None:
    SocketModeHandler(app, app_token=app_token, web_client=app.client).start()
