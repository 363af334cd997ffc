"""Fetching web pages and feeds over HTTP: timeouts, a size cap, bounded retries and conditional requests.

Built on requests with urllib3's `Retry` (back-off on 5xx and connection errors). Every way a download can go
wrong becomes a FetchError whose message is fit for the run report; nothing here stops a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .settings import FetchSettings

RETRY_STATUSES = (500, 502, 503, 504)


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


class Fetcher:
    """One HTTP session for a whole ingest run."""

    def __init__(self, settings: FetchSettings):
        self.settings = settings
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            backoff_factor=settings.backoff_seconds,
            backoff_max=30,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=False,  # a server's "come back tomorrow" must not stall the whole run
        )
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"})
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Response:
        """GET `url`, conditionally when validators from an earlier fetch are given."""
        if urlparse(url).scheme not in ("http", "https"):
            raise FetchError("only http and https URLs are fetched")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        s = self.settings
        try:
            with self.session.get(
                url, headers=headers, timeout=(s.connect_timeout, s.read_timeout), stream=True, allow_redirects=True
            ) as resp:
                if urlparse(resp.url).scheme not in ("http", "https"):
                    raise FetchError(f"redirected to a non-http URL: {resp.url}")
                if resp.status_code == 304:
                    return Response(resp.url, 304, "", b"", etag, last_modified)
                if resp.status_code != 200:
                    raise FetchError(f"HTTP {resp.status_code} {resp.reason or ''}".strip())
                data = self._body(resp)
                return Response(
                    url=resp.url,
                    status=200,
                    content_type=resp.headers.get("Content-Type", "").split(";")[0].strip().lower(),
                    data=data,
                    etag=resp.headers.get("ETag"),
                    last_modified=resp.headers.get("Last-Modified"),
                )
        except requests.Timeout:
            raise FetchError(f"timed out (connect {s.connect_timeout:g}s, read {s.read_timeout:g}s)") from None
        except requests.TooManyRedirects:
            raise FetchError("too many redirects") from None
        except requests.ConnectionError as exc:
            cause = _root_cause(exc)
            if "timed out" in cause.lower():
                raise FetchError(f"timed out (connect {s.connect_timeout:g}s, read {s.read_timeout:g}s)") from None
            raise FetchError(f"cannot connect: {cause}") from None
        except requests.RequestException as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from None

    def _body(self, resp: requests.Response) -> bytes:
        cap = self.settings.max_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(f"too large: {int(declared):,} bytes (limit {cap:,}, fetch.max_bytes)")
        deadline = time.monotonic() + self.settings.read_timeout
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > cap:
                raise FetchError(f"too large: over {cap:,} bytes (fetch.max_bytes)")
            if time.monotonic() > deadline:
                raise FetchError(f"too slow: the page took over {self.settings.read_timeout:g}s to arrive")
            chunks.append(chunk)
        return b"".join(chunks)


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
