"""The bot's side of `dealbot serve --http`: the HTTP front (bot/slack/front.py) runs in a process of its own,
started, watched and restarted from here, and this process answers.

- The port is bound here and handed to the front, so it stays open while a front is restarted (connections wait
  in its backlog) and a port that cannot be bound is told at start, as before.
- Events the front kept in the inbox are taken in on the answer pool: each goes through bolt as if it had just
  arrived, its work done in that same pool thread, and only then is its row removed; an event whose work was cut
  short by a crash is taken in again at the next start, and the questions' `taken` keys keep it answered once.
- Slash commands, interactivity and the probes come over a Unix socket (authenticated with a random key) and are
  answered by bolt and bot/metrics.py here, so /readyz and /metrics describe this process: the one that answers.
- The front watches this process and stops when it is gone; this process restarts a front that exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from multiprocessing.connection import Listener

from slack_bolt import App
from slack_bolt.request import BoltRequest

from ..metrics import Readiness, probe
from .app import context_of, inline_work
from .front import run_front
from .inbox import Inbox

log = logging.getLogger("dealbot.slack")

RESTART_BACKOFF = (1.0, 30.0)  # seconds before restarting a front that exited: first, and at most
MAX_ATTEMPTS = 3  # failed takes of one event before it is dropped with a log line: one bad event never loops forever


class Front:
    """The HTTP front process of `app`, on host:port."""

    def __init__(self, app: App, readiness: Readiness, host: str, port: int):
        self.app, self.readiness = app, readiness
        self.ctx = context_of(app)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=2048)
        self.port = self.sock.getsockname()[1]
        self._mp = multiprocessing.get_context("spawn")
        # The front's nudge when it kept events: a pipe, never a lock (a frozen or killed bot must not hold it up).
        self._nudged, self._nudge = self._mp.Pipe(duplex=False)
        self._authkey = os.urandom(32)
        self._listener = Listener(family="AF_UNIX", authkey=self._authkey)
        self._stopping = threading.Event()
        self.inbox = Inbox.of(self.ctx.settings)
        self._taking: set[int] = set()
        self._taken: list[int] = []  # rows handled, to be removed in the next round
        self._lock = threading.Lock()
        self.process = None
        self.restarts = 0

    # ------------------------------------------------------------------ the front process

    def start(self) -> "Front":
        threading.Thread(target=self._accept, name="dealbot-relay", daemon=True).start()
        threading.Thread(target=self._take_in, name="dealbot-inbox", daemon=True).start()
        self._spawn()
        return self

    def _spawn(self) -> None:
        ours, theirs = self._mp.Pipe()
        self.process = self._mp.Process(
            target=run_front, name="dealbot-front", daemon=True,
            args=(self.ctx.settings, self.ctx.signing_secret, self.sock, self._listener.address, self._authkey,
                  self._nudge, theirs))
        self.process.start()
        theirs.close()
        self._parent_end = ours  # kept open while this process runs: the front stops when it closes

    def run(self) -> None:
        """Watch the front until stopped (KeyboardInterrupt from SIGTERM or Ctrl-C); restart it when it exits."""
        backoff = RESTART_BACKOFF[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            self.process.join()
            if self._stopping.is_set():
                return
            log.error("the HTTP front exited (code %s); restarting it in %.0f s", self.process.exitcode, backoff)
            time.sleep(backoff)
            backoff = RESTART_BACKOFF[0] if time.monotonic() - started > 60 else min(2 * backoff, RESTART_BACKOFF[1])
            self.restarts += 1
            self._spawn()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the front (it finishes the requests it has), then stop taking in events; what is left in the inbox
        is taken in at the next start."""
        self._stopping.set()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
        self._listener.close()
        self.sock.close()
        try:
            self._forget_taken()
        except Exception:  # they are taken in again at the next start, and answered once
            log.warning("could not remove the events taken in from the inbox", exc_info=True)

    # ------------------------------------------------------------------ the inbox

    def _take_in(self) -> None:
        while not self._stopping.is_set():
            if self._nudged.poll(0.5):
                while self._nudged.poll(0):  # every nudge so far: one look at the inbox serves them all
                    self._nudged.recv_bytes()
            try:
                self._forget_taken()
                rows = [] if self._stopping.is_set() else self.inbox.oldest()
            except Exception:  # a locked file: try again
                log.exception("reading the inbox failed")
                continue
            for row in rows:
                with self._lock:
                    if row[0] in self._taking:
                        continue
                    self._taking.add(row[0])
                self.ctx.pool.submit(self._handle, *row)

    def _forget_taken(self) -> None:
        """Remove the rows handled since the last round (they stay in `_taking` until then: not handled twice)."""
        with self._lock:
            done, self._taken = self._taken, []
        self.inbox.forget(done)
        with self._lock:
            self._taking.difference_update(done)

    def _handle(self, row_id: int, body: str, headers: dict) -> None:
        handled = False
        try:
            with inline_work():
                self.app.dispatch(BoltRequest(body=body, headers=headers))
            handled = True
        except Exception:
            attempts = self._failed(row_id)
            if attempts >= MAX_ATTEMPTS:
                log.exception("taking in inbox event %d failed %d times; it is dropped", row_id, attempts)
                handled = True  # removed with the rows handled
            else:
                log.exception("taking in inbox event %d failed; it is taken in again later", row_id)
        finally:
            with self._lock:
                if handled:
                    self._taken.append(row_id)
                else:
                    self._taking.discard(row_id)

    def _failed(self, row_id: int) -> int:
        try:
            return self.inbox.failed(row_id)
        except Exception:  # the file is busy: the event stays and is tried again
            log.warning("could not count a failed attempt on inbox event %d", row_id, exc_info=True)
            return 0

    # ------------------------------------------------------------------ relayed requests

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except Exception:  # closed (stopping), or a client that failed the handshake
                continue
            threading.Thread(target=self._serve, args=(conn,), name="dealbot-relayed", daemon=True).start()

    def _serve(self, conn) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    answer = self._answer(request)
                except Exception:
                    log.exception("answering a relayed request failed")
                    answer = (500, [("content-type", "text/plain")], b"internal error\n") if request[0] == "slack" else \
                        ("500 Internal Server Error", "text/plain", b"internal error\n")
                try:
                    conn.send(answer)
                except OSError:  # the front gave up waiting (or stopped) and closed the connection
                    return

    def _answer(self, request: tuple):
        if request[0] == "probe":
            return probe(request[1], request[2], self.readiness)
        _, query, headers, body = request
        response = self.app.dispatch(BoltRequest(body=body.decode("utf-8"), query=query, headers=headers))
        pairs = [(k, v) for k, values in response.headers.items() for v in values]
        return response.status, pairs, response.body.encode("utf-8")
