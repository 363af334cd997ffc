"""Fetching web pages and feeds over HTTP: timeouts, a size cap, bounded retries and conditional requests.

Built on requests with urllib3's `Retry` (back-off on 5xx and connection errors). Every way a download can go
wrong becomes a FetchError whose message is fit for the run report; nothing here stops a run.

Time is bounded by the clock, not only by counting: one URL (every attempt, redirect, back-off and the whole body)
must be done within `fetch.deadline_seconds`, and a body within `fetch.read_timeout`, however slowly a server
trickles its bytes or whatever Content-Length it declares. A watchdog shuts the connection's socket down when time
is up, which ends any read in progress; the retry policy starts no attempt once the time is spent.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from .settings import FetchSettings

RETRY_STATUSES = (500, 502, 503, 504)
MAX_REDIRECTS = 10


class FetchError(Exception):
    """A URL could not be fetched; the message says why, for the run report."""


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int  # 200, or 304 when the server says the copy we hold is current
    content_type: str
    data: bytes
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _TimedRetry(Retry):
    """urllib3's retry policy with a clock: no retry is started once the URL's time is spent."""

    deadline = math.inf

    def new(self, **kw) -> "_TimedRetry":
        fresh = super().new(**kw)
        fresh.deadline = self.deadline
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        if time.monotonic() + fresh.get_backoff_time() >= self.deadline:
            raise MaxRetryError(_pool, url or "", error or ResponseError("out of time for retries"))
        return fresh


class _Watchdog:
    """Shuts down every socket the session opened when time is up, so that a read blocked on a server that
    trickles (or sends nothing) ends at once. One Fetcher is used by one thread at a time."""

    def __init__(self):
        self.sockets: weakref.WeakSet = weakref.WeakSet()
        self.fired = False
        self._timer: threading.Timer | None = None

    def track(self, sock) -> None:
        self.sockets.add(sock)

    @contextmanager
    def armed(self, deadline: float):
        self.fired = False
        self.rearm(deadline)
        try:
            yield self
        finally:
            self._cancel()

    def rearm(self, deadline: float) -> None:
        self._cancel()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self.fired = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


class _Adapter(HTTPAdapter):
    """requests' adapter, with every new connection's socket handed to the watchdog."""

    def __init__(self, watchdog: _Watchdog, **kwargs):
        self.watchdog = watchdog
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        track = self.watchdog.track
        self.poolmanager.pool_classes_by_scheme = {
            "http": _tracking_pool(HTTPConnectionPool, track),
            "https": _tracking_pool(HTTPSConnectionPool, track),
        }


def _tracking_pool(pool_cls, track):
    class Connection(pool_cls.ConnectionCls):
        def connect(self):
            super().connect()
            track(self.sock)

    return type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": Connection})


class Fetcher:
    """One HTTP session for a whole ingest run."""

    def __init__(self, settings: FetchSettings):
        self.settings = settings
        self.retry = _TimedRetry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            redirect=0,  # requests follows redirects itself, MAX_REDIRECTS at most
            backoff_factor=settings.backoff_seconds,
            backoff_max=30,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=False,  # a server's "come back tomorrow" must not stall the whole run
        )
        self.watchdog = _Watchdog()
        self.session = requests.Session()
        self.session.max_redirects = MAX_REDIRECTS
        self.session.headers.update({"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"})
        self.adapter = _Adapter(self.watchdog, max_retries=self.retry)
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    def close(self) -> None:
        self.session.close()

    def get(
        self, url: str, etag: str | None = None, last_modified: str | None = None, seconds: float | None = None
    ) -> Response:
        """GET `url`, conditionally when validators from an earlier fetch are given, within `seconds` (default
        and at most `fetch.deadline_seconds`)."""
        if urlparse(url).scheme not in ("http", "https"):
            raise FetchError("only http and https URLs are fetched")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        s = self.settings
        budget = min(s.deadline_seconds, s.deadline_seconds if seconds is None else seconds)
        if budget <= 0:
            raise FetchError("not fetched: no time left (fetch.source_deadline_seconds)")
        deadline = time.monotonic() + budget
        self.adapter.max_retries = self.retry.new()
        self.adapter.max_retries.deadline = deadline
        with self.watchdog.armed(deadline):
            try:
                return self._get(url, headers, deadline)
            except FetchError as exc:
                raise self._late(exc, budget) from None
            except requests.Timeout:
                raise self._late(FetchError(f"timed out (connect {s.connect_timeout:g}s, read {s.read_timeout:g}s)"), budget) from None
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                raise self._late(FetchError(f"the body was broken or cut short: {_root_cause(exc)[:200]}"), budget) from None
            except requests.TooManyRedirects:
                raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})") from None
            except requests.ConnectionError as exc:
                cause = _root_cause(exc)
                if "timed out" in cause.lower():
                    cause = f"timed out (connect {s.connect_timeout:g}s, read {s.read_timeout:g}s)"
                    raise self._late(FetchError(cause), budget) from None
                raise self._late(FetchError(f"cannot connect: {cause}"), budget) from None
            except requests.RequestException as exc:
                raise self._late(FetchError(f"{type(exc).__name__}: {str(exc)[:200]}"), budget) from None

    def _late(self, exc: FetchError, budget: float) -> FetchError:
        """The error, or why time ran out when it did (the watchdog cut the connection)."""
        if not self.watchdog.fired:
            return exc
        if str(exc).startswith("too slow"):
            return exc
        return FetchError(f"gave up after {budget:g}s (fetch.deadline_seconds): no complete answer in time")

    def _get(self, url: str, headers: dict, deadline: float) -> Response:
        s = self.settings
        with self.session.get(
            url,
            headers=headers,
            timeout=(s.connect_timeout, s.read_timeout),
            stream=True,
            allow_redirects=True,
            hooks={"response": _refuse_odd_redirects},
        ) as resp:
            if urlparse(resp.url).scheme not in ("http", "https"):
                raise FetchError(f"redirected to a non-http URL: {resp.url}")
            if resp.status_code == 304:
                if not headers:  # nothing was asked conditionally: "not modified" since what?
                    raise FetchError("HTTP 304 Not Modified to a request that was not conditional: nothing to store")
                return Response(resp.url, 304, "", b"", headers.get("If-None-Match"), headers.get("If-Modified-Since"))
            if resp.status_code != 200:
                raise FetchError(f"HTTP {resp.status_code} {resp.reason or ''}".strip())
            data = self._body(resp, deadline)
            return Response(
                url=resp.url,
                status=200,
                content_type=resp.headers.get("Content-Type", "").split(";")[0].strip().lower(),
                data=data,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
            )

    def _body(self, resp: requests.Response, deadline: float) -> bytes:
        """The body, decompressed, within the size cap and the body's time (whatever Content-Length says)."""
        cap, seconds = self.settings.max_bytes, self.settings.read_timeout
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(f"too large: {int(declared):,} bytes (limit {cap:,}, fetch.max_bytes)")
        body_deadline = min(deadline, time.monotonic() + seconds)
        self.watchdog.rearm(body_deadline)
        chunks, size = [], 0
        try:
            # urllib3 decompresses at most the chunk size at a time, so a gzip bomb stops at the cap too.
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise FetchError(f"too large: over {cap:,} bytes once decompressed (fetch.max_bytes)")
                chunks.append(chunk)
        except requests.RequestException as exc:
            if not (self.watchdog.fired or isinstance(exc, requests.Timeout) or "timed out" in str(exc)):
                raise
            self.watchdog.fired = True  # a read that waited out its timeout: the same as the clock running out
        if self.watchdog.fired:
            if body_deadline < deadline:
                raise FetchError(f"too slow: the page did not arrive within {seconds:g}s (fetch.read_timeout)")
            raise FetchError("too slow: the URL took longer than allowed (fetch.deadline_seconds)")
        return b"".join(chunks)


def _refuse_odd_redirects(resp: requests.Response, *args, **kwargs) -> requests.Response:
    """Called for every response, redirects included: a redirect may lead only to another http(s) URL."""
    if resp.is_redirect:
        target = urljoin(resp.url, resp.headers.get("Location", ""))
        if urlparse(target).scheme not in ("http", "https"):
            resp.close()
            raise FetchError(f"redirected to a non-http URL: {target[:200]}")
    return resp


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a connection error ("Connection refused"), not urllib3's nested wrapper text."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        if inner is None or inner is seen or not isinstance(inner, BaseException):
            break
        seen = inner
    text = str(seen)
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text.split(": ", 1)[-1]
