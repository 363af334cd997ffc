"""The objects that cross from retrieval to answering to the surfaces: Hit, Citation, Related, Answer.

Renderers (terminal, JSON, Slack) see only these, never Chroma rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .question import Reading

# What the bot says when it has no answer; the closest passages, if any are related, follow it (Answer.related).
NOT_FOUND = "I couldn't find a direct answer in the articles."
NOT_ASKED = "the model was not asked"  # how a fallback_reason starts when the question was not put to the LLM


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with what a citation needs about its article."""

    id: str
    doc_id: str
    title: str
    source: str  # the file path or URL the article came from
    text: str
    start: int  # offset of the passage in its article
    sentences: tuple[tuple[int, int], ...]  # sentence offsets within `text`
    score: float  # cosine similarity of the passage to the question
    sentence_scores: tuple[float, ...]  # cosine similarity of each sentence (in context) to the question
    url: str | None = None
    outlet: str | None = None
    published: str | None = None  # ISO date
    lexical: float = 0.0  # BM25 score relative to the best passage's (0 when BM25 did not retrieve it)
    fused: float = 0.0  # reciprocal-rank-fusion score of the dense and lexical ranks
    rank: int = 0  # place in the fused, diversified list (1 = best)
    via: str = ""  # "dense", "lexical", "both", or "neighbour" (pulled in next to a better passage)
    alternates: tuple[str, ...] = ()  # other places the same story was published (syndicated copies not stored)


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str
    quotes: tuple[str, ...]  # the cited sentences, exactly as in the article
    url: str | None = None
    outlet: str | None = None
    published: str | None = None
    alternates: tuple[str, ...] = ()  # the URLs (or paths) of syndicated copies of the article

    @classmethod
    def of(cls, n: int, hit: Hit, quotes) -> "Citation":
        """Citation `n` of the article `hit` comes from, quoting `quotes`."""
        return cls(n, hit.doc_id, hit.title, hit.source, tuple(quotes), hit.url, hit.outlet, hit.published, hit.alternates)

    @property
    def quote(self) -> str:
        return self.quotes[0]


class Citations:
    """The articles an answer cites, numbered in order of first use, one citation per article (whichever of its
    passages is cited), each quoting the sentences it is cited for. Both composers number their citations here."""

    def __init__(self) -> None:
        self._hits: dict[str, Hit] = {}
        self._quotes: dict[str, list[str]] = {}

    def cite(self, hit: Hit, quote: str | None = None) -> int:
        """The number of `hit`'s article (the next one, when it is first cited), now quoting `quote` as well."""
        self._hits.setdefault(hit.doc_id, hit)
        quotes = self._quotes.setdefault(hit.doc_id, [])
        if quote is not None and quote not in quotes:
            quotes.append(quote)
        return list(self._hits).index(hit.doc_id) + 1

    def all(self) -> tuple[Citation, ...]:
        return tuple(Citation.of(n, hit, self._quotes[doc]) for n, (doc, hit) in enumerate(self._hits.items(), 1))


# A related passage's sentence is shown whole up to this many characters, else cut at a word boundary with "…".
QUOTE_CHARS = 220


def shorten(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` as it is when it fits in `limit` characters; else its beginning, exactly as written, cut at the last
    word boundary that leaves room for "…", and "…" (at most `limit` characters in all)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    if text[limit - 1].isspace():  # the cut falls between two words
        boundary = limit - 1
    if boundary > 0:
        head = head[:boundary]
    return head.rstrip(" \n\t,;:—–-") + "…"


@dataclass(frozen=True)
class Related:
    """A passage from an article the answer does not cite, shown beneath it: where else the answer may be.

    `quote` is the passage's sentence that best matches the question, exactly as in the article; `shown` is what
    the surfaces display (cut past QUOTE_CHARS). `score` is the passage's fused retrieval score, by which related
    passages are ranked.
    """

    doc_id: str
    title: str
    source: str
    quote: str
    url: str | None = None
    outlet: str | None = None
    published: str | None = None
    alternates: tuple[str, ...] = ()
    passage_id: str = ""
    score: float = 0.0

    @classmethod
    def of(cls, hit: Hit, quote: str) -> "Related":
        return cls(hit.doc_id, hit.title, hit.source, quote, hit.url, hit.outlet, hit.published, hit.alternates, hit.id, hit.fused)

    @property
    def shown(self) -> str:
        return shorten(self.quote)


@dataclass(frozen=True)
class RelatedChoice:
    """A retrieved passage as the related-passage step saw it (for `dealbot ask --explain`)."""

    passage_id: str
    doc_id: str
    title: str
    score: float  # the passage's fused retrieval score
    match: float  # how well its best sentence matches the question (similarity and question terms)
    shown: bool
    why: str


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer and the citation marker(s) that follow it.

    `n` is the citation the sentence rests on; an LLM's sentence may rest on more (`more`). A sentence with n == 0
    cites nothing: only an LLM's statement that the articles do not say something is kept that way.
    """

    text: str
    n: int
    more: tuple[int, ...] = ()

    @property
    def numbers(self) -> tuple[int, ...]:
        return ((self.n,) if self.n else ()) + self.more

    @property
    def marked(self) -> str:
        """The sentence followed by its markers, e.g. "The deal was signed. [1]"."""
        markers = "".join(f"[{k}]" for k in self.numbers)
        return f"{self.text} {markers}" if markers else self.text


@dataclass(frozen=True)
class Considered:
    """A candidate sentence as the composer saw it (for `dealbot ask --explain`)."""

    text: str
    doc_id: str
    passage_id: str
    score: float  # the weighted sum of the signals
    signals: dict[str, float]
    why: str  # why it was chosen or not


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    sentences: tuple[Sentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    evidence: float = 0.0  # the score the abstention threshold is applied to
    reason: str = ""  # why the bot abstained, when it did
    timings_ms: dict[str, float] = field(default_factory=dict)
    considered: tuple[Considered, ...] = ()  # filled only when an explanation was asked for
    asked: str = ""  # the question as answered: spelling corrected, a follow-up completed from the conversation
    filters: str = ""  # the date and source filters applied, described ("since 2025-10-01")
    composer: str = "extractive"  # who wrote the answer: "extractive" (offline) or "llm"
    fallback_reason: str = ""  # why the LLM's reply was not used, when an LLM is configured and it was not
    related: tuple[Related, ...] = ()  # passages of articles the answer does not cite, best first (at most 3)
    related_choices: tuple[RelatedChoice, ...] = ()  # filled only when an explanation was asked for
    reading: Reading | None = field(default=None, compare=False, repr=False)  # how the question was read

    @property
    def model_failed(self) -> bool:
        """An LLM was asked and its reply could not be used: this is the offline answer instead."""
        return bool(self.fallback_reason) and not self.fallback_reason.startswith(NOT_ASKED)

    @property
    def text(self) -> str:
        if not self.answered:
            return NOT_FOUND
        return " ".join(s.marked for s in self.sentences)
