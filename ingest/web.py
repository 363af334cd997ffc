"""Web sources: an article page URL, or a feed (RSS or Atom) whose entries link to article pages.

What a URL is, is decided by what it returns, not by its name: feedparser recognises a feed from its content,
and anything else must be an HTML page. Every page is fetched conditionally when the index already holds it, so
an unchanged page costs a 304. Problems with one entry are reported and the others go on; a source URL that
cannot be fetched or understood is a SourceError, and nothing of it is touched in the index.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from tqdm import tqdm

from .fetch import Fetcher, FetchError, Response
from .runlog import HttpState
from .settings import SourceSpec
from .sources import RawDocument, SourceError

_FEED_TYPES = ("rss", "atom", "xml")


@dataclass(frozen=True)
class WebDocument:
    """One page of a web source: its bytes, or None when the server said our copy is current (304)."""

    location: str
    raw: RawDocument | None
    etag: str | None = None
    last_modified: str | None = None


def read_web_source(
    spec: SourceSpec,
    fetcher: Fetcher,
    state: HttpState,
    known: Callable[[str], bool],
    fail: Callable[[str, str], None],
    progress: bool = False,
) -> tuple[str, list[WebDocument]]:
    """What a web source is ("page" or "feed") and its pages.

    `known(url)` says whether the index holds that page, so that asking conditionally (and trusting a 304) is safe.
    """
    url = spec.location
    clock = _Clock(fetcher.settings.source_deadline_seconds)
    cached_entries = state.feed_entries(url)
    conditional = cached_entries is not None or known(url)
    try:
        resp = fetcher.get(url, *(state.validators(url) if conditional else (None, None)), seconds=clock.left())
    except FetchError as exc:
        raise SourceError(f"{url}: {exc}") from None
    if resp.not_modified:
        if cached_entries is not None:
            return "feed", _read_entries(spec, cached_entries, fetcher, state, known, fail, progress, clock)
        return "page", [WebDocument(url, None)]
    feed = _as_feed(resp)
    if feed is not None:
        entries = _entries(feed)
        state.remember_feed(url, entries, resp.etag, resp.last_modified)
        return "feed", _read_entries(spec, entries, fetcher, state, known, fail, progress, clock)
    try:
        return "page", [_page(spec, url, resp)]
    except FetchError as exc:
        raise SourceError(f"{url}: {exc}") from None


class _Clock:
    """The time a whole web source (a feed and all of its pages) may take."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        return self.ends - time.monotonic()


def _read_entries(spec, entries, fetcher, state, known, fail, progress, clock: _Clock) -> list[WebDocument]:
    for entry in entries:
        if not entry["link"].lower().startswith(("http://", "https://")):
            fail(entry["link"][:300], "a feed entry that does not link to an http(s) page: skipped")
    chosen = [e for e in entries if e["link"].lower().startswith(("http://", "https://")) and spec.wants(e["link"])]
    if spec.max_entries:
        chosen = chosen[: spec.max_entries]
    pages = []
    for i, entry in enumerate(tqdm(chosen, desc=f"fetching {spec.label}", unit="page", disable=not progress, leave=False)):
        link = entry["link"]
        if clock.left() <= 0:  # the rest wait for the next run, which starts where this one stopped (304s are quick)
            later = len(chosen) - i - 1
            fail(link, f"not fetched: the source took its whole time ({clock.seconds:g}s, "
                       f"fetch.source_deadline_seconds); this entry and {later:,} after it are tried next run")
            break
        try:
            resp = fetcher.get(link, *(state.validators(link) if known(link) else (None, None)), seconds=clock.left())
            if resp.not_modified:
                pages.append(WebDocument(link, None))
                continue
            hints = {k: entry[k] for k in ("title", "published") if entry.get(k)}
            pages.append(_page(spec, link, resp, hints))
        except FetchError as exc:
            fail(link, str(exc))
    return pages


def _page(spec: SourceSpec, location: str, resp: Response, hints: dict | None = None) -> WebDocument:
    if not _is_html(resp):
        what = resp.content_type or "no content type"
        raise FetchError(f"not an HTML page or a feed ({what})")
    raw = RawDocument(spec.location, location, location, resp.data, kind="html", hints=hints or {})
    return WebDocument(location, raw, resp.etag, resp.last_modified)


def _is_html(resp: Response) -> bool:
    head = resp.data[:4096].lstrip().lower()
    if b"\x00" in head:
        return False
    return "html" in resp.content_type or head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


def _as_feed(resp: Response):
    """The parsed feed when the response is an RSS or Atom feed; raises FetchError for a broken one."""
    head = resp.data[:1024].lstrip().lower()
    looks_xml = head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")) or any(t in resp.content_type for t in _FEED_TYPES)
    if not looks_xml or head.startswith((b"<!doctype html", b"<html")):
        return None
    if _declares_entities(resp.data):
        raise SourceError(f"{resp.url}: refused: the feed declares XML entities (<!ENTITY>), which are never expanded")
    import feedparser

    feed = feedparser.parse(resp.data, response_headers={"content-location": resp.url})
    if feed.get("version") and (feed.entries or not feed.get("bozo")):
        return feed  # entries of a slightly broken feed are still usable; a well-formed one may have none yet
    if b"<html" in head or "html" in resp.content_type:
        return None  # an XHTML page: XML, but not a feed
    reason = getattr(feed.get("bozo_exception"), "getMessage", lambda: feed.get("bozo_exception"))()
    raise SourceError(f"{resp.url}: malformed feed: {reason or 'not RSS or Atom'}")


_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*\[(.*?)\]\s*>", re.S | re.I)


def _declares_entities(data: bytes) -> bool:
    """Whether the document's DOCTYPE declares entities: a feed never needs its own, and they are how a feed expands
    to gigabytes ("billion laughs") or reaches for a local file (an external entity)."""
    m = _DOCTYPE.search(data, 0, 1_000_000)
    return bool(m and b"<!ENTITY" in m.group(1).upper())


def _entries(feed) -> list[dict]:
    out, seen = [], set()
    for entry in feed.entries:
        link = entry.get("link") or ""
        if not link or link in seen:  # an entry listed twice is fetched once
            continue
        seen.add(link)
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        published = (
            datetime.fromtimestamp(calendar.timegm(stamp), tz=timezone.utc).date().isoformat() if stamp else None
        )
        out.append({"link": link, "title": entry.get("title") or None, "published": published})
    return out

