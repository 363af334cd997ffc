"""The network edge for the tests: a fake Slack.

Everything here speaks the real protocols over loopback (127.0.0.1), so the bot's real slack_sdk/bolt code runs unchanged:

* `FakeSlackAPI` -- the Web API (and response URLs) over HTTP; point `WebClient(base_url=fake.base_url)` at it. It
  keeps what a user would see (`thread`, `channel_messages`, `ephemeral`: the bot's messages as posted, updated and
  deleted) and can be told to fail for a while (`outage`: HTTP 429 with Retry-After, a 5xx, or hanging, per method).
* `sign`, `post_event`, `post_form`, `post_action` -- send requests to the bot signed the way Slack signs them, built
  with `event_callback`, `app_mention`, `message_im`, `slash_command` and `block_actions`.
* `FakeSocketModeServer` -- Slack's Socket Mode WebSocket endpoint; set `fake.socket_url = server.url`.

slack_sdk's WebClient and SocketModeClient read HTTPS_PROXY/HTTP_PROXY themselves, so tests must clear them (conftest
does); the senders here never use a proxy. Standard library only, plus `websockets` for Socket Mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, TypedDict, Unpack
from urllib.error import HTTPError
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import ProxyHandler, Request, build_opener

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

BOT_USER, BOT_ID, TEAM, APP = "UBOT", "BBOT", "T1", "A1"
NOWHERE = "http://127.0.0.1:9/response/unset"  # default response_url: refused at once, never the real Slack

Json = dict[str, Any]
Reply = Json | Callable[["Call"], Json]


@dataclass
class Call:
    """One request the fake received. Header names are lower-cased; `status` is the HTTP status it was answered with."""

    method: str
    args: Json
    headers: dict[str, str]
    status: int = 200
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic())
    path: str = ""  # the URL path it was sent to (a response URL's name is its last part)


def _poll(check: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not result:
        raise AssertionError(describe())
    return result


def _parse_body(body: bytes, content_type: str) -> Json:
    """JSON (chat.* methods) or form-encoded (most others), as slack_sdk sends them. (Multipart file uploads: not parsed.)"""
    text = body.decode("utf-8", "replace")
    if not text:
        return {}
    if content_type.startswith("application/json") or text.lstrip().startswith("{"):
        return json.loads(text)
    return dict(parse_qsl(text, keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    server: Any  # the ThreadingHTTPServer, carrying `.fake`

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_GET

    def _serve(self) -> None:
        url = urlsplit(self.path)
        args = _parse_body(self.rfile.read(int(self.headers.get("Content-Length") or 0)), self.headers.get("Content-Type", ""))
        args.update(parse_qsl(url.query, keep_blank_values=True))  # slack_sdk puts "GET" methods' params in the query
        hook = url.path.startswith("/response/")
        method = "response_url" if hook else url.path.rstrip("/").rsplit("/", 1)[-1]
        status, extra, reply = self.server.fake._serve(method, args, {k.lower(): v for k, v in self.headers.items()}, url.path)
        data, ctype = (b"ok", "text/plain") if hook and status == 200 else (json.dumps(reply).encode(), "application/json")
        try:
            self.send_response(status)
            for name, value in {"Content-Type": f"{ctype}; charset=utf-8", "Content-Length": str(len(data)), **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting (a hanging outage): its loss
            pass

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@dataclass
class Outage:
    """Calls of `methods` ("*": every method, "response_url" for response URLs) fail from `start` to `end`
    (time.monotonic()): HTTP `status` with {"ok": false, "error": error} (and Retry-After on a 429); with `hang`,
    each call is held that many seconds first. With `applied`, Slack did the work anyway (a response that got lost:
    the message is posted, only the answer never arrives in time)."""

    methods: tuple[str, ...]
    start: float
    end: float
    status: int = 500
    retry_after: int = 1
    hang: float = 0.0
    applied: bool = False
    error: str = "internal_error"

    def covers(self, method: str, now: float) -> bool:
        return self.start <= now < self.end and ("*" in self.methods or method in self.methods)


class FakeSlackAPI:
    """A fake Slack Web API on http://127.0.0.1:PORT/, recording every call (failed ones too) as a `Call`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._outages: list[Outage] = []
        self._messages: dict[str, list[Json]] = {}  # channel -> the bot's messages there, as Slack would show them
        self._ephemeral: dict[str, list[Json]] = {}  # response URL name -> the ephemeral messages shown through it
        self._posted: dict[str, list[Json]] = {}  # channel -> every message the bot ever posted (deleted ones marked)
        self._failures: dict[str, list[tuple[int, int, str]]] = {}
        self._replies: dict[tuple[str, str], list[Json]] = {}
        self._responses: dict[str, Reply] = {}
        self._ts = itertools.count()
        self.socket_url = ""  # what apps.connections.open answers: set it to FakeSocketModeServer.url
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeSlackAPI:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-slack-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> FakeSlackAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """With the trailing slash: slack_sdk urljoin()s the method name onto it."""
        assert self._server is not None, "FakeSlackAPI is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def response_url(self, name: str = "r1") -> str:
        """A response URL served here; what is posted to it is recorded as method "response_url" (args = JSON body)."""
        return f"{self.base_url}response/{name}"

    def set_replies(self, channel: str, thread_ts: str, messages: list[Json]) -> None:
        """The messages `conversations.replies` returns for that thread (default: none)."""
        with self._lock:
            self._replies[(channel, thread_ts)] = list(messages)

    def set_response(self, method: str, reply: Reply) -> None:
        """Replace the default reply of `method`: a dict (e.g. {"ok": False, "error": "not_in_channel"}) or a function
        of the Call. Slack answers errors with HTTP 200 too."""
        with self._lock:
            self._responses[method] = reply

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, times: int = 1, error: str = "ratelimited") -> None:
        """Answer the next `times` calls of `method` with HTTP `status`, `Retry-After: retry_after` (whole seconds:
        slack_sdk int()s it, then sleeps that plus up to 1 s of jitter) and {"ok": false, "error": error}."""
        with self._lock:
            self._failures.setdefault(method, []).extend([(status, retry_after, error)] * times)

    def outage(self, methods: str | tuple[str, ...] = "*", seconds: float = 10.0, status: int = 500,
               retry_after: int = 1, hang: float = 0.0, applied: bool = False, error: str | None = None,
               after: float = 0.0) -> Outage:
        """Fail calls of `methods` for `seconds`, starting in `after` seconds (see `Outage`)."""
        start = time.monotonic() + after
        names = (methods,) if isinstance(methods, str) else tuple(methods)
        error = error or ("ratelimited" if status == 429 else "internal_error")
        window = Outage(names, start, start + seconds, status, retry_after, hang, applied, error)
        with self._lock:
            self._outages.append(window)
        return window

    def end_outages(self) -> None:
        with self._lock:
            self._outages.clear()

    def thread(self, channel: str, thread_ts: str | None) -> list[Json]:
        """The bot's messages a user sees in that thread now (with thread_ts None: at the channel's top level)."""
        with self._lock:
            return [dict(m) for m in self._messages.get(channel, []) if m.get("thread_ts") == thread_ts]

    def posted(self, channel: str, thread_ts: str | None) -> list[Json]:
        """Every message the bot ever posted in that thread, as it last looked; deleted ones have "deleted": True."""
        with self._lock:
            return [dict(m) for m in self._posted.get(channel, []) if m.get("thread_ts") == thread_ts]

    def channel_messages(self, channel: str) -> list[Json]:
        with self._lock:
            return [dict(m) for m in self._messages.get(channel, [])]

    def ephemeral(self, name: str) -> list[Json]:
        """The ephemeral messages a user sees through response URL `name` (replace_original and delete_original
        applied)."""
        with self._lock:
            return [dict(m) for m in self._ephemeral.get(name, [])]

    def reset(self) -> None:
        """Forget calls, pending failures, outages, messages, thread replies and scripted responses; the server keeps
        running."""
        with self._lock:
            for store in (self._calls, self._failures, self._replies, self._responses, self._outages, self._messages,
                          self._ephemeral, self._posted):
                store.clear()

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """Wait until at least `count` calls of `method` were received (failed ones count); return them all."""
        return _poll(
            lambda: len(found := self.calls_to(method)) >= count and found,
            timeout,
            lambda: f"expected {count} call(s) to {method} within {timeout}s; got: {[c.method for c in self.calls]}",
        )

    def _serve(self, method: str, args: Json, headers: dict[str, str], path: str = "") -> tuple[int, dict[str, str], Json]:
        """Answer a call, honouring an outage (the wait of a hanging one happens outside the lock)."""
        with self._lock:
            window = next((o for o in self._outages if o.covers(method, time.monotonic())), None)
            if window is None or window.applied:
                answer = self._answer(method, args, headers, path)
            else:
                self._calls.append(Call(method, args, headers, window.status, path=path))
                extra = {"Retry-After": str(window.retry_after)} if window.status == 429 else {}
                answer = window.status, extra, {"ok": False, "error": window.error}
        if window is not None and window.hang:
            time.sleep(window.hang)
        return answer

    def _answer(self, method: str, args: Json, headers: dict[str, str], path: str = "") -> tuple[int, dict[str, str], Json]:
        with self._lock:
            if pending := self._failures.get(method):
                status, retry_after, error = pending.pop(0)
                self._calls.append(Call(method, args, headers, status, path=path))
                return status, {"Retry-After": str(retry_after)}, {"ok": False, "error": error}
            call = Call(method, args, headers, path=path)
            self._calls.append(call)
            custom = self._responses.get(method)
            reply = self._default_reply(call) if custom is None else custom(call) if callable(custom) else dict(custom)
            if method in ("chat.postMessage", "chat.update") and (error := _invalid_message(args)):
                reply = {"ok": False, "error": error}
            if reply.get("ok"):
                self._apply(call, reply)
            return 200, {}, reply

    def _apply(self, call: Call, reply: Json) -> None:
        """What a successful call changes in what users see."""
        a, m = call.args, call.method
        if m == "chat.postMessage":
            message = {"ts": reply.get("ts"), "text": a.get("text", ""), "blocks": _blocks(a.get("blocks")),
                       "thread_ts": a.get("thread_ts") or None, "metadata": _blocks(a.get("metadata")),
                       "user": BOT_USER, "bot_id": BOT_ID}
            self._messages.setdefault(str(a.get("channel")), []).append(message)
            self._posted.setdefault(str(a.get("channel")), []).append(message)
        elif m in ("chat.update", "chat.delete"):
            messages = self._messages.get(str(a.get("channel")), [])
            for i, message in enumerate(messages):
                if message["ts"] == a.get("ts"):
                    if m == "chat.delete":
                        del messages[i]
                        message["deleted"] = True
                    else:
                        message.update(text=a.get("text", ""), blocks=_blocks(a.get("blocks")), edited=True)
                    break
        elif m == "response_url":
            shown = self._ephemeral.setdefault(call.path.rsplit("/", 1)[-1], [])
            if a.get("delete_original") and shown:
                shown.pop()
            elif a.get("replace_original") and shown:
                shown[-1] = dict(a)
            elif not a.get("delete_original"):
                shown.append(dict(a))

    def _default_reply(self, call: Call) -> Json:
        a, m = call.args, call.method
        if m in ("chat.postMessage", "chat.postEphemeral"):
            ts = new_ts()
            if m == "chat.postEphemeral":
                return {"ok": True, "message_ts": ts}
            message = {"type": "message", "text": a.get("text", ""), "ts": ts, "user": BOT_USER, "bot_id": BOT_ID}
            message |= {k: a[k] for k in ("blocks", "thread_ts") if k in a}
            return {"ok": True, "channel": a.get("channel"), "ts": ts, "message": message}
        if m == "chat.update":
            return {"ok": True, "channel": a.get("channel"), "ts": a.get("ts"), "text": a.get("text", "")}
        if m == "chat.delete":
            return {"ok": True, "channel": a.get("channel"), "ts": a.get("ts")}
        if m == "conversations.history":
            oldest = float(a.get("oldest") or 0)
            shown = [self._visible(x, a) for x in self._messages.get(str(a.get("channel")), [])
                     if not x.get("thread_ts") and float(x["ts"]) > oldest]
            return {"ok": True, "messages": shown[::-1], "has_more": False}
        if m == "auth.test":
            return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "dealbot", "team_id": TEAM,
                    "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}
        if m == "conversations.replies":
            messages = self._replies.get((str(a.get("channel")), str(a.get("ts"))), [])
            posted = [self._visible(x, a) for x in self._messages.get(str(a.get("channel")), [])
                      if x.get("thread_ts") == str(a.get("ts"))]
            return {"ok": True, "messages": list(messages) + posted, "has_more": False}
        if m == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        return {"ok": True}


    @staticmethod
    def _visible(message: Json, args: Json) -> Json:
        """A stored message as conversations.* return it: metadata only when asked for (include_all_metadata)."""
        shown = {k: v for k, v in message.items() if k != "metadata"}
        if str(args.get("include_all_metadata", "")).lower() in ("1", "true") and message.get("metadata"):
            shown["metadata"] = message["metadata"]
        return shown


def _invalid_message(args: Json) -> str:
    """What Slack answers a message beyond its limits: more than 50 blocks, a section over 3,000 characters."""
    blocks = _blocks(args.get("blocks")) or []
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    if any(len(((b.get("text") or {}).get("text") or "")) > 3000 for b in blocks if isinstance(b, dict)):
        return "invalid_blocks"
    return "msg_too_long" if len(str(args.get("text") or "")) > 40_000 else ""


def _blocks(value: Any) -> Any:
    """slack_sdk sends blocks and metadata as JSON text inside form bodies, as structures in JSON bodies."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ---------------------------------------------------------------- requests to the bot, signed the way Slack signs them

def sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Request-Timestamp / X-Slack-Signature headers for `body` (v0 HMAC-SHA256 of "v0:{ts}:{body}")."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


class SendOptions(TypedDict, total=False):
    retry_num: int | None  # adds X-Slack-Retry-Num and X-Slack-Retry-Reason: http_timeout, as Slack's redeliveries carry
    timestamp: int | None  # signing time (default: now; bolt refuses anything more than 5 minutes off)
    signature_override: str | None  # sent instead of the real X-Slack-Signature
    timeout: float  # seconds (default 10)


def _post(url: str, body: str, content_type: str, secret: str, **opts: Unpack[SendOptions]) -> tuple[int, str]:
    headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    headers |= sign(body, secret, opts.get("timestamp"))
    if (forged := opts.get("signature_override")) is not None:
        headers["X-Slack-Signature"] = forged
    if (retry_num := opts.get("retry_num")) is not None:
        headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
    request = Request(url, body.encode(), headers, method="POST")
    try:
        with build_opener(ProxyHandler({})).open(request, timeout=opts.get("timeout", 10.0)) as resp:
            return resp.status, resp.read().decode()
    except HTTPError as e:
        return e.code, e.read().decode()


def post_event(url: str, payload: Json, secret: str, **opts: Unpack[SendOptions]) -> tuple[int, str]:
    """POST an Events API payload as JSON; returns (status, body text) -- error statuses are returned, not raised."""
    return _post(url, json.dumps(payload), "application/json", secret, **opts)


def post_form(url: str, fields: dict[str, str], secret: str, **opts: Unpack[SendOptions]) -> tuple[int, str]:
    """POST form-encoded fields: a slash command (see `slash_command`)."""
    return _post(url, urlencode(fields), "application/x-www-form-urlencoded", secret, **opts)


def post_action(url: str, payload: Json, secret: str, **opts: Unpack[SendOptions]) -> tuple[int, str]:
    """POST an interactivity payload as the form body `payload=<json>` (see `block_actions`)."""
    return post_form(url, {"payload": json.dumps(payload)}, secret, **opts)


# ---------------------------------------------------------------- payload builders, shaped as Slack documents them

_seq = itertools.count(1)


_clock = {"last": 0.0}
_clock_lock = threading.Lock()


def new_ts() -> str:
    """A fresh, unique message ts ("seconds.micros") as Slack makes them: the time to the microsecond, always later
    than the one before, so a reply's ts comes after its question's (conversations.history's `oldest` relies on it)."""
    with _clock_lock:
        _clock["last"] = max(time.time(), _clock["last"] + 1e-6)
        return f"{_clock['last']:.6f}"


def _trigger_id() -> str:
    return f"{next(_seq)}.{int(time.time())}.{uuid.uuid4().hex}"


def _rich_text(text: str) -> list[Json]:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": "rt1", "elements": [section]}]


def event_callback(event: Json, event_id: str | None = None, team_id: str = TEAM, api_app_id: str = APP,
                   user_id: str = BOT_USER) -> Json:
    """Wrap an event in the Events API envelope; `event_id` defaults to a fresh "Ev..." (reuse one to fake a retry)."""
    return {
        "token": "verification-token", "team_id": team_id, "api_app_id": api_app_id, "event": event,
        "type": "event_callback", "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()), "is_ext_shared_channel": False,
        "event_context": f"4-{event.get('type')}-{team_id}-{event.get('channel', '')}",
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": user_id, "is_bot": True,
                            "is_enterprise_install": False}],
    }


def app_mention(text: str, channel: str = "C1", user: str = "U1", ts: str | None = None, thread_ts: str | None = None) -> Json:
    """An `app_mention` event. Slack's text always holds the mention: "<@UBOT> " is prefixed unless already there."""
    text = text if f"<@{BOT_USER}>" in text else f"<@{BOT_USER}> {text}"
    ts = ts or new_ts()
    event = {"client_msg_id": str(uuid.uuid4()), "type": "app_mention", "text": text, "user": user, "ts": ts,
             "team": TEAM, "blocks": _rich_text(text), "channel": channel, "event_ts": ts}
    return event | ({"thread_ts": thread_ts} if thread_ts else {})


def message_im(text: str, channel: str = "D1", user: str = "U1", ts: str | None = None, thread_ts: str | None = None,
               subtype: str | None = None, bot_id: str | None = None) -> Json:
    """A `message` event in a DM (channel_type "im"); with `subtype`/`bot_id` it is a bot's or a system message."""
    ts = ts or new_ts()
    event: Json = {"type": "message", "text": text, "user": user, "ts": ts, "team": TEAM, "channel": channel,
                   "event_ts": ts, "channel_type": "im"}
    if subtype is None and bot_id is None:  # only messages a person typed carry these
        event |= {"client_msg_id": str(uuid.uuid4()), "blocks": _rich_text(text)}
    return event | {k: v for k, v in {"thread_ts": thread_ts, "subtype": subtype, "bot_id": bot_id}.items() if v}


def slash_command(text: str, command: str = "/dealbot", channel_id: str = "C1", user_id: str = "U1",
                  response_url: str = NOWHERE, trigger_id: str | None = None) -> dict[str, str]:
    """The form fields of a slash command (send with `post_form`); pass `response_url=fake.response_url(...)`."""
    return {"token": "verification-token", "team_id": TEAM, "team_domain": "fake", "channel_id": channel_id,
            "channel_name": "general", "user_id": user_id, "user_name": user_id.lower(), "command": command,
            "text": text, "api_app_id": APP, "is_enterprise_install": "false", "response_url": response_url,
            "trigger_id": trigger_id or _trigger_id()}


def block_actions(action_id: str, value: str, user: str = "U1", channel: str = "C1", message_ts: str | None = None,
                  response_url: str = NOWHERE, container: Json | None = None, message: Json | None = None,
                  block_id: str = "b1") -> Json:
    """A `block_actions` payload: a button clicked on the bot's message `message_ts` (send with `post_action`)."""
    message_ts = message_ts or new_ts()
    return {
        "type": "block_actions", "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": APP, "token": "verification-token", "trigger_id": _trigger_id(),
        "container": container or {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "team": {"id": TEAM, "domain": "fake"}, "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel, "name": "general"},
        "message": message or {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": message_ts, "text": "", "team": TEAM},
        "state": {"values": {}}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": block_id, "value": value,
                     "text": {"type": "plain_text", "text": action_id, "emoji": True}, "action_ts": new_ts()}],
    }


# ---------------------------------------------------------------- Socket Mode

class FakeSocketModeServer:
    """Slack's Socket Mode endpoint on ws://127.0.0.1:PORT/link: says hello, sends envelopes, records what comes back.

    Plain ws:// works with slack_sdk's builtin client (it skips TLS for any port but 443); pings are answered by
    `websockets`. Close the client before `stop()`, or it will reconnect through apps.connections.open.
    """

    def __init__(self, app_id: str = APP) -> None:
        self.app_id = app_id
        self.received: list[Json] = []  # every message clients sent, in order; acks are {"envelope_id": ...[, "payload"]}
        self._lock = threading.Lock()
        self._conns: list[ServerConnection] = []
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: Server | None = None

    def start(self) -> FakeSocketModeServer:
        async def boot() -> None:
            self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)

        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-socket-mode", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Close the server and its connections (code 1001), then the event loop."""
        if self._thread is None or self._server is None:
            return
        server = self._server

        async def shutdown() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> FakeSocketModeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeSocketModeServer is not started"
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/link"

    @property
    def connected(self) -> bool:
        with self._lock:
            return bool(self._conns)

    async def _handle(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({
            "type": "hello", "num_connections": 1, "connection_info": {"app_id": self.app_id},
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
        }))
        with self._lock:
            self._conns.append(ws)
        try:
            async for raw in ws:
                with self._lock:
                    self.received.append(json.loads(raw))
        except ConnectionClosed:  # slack_sdk's builtin client drops the socket without a close frame
            pass
        finally:
            with self._lock:
                self._conns.remove(ws)

    def send(self, message: Json, timeout: float = 10.0) -> None:
        """Send any JSON message (e.g. {"type": "disconnect", "reason": "refresh_requested"}) to the newest client."""
        _poll(lambda: self.connected, timeout, lambda: f"no Socket Mode client connected to {self.url} within {timeout}s")
        with self._lock:
            ws = self._conns[-1]
        asyncio.run_coroutine_threadsafe(ws.send(json.dumps(message)), self._loop).result(timeout)

    def send_envelope(self, payload: Json, type_: str = "events_api", accepts_response_payload: bool = False,
                      timeout: float = 10.0) -> str:
        """Send an envelope (type events_api, slash_commands or interactive); return its envelope_id."""
        envelope_id = str(uuid.uuid4())
        self.send({"envelope_id": envelope_id, "type": type_, "payload": payload,
                   "accepts_response_payload": accepts_response_payload}, timeout)
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Json:
        """The client's first message carrying `envelope_id` (its ack), waiting up to `timeout` seconds."""
        def find() -> Json | None:
            with self._lock:
                return next((m for m in self.received if m.get("envelope_id") == envelope_id), None)

        return _poll(find, timeout, lambda: f"no ack for envelope {envelope_id} within {timeout}s; received: {self.received}")
