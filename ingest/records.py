"""The objects that flow through ingest: an Article read from a source, and the Passages cut from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date


def sha256(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Article:
    """One document, as read from a source, before chunking.

    `source` is the configured source it came from (the unit of pruning); `location` the file path or URL it was
    read from; `doc_id` its stable identity (canonical URL if it declares one, else its path within the source).
    """

    doc_id: str
    source: str
    location: str
    title: str
    text: str
    raw_hash: str
    url: str | None = None
    published: date | None = None
    outlet: str | None = None
    author: str | None = None

    @property
    def text_hash(self) -> str:
        """Identity of the text alone: the same story from two files or URLs has the same text_hash."""
        return sha256(" ".join(self.text.split()))


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences of one article, sized for the model.

    `start`/`end` are character offsets into the article's text; `sentences` the (start, end) offsets of each
    sentence in it, also into the article's text, so a citation can quote one sentence exactly.
    """

    article: Article
    n: int
    total: int
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...]

    @property
    def text(self) -> str:
        return self.article.text[self.start : self.end]

    @property
    def embed_text(self) -> str:
        """What the model sees: the title gives short passages their context."""
        return f"{self.article.title}\n{self.text}"

    @property
    def embed_spans(self) -> list[tuple[int, int]]:
        """The sentences' offsets within `embed_text`."""
        shift = len(self.article.title) + 1 - self.start
        return [(s + shift, e + shift) for s, e in self.sentences]


@dataclass(frozen=True)
class DocState:
    """What the index holds for one document: enough to decide whether a file changed, without reading it."""

    source: str
    location: str
    doc_id: str
    version: str
    raw_hash: str
    text_hash: str
    passages: int
    complete: bool
    written: int = 0  # when this version was written (ns since the epoch); the newest complete version is shown
    alternates: tuple[str, ...] = ()  # locations of copies of this document that are not stored again
    minhash: str = ""  # the text's MinHash signature, for finding near-duplicates
    key: str = ""  # the doc key its rows are stored under (what deleting it matches)
