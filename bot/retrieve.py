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
from ingest.index import Index, meta_problem, outlet_key, published_ymd
from ingest.lexical import ACRONYM_LETTERS, LexicalStore, Snapshot, path_for, shown_versions, unpack

from .text import STOPWORDS, _plain, is_calendar, stem, terms
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


_FULL = "id, doc_id, title, location, start, sents, url, outlet, published, alts, doc_key, version, n"


def _from_row(row: tuple, text: str, vectors: np.ndarray) -> _Stored:
    pid, doc_id, title, location, start, sents, url, outlet, published, alts, key, version, n = row
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
        payloads = self._index.payloads([r[0] for r in rows])
        out = {}
        for r in rows:
            if r[0] in payloads:
                text, vectors = payloads[r[0]]
                stored = _from_row(r, text, vectors)
                if len(vectors) == len(stored.hit.sentences) and all(e <= len(text) for _, e in stored.hit.sentences):
                    out[r[0]] = stored
                else:
                    log.warning("skipping passage %s: its text or sentence vectors do not match its sentences", r[0])
        return out

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
        return unpack(found[0][0])

    def __iter__(self):
        return iter(dict.fromkeys(d for (d,) in self._snap.query("SELECT doc_id FROM docs ORDER BY first_pos")))

    def __len__(self) -> int:
        return self._snap.query("SELECT count(DISTINCT doc_id) FROM docs")[0][0]

    def __bool__(self) -> bool:
        return bool(self._snap.query("SELECT 1 FROM docs LIMIT 1"))

    def values(self):
        seen = set()
        for doc, text in self._snap.query("SELECT doc_id, text FROM docs ORDER BY first_pos"):
            if doc not in seen:
                seen.add(doc)
                yield unpack(text)


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
# A filtered question first takes this many times the candidates it needs from an unfiltered dense search, and
# asks Chroma with the filter only when too few of them pass (see Retriever._filtered_dense).
OVERFETCH = 8
# Passages whose neighbours are pulled in (those that may hold half of an answer spanning the boundary).
NEIGHBOURS_OF = 2
# Another process (an ingest run, in server mode) may change the collection: a background thread checks its change
# mark this often (seconds) and, when it moved, brings the lexical file up to date and swaps the snapshot.
REFRESH_SECONDS = 5.0


class Retriever:
    """Hybrid retrieval over the index: dense (Chroma) and lexical (BM25 over the same passages, on disk:
    ingest.lexical), fused by reciprocal rank fusion, then filtered, de-duplicated across syndicated copies and
    diversified across articles.

    Questions are answered from a snapshot of the lexical file (a read transaction: the BM25 postings, the corpus
    statistics, each passage's metadata); texts and sentence vectors are read from the sidecar for the passages a
    question returns only. `reload()` brings the file up to date with the index (in proportion to what changed) and swaps in
    a new snapshot; it runs outside the question path: after an ingest run in this process (`Pipeline.refresh()`),
    and from a background thread when the collection's change mark (`Index.change_mark`: its size and the ingest's
    count of runs that changed it) moved or Chroma returned an id the snapshot does not know. A question always
    answers from the last complete snapshot.
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
        self._source_cache: dict = {}
        self.reload()
        self._stop = threading.Event()
        if watch:
            threading.Thread(target=self._watch, name="dealbot-refresh", daemon=True).start()

    def reload(self) -> None:
        """Bring the lexical file up to date with the index and swap in a snapshot of it."""
        with self._reloading:
            mark = self.index.change_mark()
            self.store.sync(self.index, self.alias_forms)
            self.index.unhide()  # rows found stray are looked at again against the new snapshot
            snap = self.store.snapshot()
            stats = CorpusStats.from_snapshot(snap)
            stats.spellable  # noqa: B018 -- sorted here, off the question path
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
                self.stats, self.newest, self.outlets, self._mark = stats, newest, outlets, mark
                self.passages = _Passages(snap, self.index)

    def refresh_if_changed(self) -> bool:
        """Reload when the collection's change mark moved since the snapshot."""
        if self.index.change_mark() != self._mark:
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
            threading.Thread(target=self._reload_quietly, name="dealbot-reload", daemon=True).start()

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except Exception as exc:  # the snapshot in use stays; the next refresh retries
            log.warning("refresh failed: %s: %s", type(exc).__name__, exc)

    def caught_up(self, timeout: float) -> bool:
        """Wait (up to `timeout` seconds) until the snapshot holds as many passages as the collection: for callers
        that must see another process's write, such as tests. The background refresh does the work."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._reloading.locked() and self.index.change_mark() == self._mark:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()

    def lexical(self, question: str, n: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Ids and BM25 scores of the `n` best passages by BM25 that `filters` admits, best first (only those
        sharing a term)."""
        with self._lock:
            return self._lexical(question, n, filters)

    def _lexical(self, question: str, n: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        snap = self._snap
        q = [t for t in terms(question) if t in self.stats.df]
        if not q or not snap.size:
            return []
        scores = snap.scores(q)
        # Filtered, twice as many are taken, and those the filter admits kept.
        m = min(2 * n if filters else n, len(scores))
        top = np.argpartition(-scores, m - 1)[:m]
        top = [i for i in top[np.argsort(-scores[top])] if scores[i] > 0]
        found = list(zip(snap.ids_at(top), (float(scores[i]) for i in top)))
        if filters and found:
            admitted = self.admitted(filters, among=[p for p, _ in found])
            found = [(p, s) for p, s in found if p in admitted][:n]
        return found

    def admitted(self, filters: Filters, among: list[str] | None = None) -> set[str]:
        """The ids of the passages `filters` admits, of those `among` (questions check their candidates only;
        every passage for tests and tools)."""
        sql, args = self._filter_sql(filters)
        if among is not None:
            sql, args = f"id IN ({','.join('?' * len(among))}) AND {sql}", [*among, *args]
        return {pid for (pid,) in self._snap.query(f"SELECT id FROM passages WHERE {sql}", args)}

    def _filter_sql(self, filters: Filters) -> tuple[str, list]:
        """`filters` as a condition on the lexical file's passages (what Filters.admits admits)."""
        sql, args = ["1"], []
        if filters.since or filters.until:
            sql.append("published != ''")
        if filters.since:
            sql, args = sql + ["published >= ?"], args + [filters.since]
        if filters.until:
            sql, args = sql + ["published <= ?"], args + [filters.until]
        if filters.sources:
            outlets, docs = self._sources(filters.sources)
            sql.append(f"(outlet IN ({','.join('?' * len(outlets))}) OR doc_key IN ({','.join('?' * len(docs))}))")
            args += sorted(outlets) + sorted(docs)
        return " AND ".join(sql), args

    def _sources(self, sources: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
        """The outlets whose name holds one of `sources` (case-insensitively), and the documents whose location or
        URL does: looked up among the outlets and the documents (not the passages), once per snapshot."""
        key = (id(self._snap), sources)
        if key not in self._source_cache:
            wanted = [s.lower() for s in sources]
            outlets = frozenset(o for o in self.outlets.values() if any(s in o.lower() for s in wanted))
            where = " OR ".join(["instr(lower(location || ' ' || url), ?) > 0"] * len(wanted))
            docs = frozenset(k for (k,) in self._snap.query(f"SELECT doc_key FROM docs WHERE {where}", wanted))
            if len(self._source_cache) > 100:
                self._source_cache.clear()
            self._source_cache[key] = (outlets, docs)
        return self._source_cache[key]

    def _where(self, filters: Filters) -> dict | None:
        """`filters` as a Chroma `where` on the passages' filter keys (published_ymd, outlet_key, doc_key)."""
        parts: list[dict] = []
        if filters.since:
            parts.append({"published_ymd": {"$gte": published_ymd(filters.since)}})
        if filters.until:
            parts.append({"published_ymd": {"$lte": published_ymd(filters.until)}})
        if (filters.since or filters.until) and not filters.since:
            parts.append({"published_ymd": {"$gt": 0}})  # undated articles are outside any range
        if filters.sources:
            outlets, docs = self._sources(filters.sources)
            either = [{"outlet_key": {"$in": sorted({outlet_key(o) for o in outlets})}}] if outlets else []
            either += [{"doc_key": {"$in": sorted(docs)}}] if docs else []
            parts.append(either[0] if len(either) == 1 else {"$or": either})
        return None if not parts else parts[0] if len(parts) == 1 else {"$and": parts}

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
        where = None
        if filters:
            if filters.sources and not any(self._sources(filters.sources)):
                return []
            where = self._where(filters) if self.index.schema >= 2 else self._where_documents(filters)
            if where is None:
                return []
        dense, briefs = self._filtered_dense(vector, wanted, filters, where) if filters else self._dense(vector, wanted, None)
        lexical = self._lexical(question, wanted, filters)
        briefs.update(self.passages.briefs([p for p, _ in lexical if p not in briefs]))
        lexical = [(p, s) for p, s in lexical if p in briefs]
        return self._fuse(dense, lexical, briefs, vector, k, prefer)

    def _where_documents(self, filters: Filters) -> dict | None:
        """For an index not migrated yet (no filter keys): the admitted documents by id."""
        sql, args = self._filter_sql(filters)
        docs = sorted({d for (d,) in self._snap.query(f"SELECT DISTINCT doc_id FROM passages WHERE {sql}", args)})
        return {"doc_id": {"$in": docs}} if docs else None

    def _filtered_dense(self, vector: np.ndarray, n: int, filters: Filters, where: dict) -> tuple[list, dict]:
        """Chroma's `n` nearest passages that `filters` admits. Chroma's filtered search costs in proportion to the
        passages the filter admits (60 ms for half of 10k passages), so the OVERFETCH * n nearest are asked for
        without the filter first and checked against it in the lexical index; only when fewer than n of them pass
        (a narrow filter) is Chroma asked with the filter in its `where`. The nearest admitted passages are the
        same either way."""
        pool = OVERFETCH * n
        dense, briefs = self._dense(vector, pool, None)
        if dense:
            admitted = self.admitted(filters, among=[p for p, _ in dense])
            kept = [(p, s) for p, s in dense if p in admitted]
            if len(kept) >= n or len(dense) < pool:  # enough, or the pool held every passage there is
                return kept[:n], briefs
        return self._dense(vector, n, where)

    def _dense(self, vector: np.ndarray, n: int, where: dict | None) -> tuple[list[tuple[str, float]], dict[str, _Brief]]:
        """Chroma's `n` nearest passages that the snapshot holds, with their briefs.

        A passage the snapshot does not hold is another writer's new document (served once the background reload
        has swapped it in) or a row that no complete document version lists: written into the collection by
        another program, malformed, or left by an interrupted sync. Those are logged, left out of Chroma's answers
        until the next reload, and the question asks again without them."""
        for _ in range(3):
            dense = self.index.nearest(vector, n, where=where)
            briefs = self.passages.briefs([p for p, _ in dense])
            unknown = [p for p, _ in dense if p not in briefs]
            if not unknown:
                break
            strays = self._strays(unknown)
            if len(strays) < len(unknown):
                self._reload_soon()
            if not strays:
                break
            self.index.hide(strays)
        return [(p, s) for p, s in dense if p in briefs], briefs

    def _strays(self, ids: list[str]) -> list[str]:
        """Of these ids, unknown to the snapshot, those no complete document version lists (logged)."""
        shown = shown_versions(self.index)
        strays, first = [], None
        for pid, meta in self.index.metadata_of(ids).items():
            why = meta_problem(meta)
            if why is None and shown.get(meta["doc_key"], (None,))[0] != meta["version"]:
                why = "no complete document version lists it"
            if why is not None:
                strays.append(pid)
                first = first or (pid, why)
        if strays:
            log.warning("skipping %d malformed passage(s) in the index (first: %s: %s)", len(strays), *first)
        return strays

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
