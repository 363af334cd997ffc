"""Retrieval: from a question to the passages most likely to answer it, as Hits."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ingest.embed import Embedder
from ingest.index import Index, MalformedRow, Row

from .text import STOPWORDS, _plain, is_calendar, stem, terms, words
from .types import Hit

if TYPE_CHECKING:
    from .question import Reading

log = logging.getLogger("dealbot.retrieve")

@dataclass(frozen=True)
class CorpusStats:
    """Sentence frequencies over the whole index: how rare (informative) each term is, and which words exist.

    Counted per sentence rather than per passage, so that rarity means something even in a corpus of one article.
    """

    sentences: int
    df: dict[str, int]
    vocabulary: frozenset[str]
    documents: dict[str, str] = dataclasses.field(default_factory=dict)  # doc_id -> title and text, for name checks
    # Words the articles only ever write capitalised within a sentence ("geneva" -> "Geneva"), for lower-case questions
    names: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[Row]) -> "CorpusStats":
        df: Counter[str] = Counter()
        vocabulary: set[str] = set()
        seen: set[tuple[str, int]] = set()
        parts: dict[str, dict[int, str]] = {}
        capitalised: Counter[str] = Counter()
        lower: set[str] = set()
        for row in rows:
            doc = parts.setdefault(row.meta["doc_id"], {-2: row.meta["outlet"] or "", -1: row.meta["title"]})
            doc[row.meta["start"]] = row.text
            for s, e in row.sentences:
                key = (row.meta["doc_key"], row.meta["start"] + s)
                if key in seen:  # passages overlap: count each sentence once
                    continue
                seen.add(key)
                text = row.text[s:e]
                df.update(set(terms(text)))
                ws = words(text)
                vocabulary.update(w.lower() for w in ws)
                vocabulary.update(_plain(w) for w in ws)
                for i, w in enumerate(ws):
                    if w[0].islower():
                        lower.add(w)
                    elif i and w[0].isupper() and not (ws[i - 1][0].isupper() or ws[i + 1:i + 2] and ws[i + 1][0].isupper()):
                        capitalised[w] += 1  # a name on its own ("Geneva"), not a word of one ("United States")
        documents = {d: "\n".join(t for _, t in sorted(p.items())) for d, p in parts.items()}
        names: dict[str, str] = {}
        for w, _ in capitalised.most_common():
            if w.lower() not in lower and len(w) > 1 and _plain(w) not in STOPWORDS and not is_calendar(stem(w)):
                names.setdefault(w.lower(), w)
        return cls(len(seen), dict(df), frozenset(vocabulary), documents, names)

    def expansion(self, acronym: str) -> str | None:
        """The words `acronym` stands for in the articles ("electronic design automation" for "EDA"): the most
        frequent run of words whose initials spell it, or None."""
        if acronym not in self._expansions:
            self._expansions[acronym] = self._expansion(acronym)
        return self._expansions[acronym]

    def _expansion(self, acronym: str) -> str | None:
        pattern = re.compile(r"\b" + r"[\s-]+".join(rf"{c}[a-z]+" for c in acronym.lower()) + r"\b", re.I)
        found = Counter(
            m[0] for text in self.documents.values() for m in pattern.finditer(text)
            if not any(w.lower() in STOPWORDS for w in m[0].split())
        )
        return found.most_common(1)[0][0] if found else None

    @cached_property
    def _expansions(self) -> dict[str, str | None]:
        return {}

    @cached_property
    def spellable(self) -> list[str]:
        """The words a misspelt word of a question may be corrected to."""
        return sorted(w for w in self.vocabulary if len(w) >= 4 and w.isalpha())

    def known_share(self, terms: frozenset[str]) -> float:
        """The rarity-weighted share of `terms` that occur in the corpus at all (1.0 for no terms)."""
        terms = frozenset(t for t in terms if t in self.df or not is_calendar(t))  # "in August": the dates say it
        total = sum(self.idf(t) for t in terms)
        return sum(self.idf(t) for t in terms if t in self.df) / total if total else 1.0

    @cached_property
    def document_terms(self) -> dict[str, frozenset[str]]:
        """Each document's terms (stems), title included."""
        return {d: frozenset(terms(text)) for d, text in self.documents.items()}

    def idf(self, term: str) -> float:
        return math.log(1 + (self.sentences + 1) / (self.df.get(term, 0) + 0.5))


@dataclass(frozen=True)
class Filters:
    """Which articles a question may be answered from: published in [since, until] (ISO dates, inclusive), and from
    one of `sources` (matched, case-insensitively, against the outlet, the article's file stem, URL or path)."""

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def admits(self, hit: Hit) -> bool:
        if self.since or self.until:
            if not hit.published:
                return False
            if (self.since and hit.published < self.since) or (self.until and hit.published > self.until):
                return False
        if self.sources:
            where = " ".join(x for x in (hit.outlet, hit.source, hit.url) if x).lower()
            if not any(s.lower() in where for s in self.sources):
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.since:
            parts.append(f"since {self.since}")
        if self.until:
            parts.append(f"until {self.until}")
        if self.sources:
            parts.append("from " + " or ".join(self.sources))
        return ", ".join(parts)


@dataclass(frozen=True)
class _Stored:
    """A passage as held in memory: what a Hit needs, with its sentence vectors ready for scoring."""

    hit: Hit
    sentence_vectors: np.ndarray
    doc_key: str
    version: str
    n: int
    row: Row


def _stored(row: Row) -> _Stored:
    m = row.meta
    hit = Hit(
        id=row.id,
        doc_id=m["doc_id"],
        title=m["title"],
        source=m["location"],
        text=row.text,
        start=m["start"],
        sentences=tuple(row.sentences),
        score=0.0,
        sentence_scores=(),
        url=m["url"] or None,
        outlet=m["outlet"] or None,
        published=m["published"] or None,
        alternates=tuple(json.loads(m.get("alts") or "[]")),
    )
    return _Stored(hit, row.sentence_vectors, m["doc_key"], m["version"], int(m["n"]), row)


def _readable(rows: list[Row]) -> dict[str, _Stored]:
    """The passages that can be held in memory, by id. The index already leaves out malformed rows; this is the
    last guard, so that one odd passage is logged and skipped rather than keeping the bot from starting."""
    passages: dict[str, _Stored] = {}
    for row in rows:
        try:
            passages[row.id] = _stored(row)
        except (MalformedRow, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("skipping passage %s: %s", row.id, exc)
    return passages


def _fingerprint(text: str) -> str:
    """Passages that read the same (syndicated copies, case and spacing aside) share a fingerprint."""
    return " ".join(words(text.lower()))


# Reciprocal rank fusion's constant: ranks 1 and 2 differ little, so neither list alone decides (Cormack et al.).
RRF_K = 60
# Candidates taken from each of the dense and lexical lists before fusion, as a multiple of k.
CANDIDATES_PER_K = 3
# At most this many passages of one article among the first k, so one long article cannot crowd the others out.
MAX_PER_DOC = 3
# Passages whose neighbours are pulled in (those that may hold half of an answer spanning the boundary).
NEIGHBOURS_OF = 2
# In server mode another process may change the collection: its size is checked at most this often (seconds).
REFRESH_SECONDS = 5.0


class Retriever:
    """Hybrid retrieval over the index: dense (Chroma) and lexical (BM25 over the same passages), fused by
    reciprocal rank fusion, then filtered, de-duplicated across syndicated copies and diversified across articles.

    The passages' texts, metadata and sentence vectors are held in memory (they are needed for the corpus
    statistics and BM25 anyway), so a query asks Chroma only for ids and distances. Everything derived from the
    index is rebuilt by `reload()`: after an ingest run in this process (`Pipeline.refresh()`), when Chroma returns
    an id the snapshot does not know, or when the collection's size changed (checked at most every
    REFRESH_SECONDS, for a server other processes write to).
    """

    def __init__(self, index: Index, embedder: Embedder, k: int):
        self.index = index
        self.embedder = embedder
        self.k = k
        # A reload (an ingest run in this process, say) swaps the whole snapshot while no question is being
        # retrieved, so that no question sees the passages of one snapshot with the BM25 index of another.
        self._lock = threading.RLock()
        self.reload()

    def reload(self) -> None:
        import bm25s

        count = self.index.count()
        passages = _readable(self.index.passages())
        rows = [s.row for s in passages.values()]
        stats = CorpusStats.from_rows(rows)
        ids = list(passages)
        bm25 = bm25s.BM25()
        if ids:
            tokens = [terms(f"{s.hit.title} {s.hit.text}") or ["_"] for s in passages.values()]
            bm25.index(tokens, show_progress=False)
        with self._lock:
            self.passages, self.stats, self._ids, self.bm25, self._count = passages, stats, ids, bm25, count
            self._position = {pid: i for i, pid in enumerate(ids)}
            self._by_place = {(s.doc_key, s.version, s.n): pid for pid, s in passages.items()}
            self._fingerprints = {pid: _fingerprint(s.hit.text) for pid, s in passages.items()}
            self.newest = max((s.hit.published for s in passages.values() if s.hit.published), default=None)
            # Outlets by the name a question would use ("The Hill"; "Test Wire" for "Test Wire (fixture)").
            self.outlets = {
                re.sub(r"\s*\(.*?\)\s*", " ", s.hit.outlet).strip(): s.hit.outlet
                for s in passages.values()
                if s.hit.outlet
            }
            self._checked = time.monotonic()

    def refresh_if_changed(self) -> bool:
        """Reload when the collection's size changed since the snapshot (checked at most every REFRESH_SECONDS)."""
        now = time.monotonic()
        if now - self._checked < REFRESH_SECONDS:
            return False
        self._checked = now
        if self.index.count() != self._count:
            self.reload()
            return True
        return False

    def lexical(self, question: str, n: int) -> list[tuple[str, float]]:
        """Ids and BM25 scores of the `n` best passages by BM25, best first (only those sharing a term)."""
        q = [t for t in terms(question) if t in self.stats.df]
        if not q or not self._ids:
            return []
        scores = self.bm25.get_scores(q)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        return [(self._ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def retrieve(self, reading: Reading, filters: Filters | None = None, k: int | None = None) -> list[Hit]:
        """The k best passages for the question `reading` reads, only from articles `filters` admits; articles
        published within the range it prefers ("in June": June and July) get one more vote in the fusion, as if
        ranked first by a third list."""
        with self._lock:
            return self._retrieve(reading.text, filters, k, reading.window.prefer)

    def _retrieve(self, question: str, filters: Filters | None, k: int | None, prefer) -> list[Hit]:
        k = k or self.k
        self.refresh_if_changed()
        vector = self.embedder.encode_query(question)
        wanted = CANDIDATES_PER_K * k
        admitted = None
        if filters:
            admitted = {pid for pid, s in self.passages.items() if filters.admits(s.hit)}
        where = {"doc_id": {"$in": sorted({self.passages[p].hit.doc_id for p in admitted})}} if admitted else None
        if admitted is not None and not admitted:
            return []
        dense = self.index.nearest(vector, wanted, where=where)
        if any(pid not in self.passages for pid, _ in dense):
            self.reload()
            if admitted is not None:
                admitted = {pid for pid, s in self.passages.items() if filters.admits(s.hit)}
        dense = [(pid, s) for pid, s in dense if pid in self.passages and (admitted is None or pid in admitted)]
        lexical = self.lexical(question, wanted * 2 if admitted is not None else wanted)
        lexical = [(pid, s) for pid, s in lexical if admitted is None or pid in admitted][:wanted]
        return self._fuse(dense, lexical, vector, k, prefer)

    def _fuse(self, dense, lexical, vector: np.ndarray, k: int, prefer: tuple[str, str] | None = None) -> list[Hit]:
        fused: dict[str, float] = {}
        dense_rank = {pid: r for r, (pid, _) in enumerate(dense, 1)}
        lexical_rank = {pid: r for r, (pid, _) in enumerate(lexical, 1)}
        for ranks in (dense_rank, lexical_rank):
            for pid, r in ranks.items():
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + r)
        if prefer:
            for pid in fused:
                published = self.passages[pid].hit.published
                if published and prefer[0] <= published <= prefer[1]:
                    fused[pid] += 1.0 / (RRF_K + 1)
        dense_score = dict(dense)
        top_lexical = lexical[0][1] if lexical else 1.0
        lexical_score = {pid: s / top_lexical for pid, s in lexical}
        order = sorted(fused, key=lambda pid: fused[pid], reverse=True)
        # Syndicated copies: the same text under another article is dropped; then at most MAX_PER_DOC passages of
        # one article come first, the rest only if places are left.
        seen_text: set[str] = set()
        first, rest, per_doc = [], [], Counter()
        for pid in order:
            fp = self._fingerprints[pid]
            if fp in seen_text:
                continue
            seen_text.add(fp)
            doc = self.passages[pid].hit.doc_id
            per_doc[doc] += 1
            (first if per_doc[doc] <= MAX_PER_DOC else rest).append(pid)
        chosen = (first + rest)[:k]
        hits = []
        for rank, pid in enumerate(chosen, 1):
            via = "both" if pid in dense_rank and pid in lexical_rank else "dense" if pid in dense_rank else "lexical"
            hits.append(self._hit(pid, vector, dense_score.get(pid), lexical_score.get(pid, 0.0), fused[pid], rank, via))
        # A passage's neighbours, for an answer that runs over its boundary, when they are not already in.
        present = set(chosen) | {self._fingerprints[p] for p in chosen}
        for hit in hits[:NEIGHBOURS_OF]:
            s = self.passages[hit.id]
            for n in (s.n - 1, s.n + 1):
                pid = self._by_place.get((s.doc_key, s.version, n))
                if pid and pid not in present and self._fingerprints[pid] not in present:
                    present |= {pid, self._fingerprints[pid]}
                    hits.append(self._hit(pid, vector, dense_score.get(pid), lexical_score.get(pid, 0.0),
                                          0.5 * hit.fused, len(hits) + 1, "neighbour"))
        return hits

    def _hit(self, pid: str, vector: np.ndarray, dense: float | None, lexical: float, fused: float, rank: int, via: str) -> Hit:
        stored = self.passages[pid]
        scores = stored.sentence_vectors @ vector
        # A passage found only lexically has no cosine from Chroma: its best sentence's similarity stands in.
        score = dense if dense is not None else float(scores.max(initial=0.0))
        return dataclasses.replace(
            stored.hit, score=score, sentence_scores=tuple(scores.tolist()), lexical=lexical, fused=fused, rank=rank, via=via
        )
