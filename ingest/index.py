"""The index: the only module that talks to Chroma.

It owns the collection's name and schema, the metadata keys of a passage, the check that the index was built with
the model in use, and how to open the store embedded (PersistentClient under the data directory) or against a
Chroma server (DEALBOT_CHROMA_URL). Vectors are always passed in: Chroma never embeds anything itself.

Each passage row has id `<doc key>:<version>:<n>`, where the doc key identifies (source, location) and the version
is the document's content hash. A new version is written whole before the old one is deleted, and readers see
only one version of each document: the newest complete one (`passages()`). So a sync killed at any moment leaves
every document wholly old or wholly new to readers, and the next sync removes what was left behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Sequence
from urllib.parse import urlparse

import numpy as np

from .embed import DIMENSIONS
from .records import Passage
from .settings import Settings

SCHEMA = 1

log = logging.getLogger("dealbot.index")


class IndexAccessError(Exception):
    """The index cannot be opened or used as asked; the message says how to fix it."""


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


class MalformedRow(ValueError):
    """A stored passage whose metadata is not what ingest writes (written by another program, or damaged)."""


@dataclass(frozen=True)
class Row:
    """A passage as stored: its text and metadata."""

    id: str
    text: str
    meta: dict

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        """The sentences' (start, end) within the text; MalformedRow if they are not offsets into it."""
        spans = self._spans()
        if any(end > len(self.text) for _, end in spans):
            raise MalformedRow("'sents' has offsets past the end of the passage's text")
        return spans

    def _spans(self) -> list[tuple[int, int]]:
        try:
            spans = [tuple(map(int, s.split("-"))) for s in self.meta["sents"].split(",") if s]
        except (KeyError, AttributeError, ValueError) as exc:
            raise MalformedRow(f"'sents' is not a list of offsets: {exc}") from None
        if any(len(sp) != 2 or not 0 <= sp[0] <= sp[1] for sp in spans):
            raise MalformedRow("'sents' has offsets out of order")
        return spans

    @cached_property
    def sentence_vectors(self) -> np.ndarray:
        """One unit vector per sentence (stored as float16: ample for ranking, a quarter of the space)."""
        try:
            raw = np.frombuffer(base64.b64decode(self.meta["svec"], validate=True), dtype=np.float16)
            vectors = raw.reshape(-1, DIMENSIONS).astype(np.float32)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise MalformedRow(f"'svec' is not sentence vectors: {exc}") from None
        if len(vectors) != len(self._spans()) or not np.isfinite(vectors).all():
            raise MalformedRow("'svec' does not hold one finite vector per sentence")
        return vectors

    def problem(self, with_text: bool = True) -> str | None:
        """Why this row cannot be used, or None: every field a reader relies on, checked (the sentence offsets
        against the text too, when the text was read)."""
        problem = meta_problem(self.meta)
        if problem is None:
            try:
                self.sentence_vectors  # noqa: B018 - checks the offsets' form too
                if with_text:
                    self.sentences  # noqa: B018
            except MalformedRow as exc:
                problem = str(exc)
        return problem


_TEXT_FIELDS = ("doc_id", "doc_key", "source", "location", "title", "url", "outlet", "author", "published",
                "raw_hash", "text_hash", "version", "sents", "svec")
_COUNT_FIELDS = ("n", "n_total", "start", "end")


def meta_problem(meta) -> str | None:
    """Why a passage's metadata is unusable, or None. What ingest writes always passes."""
    if not isinstance(meta, dict):
        return "it has no metadata"
    for key in _TEXT_FIELDS:
        if not isinstance(meta.get(key), str):
            return f"'{key}' is missing or not text"
    for key in _COUNT_FIELDS:
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"'{key}' is missing or not a whole number"
    if not meta["doc_id"] or not meta["doc_key"] or not meta["version"]:
        return "'doc_id', 'doc_key' or 'version' is empty"
    if meta["n"] >= meta["n_total"] or meta["start"] > meta["end"]:
        return "'n' / 'n_total' or 'start' / 'end' are out of order"
    written = meta.get("written", 0)
    if not isinstance(written, int) or isinstance(written, bool):
        return "'written' is not a whole number"
    if not isinstance(meta.get("minhash", ""), str):
        return "'minhash' is not text"
    if meta["published"]:
        try:
            date.fromisoformat(meta["published"])
        except ValueError:
            return "'published' is not a date"
    try:
        alternates = json.loads(meta.get("alts") or "[]")
    except (TypeError, ValueError):
        return "'alts' is not a JSON list"
    if not isinstance(alternates, list) or not all(isinstance(a, str) for a in alternates):
        return "'alts' is not a JSON list of locations"
    try:
        outlets = json.loads(meta.get("alt_outlets") or "{}")
    except (TypeError, ValueError):
        return "'alt_outlets' is not a JSON object"
    if not isinstance(outlets, dict) or not all(isinstance(v, str) for v in outlets.values()):
        return "'alt_outlets' is not a JSON object of outlets"
    return None


def _usable(rows: list[Row], check) -> list[Row]:
    """The rows that pass `check`; the others are logged once per read and left alone."""
    good, bad = [], []
    for row in rows:
        (bad if (why := check(row)) else good).append((row, why))
    if bad:
        first, why = bad[0]
        log.warning("skipping %d malformed passage(s) in the index (first: %s: %s)", len(bad), first.id, why)
    return [row for row, _ in good]


def doc_key(source: str, location: str) -> str:
    return hashlib.sha1(f"{source}\0{location}".encode()).hexdigest()[:16]


def _client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if not settings.server_mode:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)
    url = urlparse(settings.chroma_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise IndexAccessError(
            f"chroma_url / DEALBOT_CHROMA_URL = {settings.chroma_url!r} is not a URL: use e.g. http://127.0.0.1:8000"
        )
    try:
        client = chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 80),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
        client.heartbeat()
    except Exception as exc:  # chromadb raises assorted connection errors; all mean the same to the user
        raise IndexAccessError(
            f"cannot reach the Chroma server at {settings.chroma_url} (chroma_url / DEALBOT_CHROMA_URL): "
            f"{type(exc).__name__}; start it with `chroma run --path DIR --port PORT` or unset the setting"
        ) from None
    return client


class Index:
    """One Chroma collection of passages, opened for reading or writing."""

    def __init__(self, settings: Settings, model_name: str, dimensions: int, create: bool = False):
        self.settings = settings
        self.model_name = model_name
        self.client = _client(settings)
        self.collection = self._open_collection(create, dimensions)
        self._hidden: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        if self.settings.server_mode:
            return f"Chroma server {self.settings.chroma_url}, collection '{self.settings.collection}'"
        return f"{self.settings.chroma_path}, collection '{self.settings.collection}'"

    def _open_collection(self, create: bool, dimensions: int):
        name = self.settings.collection
        existing = {c.name if hasattr(c, "name") else c for c in self.client.list_collections()}
        if name not in existing:
            if not create:
                return None
            return self.client.create_collection(
                name,
                embedding_function=None,
                metadata={
                    "hnsw:space": "cosine",
                    "dealbot_model": self.model_name,
                    "dealbot_dimensions": dimensions,
                    "dealbot_schema": SCHEMA,
                },
            )
        collection = self.client.get_collection(name, embedding_function=None)
        built_with = (collection.metadata or {}).get("dealbot_model")
        if built_with != self.model_name:
            raise IndexAccessError(
                f"the index at {self.where} was built with embedding model {built_with!r}, not {self.model_name!r}: "
                "its vectors are not comparable. Rebuild it into a new collection (DEALBOT_COLLECTION) "
                "or a new data directory (DEALBOT_DATA_DIR)"
            )
        return collection

    def require(self):
        if self.collection is None:
            raise IndexAccessError(f"the index at {self.where} is empty: run `dealbot ingest` first")
        return self.collection

    # Reading

    def count(self) -> int:
        return self.collection.count() if self.collection is not None else 0

    def nearest(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """Ids and cosine similarities of the `k` passages nearest to `vector` (matching `where`), nearest first."""
        collection = self.require()
        hidden = self._hidden
        res = collection.query(
            query_embeddings=[vector.tolist()], n_results=k + len(hidden), where=where, include=["distances"]
        )
        found = [(i, 1.0 - d) for i, d in zip(res["ids"][0], res["distances"][0]) if i not in hidden]
        return found[:k]

    def passages(self) -> list[Row]:
        """What readers see: the rows of each document's newest complete version. Other rows (a version left
        behind or half written by an interrupted sync) are hidden, from `nearest` too, until the next call."""
        everything = self.rows()
        rows = _usable(everything, lambda row: row.problem())
        best: dict[str, tuple[int, str]] = {}
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            counts[(row.meta["doc_key"], row.meta["version"])] += 1
        for row in rows:
            m = row.meta
            if counts[(m["doc_key"], m["version"])] == m["n_total"]:
                best[m["doc_key"]] = max(best.get(m["doc_key"], (-1, "")), (m.get("written", 0), m["version"]))
        shown = [r for r in rows if best.get(r.meta["doc_key"], (0, None))[1] == r.meta["version"]]
        shown_ids = {r.id for r in shown}
        self._hidden = frozenset(r.id for r in everything if r.id not in shown_ids)
        return shown

    def rows(self, where: dict | None = None, with_text: bool = True) -> list[Row]:
        """Every stored passage (matching `where`), fetched in pages."""
        if self.collection is None:
            return []
        include = ["metadatas", "documents"] if with_text else ["metadatas"]
        out: list[Row] = []
        page = 5000
        while True:
            res = self.collection.get(where=where, include=include, limit=page, offset=len(out))
            docs = res.get("documents") or [""] * len(res["ids"])
            out.extend(Row(id=i, text=t or "", meta=m or {}) for i, t, m in zip(res["ids"], docs, res["metadatas"]))
            if len(res["ids"]) < page:
                return out

    def first_passages(self, doc_keys: Sequence[str] | None = None) -> list[Row]:
        """The first passage (n = 0) of every stored document version, or of these documents': document-level
        facts (title, outlet, date, lead sentence, alternates) without reading every passage."""
        if doc_keys is None:
            rows = self.rows({"n": 0})
        else:
            keys = sorted(set(doc_keys))
            rows = [
                row
                for lo in range(0, len(keys), 500)
                for row in self.rows({"$and": [{"n": 0}, {"doc_key": {"$in": keys[lo : lo + 500]}}]})
            ]
        return _usable(rows, lambda row: row.problem())

    def doc_states(self, source: str | None = None) -> list[DocState]:
        """One DocState per stored (document, version), for one source or all."""
        where = {"source": source} if source is not None else None
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for row in _usable(self.rows(where, with_text=False), lambda row: row.problem(with_text=False)):
            groups[(row.meta["doc_key"], row.meta["version"])].append(row.meta)
        states = []
        for metas in groups.values():
            m = next((x for x in metas if x["n"] == 0), metas[0])
            states.append(
                DocState(
                    source=m["source"],
                    location=m["location"],
                    doc_id=m["doc_id"],
                    version=m["version"],
                    raw_hash=m["raw_hash"],
                    text_hash=m["text_hash"],
                    passages=len(metas),
                    complete=len(metas) == m["n_total"],
                    written=m.get("written", 0),
                    alternates=tuple(json.loads(m.get("alts") or "[]")),
                    minhash=m.get("minhash", ""),
                    key=m["doc_key"],
                )
            )
        return states

    def locations_of_texts(self, text_hashes: set[str]) -> dict[str, set[str]]:
        """For each of these text hashes that is stored, the locations storing it (for de-duplication)."""
        if self.collection is None or not text_hashes:
            return {}
        found: dict[str, set[str]] = defaultdict(set)
        hashes = sorted(text_hashes)
        for lo in range(0, len(hashes), 500):
            where = {"text_hash": {"$in": hashes[lo : lo + 500]}}
            for row in _usable(self.rows(where, with_text=False), lambda row: meta_problem(row.meta)):
                found[row.meta["text_hash"]].add(row.meta["location"])
        return found

    # Writing

    @property
    def max_batch_size(self) -> int:
        return self.client.get_max_batch_size()

    def write(
        self,
        passages: Sequence[Passage],
        vectors: np.ndarray,
        sentence_vectors: Sequence[np.ndarray],
        extra: dict[str, dict] | None = None,
    ) -> None:
        """Store passages (all of one or more documents) with their vectors, in batches Chroma accepts.

        `extra` adds metadata to every passage of a document, by location: its alternates, its MinHash signature.
        """
        collection = self.require()
        batch = self.max_batch_size
        written = time.time_ns()
        extra = extra or {}
        for lo in range(0, len(passages), batch):
            chunk = passages[lo : lo + batch]
            metadatas = []
            for p, sv in zip(chunk, sentence_vectors[lo : lo + batch]):
                more = extra.get(p.article.location, {})
                meta = passage_metadata(p, sv, written, more.get("alternates", ()), more.get("alternate_outlets"))
                if p.n == 0 and more.get("minhash"):
                    meta["minhash"] = more["minhash"]
                metadatas.append(meta)
            collection.upsert(
                ids=[passage_id(p) for p in chunk],
                documents=[p.text for p in chunk],
                metadatas=metadatas,
                embeddings=vectors[lo : lo + batch],
            )

    def add_alternate(self, state: DocState, location: str, outlet: str = "") -> None:
        """Record `location` as another place the document `state` was published (by `outlet`, when known)."""
        alternates = json.dumps(sorted({*state.alternates, location}))
        where = {"$and": [{"doc_key": state.key or doc_key(state.source, state.location)}, {"version": state.version}]}
        found = self.require().get(where=where, include=["metadatas"])
        if found["ids"]:
            outlets = json.loads(found["metadatas"][0].get("alt_outlets") or "{}")
            if outlet:
                outlets[location] = outlet
            meta = {"alts": alternates, "alt_outlets": json.dumps(outlets, sort_keys=True)}
            self.collection.update(ids=found["ids"], metadatas=[meta] * len(found["ids"]))

    def delete_version(self, state: DocState) -> None:
        key = state.key or doc_key(state.source, state.location)
        self.require().delete(where={"$and": [{"doc_key": key}, {"version": state.version}]})


def version_of(passage: Passage) -> str:
    a = passage.article
    identity = json.dumps(
        [a.raw_hash, a.doc_id, a.title, a.url, a.outlet, a.author, _iso(a.published)], ensure_ascii=False
    )
    return hashlib.sha1(identity.encode()).hexdigest()[:12]


def passage_id(p: Passage) -> str:
    return f"{doc_key(p.article.source, p.article.location)}:{version_of(p)}:{p.n}"


def passage_metadata(
    p: Passage, sentence_vectors: np.ndarray, written: int = 0, alternates=(), alternate_outlets=None
) -> dict:
    a = p.article
    return {
        "doc_id": a.doc_id,
        "doc_key": doc_key(a.source, a.location),
        "source": a.source,
        "location": a.location,
        "title": a.title,
        "url": a.url or "",
        "outlet": a.outlet or "",
        "author": a.author or "",
        "published": _iso(a.published),
        "raw_hash": a.raw_hash,
        "text_hash": a.text_hash,
        "version": version_of(p),
        "n": p.n,
        "n_total": p.total,
        "start": p.start,
        "end": p.end,
        "sents": ",".join(f"{s - p.start}-{e - p.start}" for s, e in p.sentences),
        "svec": base64.b64encode(sentence_vectors.astype(np.float16).tobytes()).decode("ascii"),
        "written": written,
        "alts": json.dumps(sorted(alternates)),
        "alt_outlets": json.dumps(alternate_outlets or {}, sort_keys=True),  # location of a copy -> its outlet
    }


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""
