"""Web sources: an article page URL, or a feed (RSS or Atom) whose entries link to article pages.

What a URL is, is decided by what it returns, not by its name: feedparser recognises a feed from its content,
and anything else must be an HTML page. Every page is fetched conditionally when the index already holds it, so
an unchanged page costs a 304. Problems with one entry are reported and the others go on; a source URL that
cannot be fetched or understood is a SourceError, and nothing of it is touched in the index.
"""

from __future__ import annotations

import calendar
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
    cached_entries = state.feed_entries(url)
    conditional = cached_entries is not None or known(url)
    try:
        resp = fetcher.get(url, *(state.validators(url) if conditional else (None, None)))
    except FetchError as exc:
        raise SourceError(f"{url}: {exc}") from None
    if resp.not_modified:
        if cached_entries is not None:
            return "feed", _read_entries(spec, cached_entries, fetcher, state, known, fail, progress)
        return "page", [WebDocument(url, None)]
    feed = _as_feed(resp)
    if feed is not None:
        entries = _entries(feed)
        state.remember_feed(url, entries, resp.etag, resp.last_modified)
        return "feed", _read_entries(spec, entries, fetcher, state, known, fail, progress)
    try:
        return "page", [_page(spec, url, resp)]
    except FetchError as exc:
        raise SourceError(f"{url}: {exc}") from None


def _read_entries(spec, entries, fetcher, state, known, fail, progress) -> list[WebDocument]:
    chosen = [e for e in entries if e["link"].startswith(("http://", "https://")) and spec.wants(e["link"])]
    if spec.max_entries:
        chosen = chosen[: spec.max_entries]
    pages = []
    for entry in tqdm(chosen, desc=f"fetching {spec.label}", unit="page", disable=not progress, leave=False):
        link = entry["link"]
        try:
            resp = fetcher.get(link, *(state.validators(link) if known(link) else (None, None)))
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
    import feedparser

    feed = feedparser.parse(resp.data, response_headers={"content-location": resp.url})
    if feed.get("version") and (feed.entries or not feed.get("bozo")):
        return feed  # entries of a slightly broken feed are still usable; a well-formed one may have none yet
    if b"<html" in head or "html" in resp.content_type:
        return None  # an XHTML page: XML, but not a feed
    reason = getattr(feed.get("bozo_exception"), "getMessage", lambda: feed.get("bozo_exception"))()
    raise SourceError(f"{resp.url}: malformed feed: {reason or 'not RSS or Atom'}")


def _entries(feed) -> list[dict]:
    out = []
    for entry in feed.entries:
        link = entry.get("link") or ""
        if not link:
            continue
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        published = (
            datetime.fromtimestamp(calendar.timegm(stamp), tz=timezone.utc).date().isoformat() if stamp else None
        )
        out.append({"link": link, "title": entry.get("title") or None, "published": published})
    return out

