"""The story as a list of articles: one StoryArticle per stored document, with its lead sentence and the copies of
it published elsewhere. The timeline (`dealbot timeline`, `/dealbot timeline`), the digest of new articles and the
App Home's example questions are built from these.

Everything here is read from the first passage of each document (Index.first_passages), never from every
passage: the title, outlet, date and alternates ride on every passage, and the first sentence is the first
passage's first sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Iterable, Sequence
from urllib.parse import urlparse

from ingest.index import Index, Row

from .dates import MONTHS

LEAD_CHARS = 220  # a lead sentence longer than this is cut at a word boundary, with "…"
UNDATED = "Undated"


@dataclass(frozen=True)
class StoryArticle:
    """One article of the story, as the timeline and the digest show it."""

    doc_id: str
    doc_key: str
    title: str
    source: str  # the file path or URL it was read from
    lead: str  # its first sentence, exactly, cut past LEAD_CHARS
    url: str | None = None
    outlet: str | None = None
    published: str | None = None  # ISO date
    alternates: tuple[str, ...] = ()  # where syndicated copies of it were published (URLs or paths)
    alternate_outlets: tuple[str, ...] = ()  # who published those copies, each once ("also in: ...")
    text_hash: str = ""

    def to_dict(self) -> dict:
        """The JSON of `dealbot timeline --json`."""
        return {
            "published": self.published, "title": self.title, "outlet": self.outlet, "url": self.url,
            "source": self.source, "doc_id": self.doc_id, "lead": self.lead, "alternates": list(self.alternates),
        }


def cut(text: str, limit: int) -> str:
    """`text` on one line; past `limit` characters cut at the last word boundary before it, with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace() and " " in head:
        head = head.rsplit(" ", 1)[0]  # drop the word the limit falls in
    return head.rstrip(" ,;:") + "…"


def lead_sentence(row: Row) -> str:
    """The first sentence of a document's first passage, quoted exactly (on one line), cut past LEAD_CHARS."""
    sentences = row.sentences
    first = row.text[sentences[0][0] : sentences[0][1]] if sentences else row.text
    return cut(first, LEAD_CHARS)


def _copy_outlet(location: str, outlets: dict[str, str]) -> str:
    """Who published a copy: its outlet when the ingest recorded one, else its site's host or its file name."""
    if outlets.get(location):
        return outlets[location]
    if "://" in location:
        host = urlparse(location).hostname or location
        return host.removeprefix("www.")
    return PurePath(location).name


def _article(row: Row) -> StoryArticle:
    m = row.meta
    alternates = tuple(json.loads(m.get("alts") or "[]"))
    outlets = json.loads(m.get("alt_outlets") or "{}")
    return StoryArticle(
        doc_id=m["doc_id"],
        doc_key=m["doc_key"],
        title=m["title"],
        source=m["location"],
        lead=lead_sentence(row),
        url=m.get("url") or None,
        outlet=m.get("outlet") or None,
        published=m.get("published") or None,
        alternates=alternates,
        alternate_outlets=_distinct(_copy_outlet(a, outlets) for a in alternates),
        text_hash=m.get("text_hash", ""),
    )


def _distinct(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def articles(index: Index, doc_keys: Sequence[str] | None = None) -> list[StoryArticle]:
    """The stored documents (or these ones), one article each, in no particular order.

    A document's newest version speaks for it. Two documents with the same text (stored before copies were
    recognised, or under two sources) are one article: the first published, with the other as a copy.
    """
    newest: dict[str, Row] = {}
    for row in index.first_passages(doc_keys):
        key = row.meta["doc_key"]
        if key not in newest or _written(row) > _written(newest[key]):
            newest[key] = row
    by_text: dict[str, StoryArticle] = {}
    for article in sorted((_article(r) for r in newest.values()), key=_date_order):
        first = by_text.get(article.text_hash or article.doc_key)
        by_text[article.text_hash or article.doc_key] = article if first is None else _fold(first, article)
    return list(by_text.values())


def _written(row: Row) -> tuple[int, str]:
    return row.meta.get("written", 0), row.meta["version"]


def _fold(first: StoryArticle, copy: StoryArticle) -> StoryArticle:
    return replace(
        first,
        alternates=tuple(dict.fromkeys((*first.alternates, copy.source, *copy.alternates))),
        alternate_outlets=_distinct((*first.alternate_outlets, copy.outlet or _copy_outlet(copy.source, {}),
                                     *copy.alternate_outlets)),
    )


def _date_order(a: StoryArticle) -> tuple:
    """Oldest first, undated last; ties by title."""
    return (a.published is None, a.published or "", a.title.lower(), a.doc_id)


def chronological(items: Iterable[StoryArticle]) -> list[StoryArticle]:
    return sorted(items, key=_date_order)


def timeline(index: Index, since: str | None = None, until: str | None = None) -> list[StoryArticle]:
    """The story's articles, oldest first, undated last. With `since` / `until` (ISO dates, inclusive) only the
    articles dated within them: an undated article cannot be placed in a range and is left out."""
    found = articles(index)
    if since or until:
        found = [
            a for a in found
            if a.published and (not since or a.published >= since) and (not until or a.published <= until)
        ]
    return chronological(found)


def month_of(article: StoryArticle) -> str:
    """"June 2025", or "Undated"."""
    if not article.published:
        return UNDATED
    year, month = article.published[:4], int(article.published[5:7])
    return f"{MONTHS[month - 1]} {year}"


def by_month(items: Sequence[StoryArticle]) -> list[tuple[str, list[StoryArticle]]]:
    """Consecutive articles grouped by month, in the order given."""
    groups: list[tuple[str, list[StoryArticle]]] = []
    for a in items:
        label = month_of(a)
        if not groups or groups[-1][0] != label:
            groups.append((label, []))
        groups[-1][1].append(a)
    return groups


def newest(items: Iterable[StoryArticle], k: int) -> list[StoryArticle]:
    """The `k` most recently published articles, newest first (undated ones only when too few are dated)."""
    ordered = chronological(items)
    dated = [a for a in ordered if a.published]
    undated = [a for a in ordered if not a.published]
    return (dated[::-1] + undated)[:k]
