"""The index: the only module that talks to Chroma.

It owns the collection's name and schema, the metadata keys of a passage, the check that the index was built with
the model in use, and how to open the store embedded (PersistentClient under the data directory) or against a
Chroma server (DEALBOT_CHROMA_URL). Vectors are always passed in: Chroma never embeds anything itself.

Each passage row has id `<doc key>:<version>:<n>`, where the doc key identifies (source, location) and the version
is the document's content hash. A new version is written whole before the old one is deleted, and readers see
only one version of each document: the newest complete one (`passages()`). So a sync killed at any moment leaves
every document wholly old or wholly new to readers, and the next sync removes what was left behind.

Passage metadata (schema 2) holds, beside the document's facts, two keys for filtering in a Chroma `where`:
`published_ymd` (int yyyymmdd of the publication date, 0 when undated: `{"published_ymd": {"$gte": 20250601}}`)
and `outlet_key` (the outlet, case-folded with spaces collapsed: `outlet_key(name)`; "" when none).

Sentence vectors are not in the metadata: `Index.sentence_vectors(ids) -> dict[id, np.ndarray]` reads them (float32,
sentences x 384, one row per sentence of the passage, in `Row.sentences` order) for just those passages, from the
sidecar (ingest.vectors): a SQLite file in the data directory, or a side collection on the Chroma server.
`passages()` attaches them to every row it returns unless asked not to (`with_vectors=False`). Passage texts are
kept in the sidecar too, not as the collection's documents (Chroma would index them for full-text search); `rows()`
and `payloads(ids)` read them from there, or from the collection for rows written before they moved.

Per-document ingest state (ingest.documents) is kept beside the collection and queried by source. An index written
with schema 1 (sentence vectors as base64 in metadata, no filter keys) is read as it is, and migrated in place the
first time it is opened for writing (a log line says so): vectors move to the sidecar, filter keys are added, the
document state is built from one scan. Nothing is embedded again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import replace as dataclasses_replace
from datetime import date
from functools import cached_property
from typing import Sequence
from urllib.parse import urlparse

import numpy as np

from . import documents as docstore
from . import vectors as sidecar
from .embed import DIMENSIONS
from .records import DocState, Passage
from .settings import Settings

SCHEMA = 2

__all__ = ["DocState", "Index", "IndexAccessError", "MalformedRow", "Row", "doc_key", "meta_problem", "outlet_key",
           "passage_id", "passage_metadata", "published_ymd", "version_of"]

log = logging.getLogger("dealbot.index")


class IndexAccessError(Exception):
    """The index cannot be opened or used as asked; the message says how to fix it."""


class MalformedRow(ValueError):
    """A stored passage whose metadata is not what ingest writes (written by another program, or damaged)."""


@dataclass(frozen=True)
class Row:
    """A passage as stored: its text and metadata."""

    id: str
    text: str
    meta: dict
    vectors: bytes | None = None  # the sentence vectors' blob from the sidecar, when they were read

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
        """One unit vector per sentence (stored as float16: ample for ranking, a quarter of the space), from the
        sidecar blob read with the row (or, in an index not yet migrated, the metadata's base64 'svec')."""
        try:
            blob = self.vectors if self.vectors is not None else base64.b64decode(self.meta["svec"], validate=True)
            vectors = sidecar.decode(blob)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            raise MalformedRow(f"no usable sentence vectors: {exc}") from None
        if len(vectors) != len(self._spans()):
            raise MalformedRow("the sentence vectors are not one per sentence")
        return vectors

    def problem(self, with_text: bool = True, with_vectors: bool = True) -> str | None:
        """Why this row cannot be used, or None: every field a reader relies on, checked (the sentence offsets
        against the text too, when the text was read; the sentence vectors, when they were)."""
        problem = meta_problem(self.meta)
        if problem is None:
            try:
                self._spans()
                if with_vectors:
                    self.sentence_vectors  # noqa: B018
                if with_text:
                    self.sentences  # noqa: B018
            except MalformedRow as exc:
                problem = str(exc)
        return problem


_TEXT_FIELDS = ("doc_id", "doc_key", "source", "location", "title", "url", "outlet", "author", "published",
                "raw_hash", "text_hash", "version", "sents")
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
    # The filter keys (schema 2) are absent only from an index not yet migrated.
    ymd = meta.get("published_ymd", 0)
    if not isinstance(ymd, int) or isinstance(ymd, bool) or ymd < 0:
        return "'published_ymd' is not a whole number"
    if not isinstance(meta.get("outlet_key", ""), str):
        return "'outlet_key' is not text"
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


WRITTEN_KEPT = 5_000  # passages (with their sentence vectors, about 25 MB)


class Index:
    """One Chroma collection of passages, opened for reading or writing (`create`: the ingest, which also
    migrates an index written with an older schema)."""

    def __init__(self, settings: Settings, model_name: str, dimensions: int, create: bool = False):
        self.settings = settings
        self.model_name = model_name
        self.client = _client(settings)
        self.collection = self._open_collection(create, dimensions)
        self._hidden: frozenset[str] = frozenset()
        # The passages this Index wrote, as readers will read them (up to WRITTEN_KEPT), so that what is derived
        # from them (ingest.lexical) need not read them back.
        self.written: list[Row] | None = []
        if create and self.collection is not None:
            self._upgrade()

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
                    "dealbot_store": uuid.uuid4().hex,
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

    # The side stores

    @property
    def schema(self) -> int:
        meta = (self.collection.metadata or {}) if self.collection is not None else {}
        return int(meta.get("dealbot_schema", 1))

    @property
    def store_id(self) -> str | None:
        """This collection's identity, which the side stores' entries are keyed by (None before migration)."""
        meta = (self.collection.metadata or {}) if self.collection is not None else {}
        return meta.get("dealbot_store") if self.schema >= 2 else None

    @cached_property
    def vectors(self):
        """The sentence vectors' sidecar (ingest.vectors)."""
        if self.settings.server_mode:
            return sidecar.ChromaVectors(self.client, self.settings.collection, create=self.collection is not None)
        return sidecar.SqliteVectors(self.settings.data_dir / "sentences.sqlite", self.settings.collection)

    @cached_property
    def documents(self):
        """The per-document ingest state (ingest.documents) of this collection."""
        store = self.store_id or "unmigrated"
        if self.settings.server_mode:
            return docstore.ChromaDocuments(self.client, self.settings.collection, store)
        return docstore.SqliteDocuments(self.settings.state_db, store)

    def close(self) -> None:
        for name in ("vectors", "documents"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()

    def _upgrade(self) -> None:
        """Bring an index written by older code up to this schema, in place, resumably; then make sure the
        document state matches the collection (rebuilt from one scan when missing)."""
        if self.schema < SCHEMA:
            log.warning("migrating the index at %s from schema %d to %d: sentence vectors move to the sidecar, "
                        "filter keys are added (nothing is embedded again)", self.where, self.schema, SCHEMA)
            moved = self._move_sentence_vectors()
            meta = {k: v for k, v in (self.collection.metadata or {}).items() if not k.startswith("hnsw:")}
            meta.update(dealbot_schema=SCHEMA, dealbot_store=meta.get("dealbot_store") or uuid.uuid4().hex)
            self.collection.modify(metadata=meta)
            self.collection = self.client.get_collection(self.settings.collection, embedding_function=None)
            self.__dict__.pop("documents", None)
            log.warning("migrated %d passages of the index at %s to schema %d", moved, self.where, SCHEMA)
        if not self.documents.ready():
            states = self._scanned_states()
            if states:
                log.warning("building the document state of the index at %s from its %d documents", self.where, len(states))
            self.documents.rebuild(states)

    def _move_sentence_vectors(self) -> int:
        """Schema 1 -> 2: each passage's 'svec' into the sidecar, then out of its metadata, with the filter keys
        added. Page by page, so a migration cut short resumes where it stopped."""
        moved, page, offset = 0, 1000, 0
        while True:
            res = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            ids, metas = res["ids"], [m or {} for m in res["metadatas"]]
            offset += len(ids)
            blobs, updates, updated = [], [], []
            for pid, m in zip(ids, metas):
                if "svec" not in m and "published_ymd" in m:
                    continue
                try:
                    if "svec" in m:
                        blobs.append((pid, bytes(base64.b64decode(m["svec"], validate=True))))
                except (TypeError, ValueError):
                    pass  # a malformed row stays malformed: readers skip it for want of vectors
                updates.append({"svec": None, **_filter_keys(m.get("published"), m.get("outlet"))})
                updated.append(pid)
            self.vectors.put_raw(blobs)
            if updated:
                self.collection.update(ids=updated, metadatas=updates)
            moved += len(blobs)
            if len(ids) < page:
                return moved

    # Reading

    def count(self) -> int:
        return self.collection.count() if self.collection is not None else 0

    def change_mark(self) -> tuple[int, int]:
        """What differs after any ingest run that changed what readers see (an article replaced by a new version
        of the same length included): the passage count and the run mark `mark_changed` sets, read afresh."""
        if self.collection is None:
            return 0, 0
        collection = self.client.get_collection(self.settings.collection, embedding_function=None)
        return collection.count(), int((collection.metadata or {}).get("dealbot_changes", 0))

    def mark_changed(self) -> None:
        """Count one more change in the collection's metadata (what `change_mark` reads)."""
        current = self.client.get_collection(self.settings.collection, embedding_function=None).metadata or {}
        meta = {k: v for k, v in current.items() if not k.startswith("hnsw:")}
        meta["dealbot_changes"] = int(meta.get("dealbot_changes", 0)) + 1
        self.collection.modify(metadata=meta)

    def nearest(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """Ids and cosine similarities of the `k` passages nearest to `vector` (matching `where`), nearest first."""
        collection = self.require()
        hidden = self._hidden
        res = collection.query(
            query_embeddings=[vector.tolist()], n_results=k + len(hidden), where=where, include=["distances"]
        )
        found = [(i, 1.0 - d) for i, d in zip(res["ids"][0], res["distances"][0]) if i not in hidden]
        return found[:k]

    def hide(self, ids: Sequence[str]) -> None:
        """Leave these passages out of `nearest` from now on (rows readers must not see), until `unhide()`."""
        self._hidden = self._hidden | frozenset(ids)

    def unhide(self) -> None:
        self._hidden = frozenset()

    def metadata_of(self, ids: Sequence[str]) -> dict[str, dict | None]:
        """The stored metadata of these passages, as Chroma returns it (None for a row with none)."""
        if not ids:
            return {}
        res = self.require().get(ids=list(ids), include=["metadatas"])
        return dict(zip(res["ids"], res["metadatas"]))

    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The sentence vectors of these passages (float32, one row per sentence), read from the sidecar for just
        these ids. An id with none stored, or with a malformed blob, is left out (and logged)."""
        blobs = self._sentence_blobs(ids)
        out, bad = {}, []
        for pid, blob in blobs.items():
            try:
                out[pid] = sidecar.decode(blob)
            except ValueError as exc:
                bad.append((pid, exc))
        if bad:
            log.warning("skipping malformed sentence vectors of %d passage(s) (first: %s: %s)", len(bad), *bad[0])
        return out

    def payloads(self, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """The text and sentence vectors of these passages, read for just these ids (in one read of the sidecar;
        Chroma is asked only for the texts of rows written before texts moved to the sidecar). An id without
        usable sentence vectors is left out (and logged)."""
        if self.schema < 2:
            vectors, texts = self.sentence_vectors(ids), {}
        else:
            vectors, texts, bad = {}, {}, []
            for pid, (blob, text) in self.vectors.get_both(ids).items():
                try:
                    vectors[pid] = sidecar.decode(blob)
                except ValueError as exc:
                    bad.append((pid, exc))
                    continue
                if text is not None:
                    texts[pid] = text
            if bad:
                log.warning("skipping malformed sentence vectors of %d passage(s) (first: %s: %s)", len(bad), *bad[0])
        missing = [pid for pid in vectors if pid not in texts]
        if missing:
            res = self.require().get(ids=missing, include=["documents"])
            texts.update((pid, t or "") for pid, t in zip(res["ids"], res["documents"] or []))
        return {pid: (texts.get(pid, ""), v) for pid, v in vectors.items()}

    def _sentence_blobs(self, ids: Sequence[str]) -> dict[str, bytes]:
        blobs = self.vectors.get(ids) if self.schema >= 2 or self.collection is None else {}
        missing = [i for i in ids if i not in blobs]
        if missing and self.collection is not None and self.schema < 2:  # not migrated yet: still in metadata
            blobs.update(self.vectors.get(missing))
            for lo in range(0, len(missing), 1000):
                res = self.collection.get(ids=missing[lo : lo + 1000], include=["metadatas"])
                for pid, m in zip(res["ids"], res["metadatas"]):
                    try:
                        blobs[pid] = base64.b64decode((m or {})["svec"], validate=True)
                    except (KeyError, TypeError, ValueError):
                        pass
        return blobs

    def passages(self, with_vectors: bool = True) -> list[Row]:
        """What readers see: the rows of each document's newest complete version. Other rows (a version left
        behind or half written by an interrupted sync) are hidden, from `nearest` too, until the next call.
        Each row comes with its sentence vectors, unless `with_vectors` is False."""
        everything = self.rows(with_vectors=with_vectors)
        rows = _usable(everything, lambda row: row.problem(with_vectors=with_vectors))
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

    def rows(self, where: dict | None = None, with_text: bool = True, with_vectors: bool = False) -> list[Row]:
        """Every stored passage (matching `where`), fetched in pages; with its sentence vectors if asked."""
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
                break
        if with_text:  # texts are in the sidecar, but for rows written before they moved there
            texts = self.vectors.texts([r.id for r in out if not r.text])
            out = [Row(r.id, texts.get(r.id, r.text), r.meta) if not r.text else r for r in out]
        if with_vectors:
            blobs = self._sentence_blobs([r.id for r in out])
            out = [Row(r.id, r.text, r.meta, blobs.get(r.id)) for r in out]
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
        return _usable(rows, lambda row: row.problem(with_vectors=False))

    def doc_states(self, source: str | None = None) -> list[DocState]:
        """One DocState per stored (document, version), for one source or all: from the document state, or, for
        an index not migrated yet, from a scan of the passages' metadata."""
        if self.collection is None:
            return []
        if self.store_id is not None and self.documents.ready():
            return self.documents.all() if source is None else self.documents.of_source(source)
        states = self._scanned_states()
        return states if source is None else [s for s in states if s.source == source]

    def _scanned_states(self) -> list[DocState]:
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        rows = self.rows(with_text=False)
        for row in _usable(rows, lambda row: row.problem(with_text=False, with_vectors=False)):
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

    # What the ingest looks up, in the document state: only what a run's own documents need.

    def documents_with_texts(self, text_hashes: Sequence[str]) -> list[DocState]:
        """The complete stored versions whose text is one of these (word for word duplicates)."""
        return self.documents.by_text(text_hashes) if text_hashes else []

    def documents_near(self, buckets: Sequence[int]) -> list[DocState]:
        """The complete stored versions sharing an LSH bucket with a signature (near-duplicate candidates)."""
        return self.documents.near(buckets)

    def is_alternate(self, location: str) -> bool:
        """Whether `location` is recorded as a copy of a stored document."""
        return self.documents.is_alternate(location)

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
        The document state is entered incomplete first and marked complete once every passage is written; the
        sentence vectors go to the sidecar before their passages.
        """
        collection = self.require()
        batch = self.max_batch_size
        written = time.time_ns()
        extra = extra or {}
        docs = _documents_of(passages, written, extra)
        self.documents.put([dataclasses_replace(st, complete=False) for st in docs])
        for lo in range(0, len(passages), batch):
            chunk = passages[lo : lo + batch]
            metadatas = []
            for p in chunk:
                more = extra.get(p.article.location, {})
                meta = passage_metadata(p, None, written, more.get("alternates", ()), more.get("alternate_outlets"))
                if p.n == 0 and more.get("minhash"):
                    meta["minhash"] = more["minhash"]
                metadatas.append(meta)
            ids = [passage_id(p) for p in chunk]
            self._keep(ids, chunk, metadatas, sentence_vectors[lo : lo + batch])
            self.vectors.put_passages(zip(ids, sentence_vectors[lo : lo + batch], [p.text for p in chunk]))
            collection.upsert(ids=ids, metadatas=metadatas, embeddings=vectors[lo : lo + batch])
        for st in docs:
            self.documents.mark(st.key, st.version, True)

    def _keep(self, ids, passages, metadatas, sentence_vectors) -> None:
        if self.written is None:
            return
        if len(self.written) + len(ids) > WRITTEN_KEPT:
            self.written = None  # a large run: whatever needs its passages reads them back
            return
        self.written += [Row(i, p.text, m, sidecar.encode(v)) for i, p, m, v in zip(ids, passages, metadatas, sentence_vectors)]

    def add_alternate(self, state: DocState, location: str, outlet: str = "") -> None:
        """Record `location` as another place the document `state` was published (by `outlet`, when known)."""
        alternates = sorted({*state.alternates, location})
        key = state.key or doc_key(state.source, state.location)
        where = {"$and": [{"doc_key": key}, {"version": state.version}]}
        found = self.require().get(where=where, include=["metadatas"])
        if found["ids"]:
            outlets = json.loads(found["metadatas"][0].get("alt_outlets") or "{}")
            if outlet:
                outlets[location] = outlet
            meta = {"alts": json.dumps(alternates), "alt_outlets": json.dumps(outlets, sort_keys=True)}
            self.collection.update(ids=found["ids"], metadatas=[meta] * len(found["ids"]))
        self.documents.set_alternates(dataclasses_replace(state, key=key), alternates)

    def delete_version(self, state: DocState) -> None:
        """Delete a stored version: marked incomplete first, so a run killed half way takes it for a leftover."""
        key = state.key or doc_key(state.source, state.location)
        self.documents.mark(key, state.version, False)
        self.require().delete(where={"$and": [{"doc_key": key}, {"version": state.version}]})
        self.vectors.delete_version(key, state.version)
        self.documents.remove(key, state.version)


def _documents_of(passages: Sequence[Passage], written: int, extra: dict[str, dict]) -> list[DocState]:
    """The document state of each document these passages belong to."""
    seen: dict[tuple[str, str], DocState] = {}
    for p in passages:
        a = p.article
        key, version = doc_key(a.source, a.location), version_of(p)
        if (key, version) not in seen:
            more = extra.get(a.location, {})
            seen[(key, version)] = DocState(
                source=a.source, location=a.location, doc_id=a.doc_id, version=version, raw_hash=a.raw_hash,
                text_hash=a.text_hash, passages=p.total, complete=True, written=written,
                alternates=tuple(sorted(more.get("alternates", ()))), minhash=more.get("minhash", "") or "", key=key,
            )
    return list(seen.values())


def outlet_key(outlet: str | None) -> str:
    """An outlet's name as the `outlet_key` filter matches it: case-folded, spaces collapsed."""
    return " ".join((outlet or "").casefold().split())


def published_ymd(published: date | str | None) -> int:
    """A publication date as the `published_ymd` filter compares it: int yyyymmdd, 0 when undated or unreadable."""
    if isinstance(published, date):
        return published.year * 10000 + published.month * 100 + published.day
    try:
        return published_ymd(date.fromisoformat(published)) if published else 0
    except (TypeError, ValueError):
        return 0


def _filter_keys(published, outlet) -> dict:
    return {"published_ymd": published_ymd(published), "outlet_key": outlet_key(outlet if isinstance(outlet, str) else "")}


def version_of(passage: Passage) -> str:
    a = passage.article
    identity = json.dumps(
        [a.raw_hash, a.doc_id, a.title, a.url, a.outlet, a.author, _iso(a.published)], ensure_ascii=False
    )
    return hashlib.sha1(identity.encode()).hexdigest()[:12]


def passage_id(p: Passage) -> str:
    return f"{doc_key(p.article.source, p.article.location)}:{version_of(p)}:{p.n}"


def passage_metadata(p: Passage, sentence_vectors=None, written: int = 0, alternates=(), alternate_outlets=None) -> dict:
    """A passage's metadata (schema 2). `sentence_vectors` is not stored here (see ingest.vectors); the parameter
    stays for callers written against schema 1."""
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
        "written": written,
        "alts": json.dumps(sorted(alternates)),
        "alt_outlets": json.dumps(alternate_outlets or {}, sort_keys=True),  # location of a copy -> its outlet
        **_filter_keys(a.published, a.outlet),
    }


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""
