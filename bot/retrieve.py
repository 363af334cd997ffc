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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np

from ingest.embed import Embedder
from ingest.index import Index, Row
from ingest.lexical import ACRONYM_LETTERS, LexicalStore, Snapshot, path_for

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
    # The story's alias forms looked for in every document when it was added, and those found (None: not recorded)
    forms: tuple[frozenset[str], frozenset[str]] | None = None
    # The texts of the documents having a run of words with given initials, in order (ingest.lexical.initials)
    with_initials: Callable[[str], list[str]] | None = dataclasses.field(default=None, compare=False)

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

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> "CorpusStats":
        """The statistics recorded in the lexical file: counted per document when it was added, summed there."""
        lower = {w for w, _, _ in snap.stat("low")}
        names: dict[str, str] = {}
        for w, _, _ in sorted(snap.stat("cap"), key=lambda r: (-r[1], r[2])):
            if w.lower() not in lower and len(w) > 1 and _plain(w) not in STOPWORDS and not is_calendar(stem(w)):
                names.setdefault(w.lower(), w)
        df = {w: n for w, n, _ in snap.stat("df")}
        vocabulary = frozenset(w for w, _, _ in snap.stat("voc"))
        return cls(snap.sentences, df, vocabulary, _Documents(snap), names, snap.forms(), snap.documents_with_initials)

    def mentions(self, pattern: re.Pattern, forms: set[str]) -> bool:
        """Whether some article has one of `forms` (names, plain and lower case), `pattern` matching any of them:
        a lookup when the forms were looked for as the documents were added, else a scan of every document."""
        if self.forms is not None and forms <= self.forms[0]:
            return bool(forms & self.forms[1])
        return any(pattern.search(text) for text in self.documents.values())

    def expansion(self, acronym: str) -> str | None:
        """The words `acronym` stands for in the articles ("electronic design automation" for "EDA"): the most
        frequent run of words whose initials spell it, or None."""
        if acronym not in self._expansions:
            self._expansions[acronym] = self._expansion(acronym)
        return self._expansions[acronym]

    def _expansion(self, acronym: str) -> str | None:
        pattern = re.compile(r"\b" + r"[\s-]+".join(rf"{c}[a-z]+" for c in acronym.lower()) + r"\b", re.I)
        lo, hi = ACRONYM_LETTERS
        texts = self.with_initials(acronym.lower()) if self.with_initials and lo <= len(acronym) <= hi else self.documents.values()
        found = Counter(
            m[0] for text in texts for m in pattern.finditer(text)
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
    def document_terms(self) -> Mapping[str, frozenset[str]]:
        """Each document's terms (stems), title included (computed for the documents asked about)."""
        return _DocumentTerms(self.documents)

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
    """A retrieved passage: what a Hit needs, with its sentence vectors ready for scoring."""

    hit: Hit
    sentence_vectors: np.ndarray
    doc_key: str
    version: str
    n: int


@dataclass(frozen=True)
class _Brief:
    """What fusion needs of a candidate passage, without its text: read from the lexical file in one query."""

    doc_id: str
    doc_key: str
    version: str
    n: int
    published: str
    fingerprint: str


_FULL = "id, doc_id, title, location, text, start, sents, url, outlet, published, alts, doc_key, version, n"


def _from_row(row: tuple, vectors: np.ndarray) -> _Stored:
    pid, doc_id, title, location, text, start, sents, url, outlet, published, alts, key, version, n = row
    hit = Hit(
        id=pid, doc_id=doc_id, title=title, source=location, text=text, start=start,
        sentences=tuple(tuple(s) for s in json.loads(sents)), score=0.0, sentence_scores=(),
        url=url or None, outlet=outlet or None, published=published or None, alternates=tuple(json.loads(alts or "[]")),
    )
    return _Stored(hit, vectors, key, version, n)


class _Passages(Mapping):
    """The passages of a snapshot by id, read from the lexical file (and the sentence vectors' sidecar) when asked
    for: nothing per passage is held in memory."""

    def __init__(self, snap: Snapshot, index: Index):
        self._snap, self._index = snap, index

    def fetch(self, ids: list[str]) -> dict[str, _Stored]:
        """These passages, in one query and one read of the sidecar; an id unknown or without vectors is left out."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._snap.query(f"SELECT {_FULL} FROM passages WHERE id IN ({marks})", ids)
        vectors = self._index.sentence_vectors([r[0] for r in rows])
        return {r[0]: _from_row(r, vectors[r[0]]) for r in rows if r[0] in vectors}

    def briefs(self, ids: list[str]) -> dict[str, _Brief]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._snap.query(
            f"SELECT id, doc_id, doc_key, version, n, published, fingerprint FROM passages WHERE id IN ({marks})", ids)
        return {r[0]: _Brief(*r[1:]) for r in rows}

    def __getitem__(self, pid: str) -> _Stored:
        found = self.fetch([pid])
        if pid not in found:
            raise KeyError(pid)
        return found[pid]

    def __contains__(self, pid) -> bool:
        return bool(self._snap.query("SELECT 1 FROM passages WHERE id = ?", (pid,)))

    def __iter__(self):
        return iter([pid for (pid,) in self._snap.query("SELECT id FROM passages ORDER BY pos")])

    def __len__(self) -> int:
        return self._snap.size

    def values(self):  # every passage: for tests and tools, never the question path
        ids = list(self)
        for lo in range(0, len(ids), 500):
            yield from self.fetch(ids[lo : lo + 500]).values()


class _Documents(Mapping):
    """Each document's title and text (doc_id -> text), read from the lexical file when asked for."""

    def __init__(self, snap: Snapshot):
        self._snap = snap

    def __getitem__(self, doc: str) -> str:
        found = self._snap.query("SELECT text FROM docs WHERE doc_id = ? ORDER BY first_pos LIMIT 1", (doc,))
        if not found:
            raise KeyError(doc)
        return found[0][0]

    def __iter__(self):
        return iter(dict.fromkeys(d for (d,) in self._snap.query("SELECT doc_id FROM docs ORDER BY first_pos")))

    def __len__(self) -> int:
        return self._snap.query("SELECT count(DISTINCT doc_id) FROM docs")[0][0]

    def values(self):
        seen = set()
        for doc, text in self._snap.query("SELECT doc_id, text FROM docs ORDER BY first_pos"):
            if doc not in seen:
                seen.add(doc)
                yield text


class _DocumentTerms(Mapping):
    """Each document's terms (stems), title included, computed for the documents asked about."""

    def __init__(self, documents: Mapping):
        self._documents, self._cache = documents, {}

    def __getitem__(self, doc: str) -> frozenset[str]:
        if doc not in self._cache:
            self._cache[doc] = frozenset(terms(self._documents[doc]))
        return self._cache[doc]

    def __iter__(self):
        return iter(self._documents)

    def __len__(self) -> int:
        return len(self._documents)


# Reciprocal rank fusion's constant: ranks 1 and 2 differ little, so neither list alone decides (Cormack et al.).
RRF_K = 60
# Candidates taken from each of the dense and lexical lists before fusion, as a multiple of k.
CANDIDATES_PER_K = 3
# At most this many passages of one article among the first k, so one long article cannot crowd the others out.
MAX_PER_DOC = 3
# Passages whose neighbours are pulled in (those that may hold half of an answer spanning the boundary).
NEIGHBOURS_OF = 2
# Another process (an ingest run, in server mode) may change the collection: a background thread checks its size
# this often (seconds) and, when it changed, brings the lexical file up to date and swaps the snapshot.
REFRESH_SECONDS = 5.0


class Retriever:
    """Hybrid retrieval over the index: dense (Chroma) and lexical (BM25 over the same passages, on disk:
    ingest.lexical), fused by reciprocal rank fusion, then filtered, de-duplicated across syndicated copies and
    diversified across articles.

    Questions are answered from a snapshot of the lexical file (a read transaction: the BM25 postings, the corpus
    statistics, each passage's text and metadata); texts and sentence vectors are read for the passages a question
    returns only. `reload()` brings the file up to date with the index (in proportion to what changed) and swaps in
    a new snapshot; it runs outside the question path: after an ingest run in this process (`Pipeline.refresh()`),
    and from a background thread when the collection's size changed or Chroma returned an id the snapshot does not
    know. A question always answers from the last complete snapshot.
    """

    def __init__(self, index: Index, embedder: Embedder, k: int, watch: bool = True, alias_forms=frozenset()):
        self.index = index
        self.alias_forms = frozenset(alias_forms)
        self.embedder = embedder
        self.k = k
        self.store = LexicalStore(path_for(index.settings.data_dir, index.settings.collection), index.store_id)
        # Questions hold the lock for reading the snapshot; a reload only to swap it, once the new one is built.
        self._lock = threading.RLock()
        self._reloading = threading.Lock()
        self._snap: Snapshot | None = None
        self.reload()
        self._stop = threading.Event()
        if watch:
            threading.Thread(target=self._watch, name="dealbot-refresh", daemon=True).start()

    def reload(self) -> None:
        """Bring the lexical file up to date with the index and swap in a snapshot of it."""
        with self._reloading:
            count = self.index.count()
            self.store.sync(self.index, self.alias_forms)
            snap = self.store.snapshot()
            stats = CorpusStats.from_snapshot(snap)
            newest = snap.query("SELECT max(published) FROM passages WHERE published != ''")[0][0] or None
            # Outlets by the name a question would use ("The Hill"; "Test Wire" for "Test Wire (fixture)").
            outlets = {
                re.sub(r"\s*\(.*?\)\s*", " ", o).strip(): o
                for (o,) in snap.query("SELECT outlet FROM passages WHERE outlet != '' GROUP BY outlet ORDER BY min(pos)")
            }
            # The previous snapshot is not closed here: an answer being composed may still read its statistics. It
            # closes (ending its read transaction) when the last reference to it goes.
            with self._lock:
                self._snap = snap
                self.stats, self.newest, self.outlets, self._count = stats, newest, outlets, count
                self.passages = _Passages(snap, self.index)

    def refresh_if_changed(self) -> bool:
        """Reload when the collection's size changed since the snapshot."""
        if self.index.count() != self._count:
            self.reload()
            return True
        return False

    def _watch(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.refresh_if_changed()
            except Exception as exc:  # a server away for a moment: the snapshot stays, the next check retries
                log.warning("refresh failed: %s: %s", type(exc).__name__, exc)

    def _reload_soon(self) -> None:
        if not self._reloading.locked():
            threading.Thread(target=self.reload, name="dealbot-reload", daemon=True).start()

    def caught_up(self, timeout: float) -> bool:
        """Wait (up to `timeout` seconds) until the snapshot holds as many passages as the collection: for callers
        that must see another process's write, such as tests. The background refresh does the work."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._reloading.locked() and self.index.count() == self._count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()

    def lexical(self, question: str, n: int) -> list[tuple[str, float]]:
        """Ids and BM25 scores of the `n` best passages by BM25, best first (only those sharing a term)."""
        with self._lock:
            return self._lexical(question, n)

    def _lexical(self, question: str, n: int, admitted: frozenset[str] | None = None) -> list[tuple[str, float]]:
        snap = self._snap
        q = [t for t in terms(question) if t in self.stats.df]
        if not q or not snap.size:
            return []
        scores = snap.scores(q)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        top = [i for i in top if scores[i] > 0]
        return list(zip(snap.ids_at(top), (float(scores[i]) for i in top)))

    def admitted(self, filters: Filters) -> set[str]:
        """The ids of the passages `filters` admits: the dates compared in the query, the outlets after."""
        sql, args = "SELECT id, doc_id, title, location, url, outlet, published FROM passages", []
        if filters.since or filters.until:
            sql += " WHERE published != ''"
            if filters.since:
                sql, args = sql + " AND published >= ?", args + [filters.since]
            if filters.until:
                sql, args = sql + " AND published <= ?", args + [filters.until]
        found = set()
        for pid, doc_id, title, location, url, outlet, published in self._snap.query(sql, args):
            hit = Hit(id=pid, doc_id=doc_id, title=title, source=location, text="", start=0, sentences=(), score=0.0,
                      sentence_scores=(), url=url or None, outlet=outlet or None, published=published or None)
            if filters.admits(hit):
                found.add(pid)
        return found

    def retrieve(self, reading: Reading, filters: Filters | None = None, k: int | None = None) -> list[Hit]:
        """The k best passages for the question `reading` reads, only from articles `filters` admits; articles
        published within the range it prefers ("in June": June and July) get one more vote in the fusion, as if
        ranked first by a third list."""
        with self._lock:
            return self._retrieve(reading.text, filters, k, reading.window.prefer)

    def _retrieve(self, question: str, filters: Filters | None, k: int | None, prefer) -> list[Hit]:
        k = k or self.k
        vector = self.embedder.encode_query(question)
        wanted = CANDIDATES_PER_K * k
        admitted = self.admitted(filters) if filters else None
        if admitted is not None and not admitted:
            return []
        where = None
        if admitted is not None:
            docs = {d for (d,) in self._snap.query(
                f"SELECT DISTINCT doc_id FROM passages WHERE id IN ({','.join('?' * len(admitted))})", sorted(admitted))}
            where = {"doc_id": {"$in": sorted(docs)}}
        dense = self.index.nearest(vector, wanted, where=where)
        lexical = self._lexical(question, wanted * 2 if admitted is not None else wanted)
        lexical = [(pid, s) for pid, s in lexical if admitted is None or pid in admitted][:wanted]
        briefs = self.passages.briefs(list(dict.fromkeys([p for p, _ in dense] + [p for p, _ in lexical])))
        if any(pid not in briefs for pid, _ in dense):
            self._reload_soon()  # another writer's passages: served once the new snapshot is in
        dense = [(pid, s) for pid, s in dense if pid in briefs and (admitted is None or pid in admitted)]
        return self._fuse(dense, lexical, briefs, vector, k, prefer)

    def _fuse(self, dense, lexical, briefs: dict[str, _Brief], vector: np.ndarray, k: int,
              prefer: tuple[str, str] | None = None) -> list[Hit]:
        fused: dict[str, float] = {}
        dense_rank = {pid: r for r, (pid, _) in enumerate(dense, 1)}
        lexical_rank = {pid: r for r, (pid, _) in enumerate(lexical, 1)}
        for ranks in (dense_rank, lexical_rank):
            for pid, r in ranks.items():
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + r)
        if prefer:
            for pid in fused:
                published = briefs[pid].published
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
            fp = briefs[pid].fingerprint
            if fp in seen_text:
                continue
            seen_text.add(fp)
            doc = briefs[pid].doc_id
            per_doc[doc] += 1
            (first if per_doc[doc] <= MAX_PER_DOC else rest).append(pid)
        chosen = (first + rest)[:k]
        # A passage's neighbours, for an answer that runs over its boundary, when they are not already in.
        present = set(chosen) | {briefs[p].fingerprint for p in chosen}
        neighbours: list[tuple[str, str]] = []  # (neighbour, the passage it neighbours)
        for pid in chosen[:NEIGHBOURS_OF]:
            b = briefs[pid]
            found = dict(self._snap.query(
                "SELECT n, id FROM passages WHERE doc_key = ? AND version = ? AND n IN (?, ?)", (b.doc_key, b.version, b.n - 1, b.n + 1)))
            near = self.passages.briefs([found[n] for n in (b.n - 1, b.n + 1) if n in found])
            for n in (b.n - 1, b.n + 1):
                nid = found.get(n)
                if nid and nid in near and nid not in present and near[nid].fingerprint not in present:
                    present |= {nid, near[nid].fingerprint}
                    neighbours.append((nid, pid))
        stored = self.passages.fetch(chosen + [n for n, _ in neighbours])
        hits = []
        for pid in chosen:
            if pid in stored:
                via = "both" if pid in dense_rank and pid in lexical_rank else "dense" if pid in dense_rank else "lexical"
                hits.append(self._hit(stored[pid], vector, dense_score.get(pid), lexical_score.get(pid, 0.0),
                                      fused[pid], len(hits) + 1, via))
        for nid, pid in neighbours:
            if nid in stored:
                hits.append(self._hit(stored[nid], vector, dense_score.get(nid), lexical_score.get(nid, 0.0),
                                      0.5 * fused[pid], len(hits) + 1, "neighbour"))
        return hits

    def _hit(self, stored: _Stored, vector: np.ndarray, dense: float | None, lexical: float, fused: float, rank: int, via: str) -> Hit:
        scores = stored.sentence_vectors @ vector
        # A passage found only lexically has no cosine from Chroma: its best sentence's similarity stands in.
        score = dense if dense is not None else float(scores.max(initial=0.0))
        return dataclasses.replace(
            stored.hit, score=score, sentence_scores=tuple(scores.tolist()), lexical=lexical, fused=fused, rank=rank, via=via
        )
