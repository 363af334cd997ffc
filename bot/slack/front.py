"""The HTTP front of `dealbot serve --http`: a process of its own that acknowledges Slack while the bot's process
answers.

Answering holds the bot's interpreter (the GIL) for long stretches; an acknowledgement made in the same process
waits behind it. So the port is served by this small process (uvicorn on httptools, an ASGI app), started and
watched by the bot (bot/slack/relay.py), and it does only what an acknowledgement needs:

- every request to /slack/events passes the same checks as in-process serving (bot/slack/server.py: signature
  headers, declared length, size cap, signature, form), refused with 401/413/400 before anything parses it;
- an Events API callback is kept in the inbox (bot/slack/inbox.py; one transaction for all the events that
  arrived together) and acknowledged once it is kept; the bot takes it in from there, so an acknowledged event survives
  a crash of either process;
- everything else for Slack (slash commands, interactivity, URL verification), whose acknowledgement carries the
  bot's words, and the probes (/healthz, /readyz, /metrics: the bot's own) are relayed to the bot and its answer
  returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from multiprocessing.connection import Client, Connection

from .server import EVENTS_PATH, Refused, RequestCheck

log = logging.getLogger("dealbot.slack")

PROBES = ("/healthz", "/readyz", "/metrics")
SLACK_TIMEOUT = 2.5  # seconds a relayed Slack request may take: Slack gives up after 3
PROBE_TIMEOUT = 5.0
SLOW_KEEP = 0.05  # seconds: a write to the inbox that took longer is logged
_KEPT_HEADERS = ("content-type", "x-slack-request-timestamp", "x-slack-signature", "x-slack-retry-num",
                 "x-slack-retry-reason")


class Unanswered(Exception):
    """The bot did not answer a relayed request in time (busy, stopping or gone)."""


class Relay:
    """Requests to the bot's process over its Unix socket, on a few reused connections."""

    def __init__(self, address: str, authkey: bytes):
        self.address, self.authkey = address, authkey
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()

    def call(self, request: tuple, timeout: float):
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = None
        try:
            conn = conn or Client(self.address, family="AF_UNIX", authkey=self.authkey)
            conn.send(request)
            if not conn.poll(timeout):
                raise Unanswered(f"no answer within {timeout:.1f} s")
            answer = conn.recv()
        except (OSError, EOFError, Unanswered) as exc:
            if conn is not None:
                conn.close()
            raise Unanswered(str(exc) or type(exc).__name__) from None
        self._idle.put(conn)
        return answer


class Keeper:
    """Keeps events in the inbox (bot/slack/inbox.py) from a thread of its own: whatever arrived while the last
    write ran goes in the next one, in one transaction, so a burst costs a few commits rather than one each."""

    def __init__(self, inbox, nudge: Connection):
        self.inbox, self.nudge = inbox, nudge
        os.set_blocking(nudge.fileno(), False)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="dealbot-inbox", daemon=True).start()

    async def keep(self, body: str, headers: dict) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((body, headers, loop, done))
        await done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            started = time.perf_counter()
            try:
                self.inbox.keep([(body, headers) for body, headers, _, _ in batch])
                failure = None
                self._nudge()
                took = time.perf_counter() - started
                if took > SLOW_KEEP:  # every acknowledgement of the batch waited this long
                    log.info("keeping %d events took %.0f ms", len(batch), took * 1000)
            except Exception as exc:  # the senders are told (a 503: Slack sends the event again)
                log.exception("keeping %d events failed", len(batch))
                failure = exc
            loop = batch[0][2]  # the front's one event loop: woken once for the whole batch
            loop.call_soon_threadsafe(_settle, [done for _, _, _, done in batch], failure)

    def _nudge(self) -> None:
        """Tell the bot there is something in the inbox; a full pipe means it has been told already."""
        try:
            self.nudge.send_bytes(b"!")
        except BlockingIOError:
            pass


def _settle(futures: list[asyncio.Future], failure: Exception | None) -> None:
    for done in futures:
        if done.done():  # its sender went away
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)


class FrontApp:
    """The ASGI application of the front."""

    def __init__(self, check: RequestCheck | None, keeper: Keeper, relay: Relay):
        self.check, self.keeper, self.relay = check, keeper, relay

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in PROBES:
            await self._probe(path, method, send)
        elif path != EVENTS_PATH:
            await _respond(send, 404, b"not found\n")
        else:
            await self._slack(scope, receive, send)

    async def _probe(self, path: str, method: str, send) -> None:
        try:
            answer = await asyncio.to_thread(self.relay.call, ("probe", path, method), PROBE_TIMEOUT)
        except Unanswered as exc:
            reason = f"the bot's process does not answer ({exc})"
            body = json.dumps({"ready": False, "reason": reason}).encode() + b"\n" if path == "/readyz" else b"unavailable\n"
            await _respond(send, 503, body, "application/json" if path == "/readyz" else "text/plain")
            return
        if answer is None:  # not a probe's method
            await _respond(send, 404, b"not found\n")
            return
        status, content_type, body = answer
        await _respond(send, int(status.split()[0]), body, content_type)

    async def _slack(self, scope, receive, send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body, parsed = await self._verified(headers, receive)
        except Refused as refused:
            client = (scope.get("client") or ("?",))[0]
            log.warning("refused a request from %s: %s", client, refused.reason)
            await _respond(send, int(refused.status.split()[0]), refused.status.encode() + b"\n")
            return
        except _Gone:
            return
        if scope["method"] == "POST" and parsed is not None and parsed.get("type") == "event_callback":
            try:
                await self.keeper.keep(body.decode("utf-8"), {k: headers[k] for k in _KEPT_HEADERS if k in headers})
            except Exception:
                await _respond(send, 503, b"try again\n")
                return
            await _respond(send, 200, b"")
            return
        if scope["method"] != "POST":
            await _respond(send, 404, b"Not Found")
            return
        request = ("slack", scope.get("query_string", b"").decode("latin-1"), headers, body)
        try:
            status, answer_headers, answer = await asyncio.to_thread(self.relay.call, request, SLACK_TIMEOUT)
        except Unanswered as exc:
            log.warning("the bot did not answer a Slack request in time: %s", exc)
            await _respond(send, 503, b"try again\n")
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer_headers]})
        await send({"type": "http.response.body", "body": answer})

    async def _verified(self, headers: dict, receive) -> tuple[bytes, dict | None]:
        """The body, shown to be Slack's (see RequestCheck), and its JSON object if it is JSON."""
        check = self.check
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if check is not None:
            check.headers(timestamp, signature, headers.get("content-length", ""))
        cap = check.max_bytes if check is not None else 1 << 30
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone()
            body += message.get("body", b"")
            if len(body) > cap or not message.get("more_body"):
                break
        if check is None:
            return bytes(body), None
        return bytes(body), check.verify(timestamp, signature, bytes(body), headers.get("content-type", ""))


class _Gone(Exception):
    """The client went away before its request was read."""


async def _respond(send, status: int, body: bytes, content_type: str = "text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def run_front(settings, secret: str | None, sock, address: str, authkey: bytes, nudge: Connection,
              parent: Connection) -> None:
    """The front process's body: serve `sock` until told to stop (SIGTERM, SIGINT) or the bot's process is gone."""
    import uvicorn

    from ..logs import configure
    from .inbox import Inbox

    configure(settings.log_format)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start and stop lines are not the bot's news
    check = RequestCheck(secret, settings.slack.max_request_bytes) if secret else None
    app = FrontApp(check, Keeper(Inbox.of(settings, checkpoints=False), nudge), Relay(address, authkey))
    config = uvicorn.Config(app, http="httptools", loop=_loop(), lifespan="off", access_log=False, log_config=None,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5, backlog=2048)
    server = uvicorn.Server(config)

    def watch_parent() -> None:
        try:
            parent.recv()  # nothing is ever sent: this returns (EOFError) when the bot's process is gone
        except (EOFError, OSError):
            pass
        server.should_exit = True

    threading.Thread(target=watch_parent, name="dealbot-parent", daemon=True).start()
    server.run(sockets=[sock])


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"
