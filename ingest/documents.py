"""The ingest's per-document state, kept where a run reads just its own sources' documents.

One entry per stored (document, version): its source, location, hashes, passage count, whether the version is
wholly in the index, its alternates, its MinHash signature and the signature's LSH band keys (so a new document's
near-duplicates are found with a lookup, not by rebuilding an LSH of every document on every run).

- Embedded: tables in state.sqlite (`documents`, `document_alternates`, `document_bands`, `document_stores`).
- Server mode: a side collection `<collection>__documents` on the Chroma server (one row per version, one per
  alternate location; placeholder one-dimensional embeddings), so any host's ingest job sees the same state.

The Chroma collection stays the source of truth: every fact here is also in the passages' metadata, so the table
is rebuilt from one scan whenever it is missing or belongs to another collection (`Index` does that on the first
write, with a log line). Entries are keyed by the collection's store id (`dealbot_store` in its metadata), so a
state.sqlite that outlives its index is never taken for it.

Invariant that keeps a killed run safe: an entry marked complete has all its passages in the index. A version is
entered as incomplete before its passages are written and marked complete after; it is marked incomplete again
before its passages are deleted. Readers do not use this table (they see what Chroma holds); the next ingest run
treats an incomplete entry as a leftover and removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from .dedupe import bands
from .records import DocState

log = logging.getLogger("dealbot.index")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    store TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    location TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    raw_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    passages INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    written INTEGER NOT NULL,
    alternates TEXT NOT NULL,
    minhash TEXT NOT NULL,
    UNIQUE (store, doc_key, version)
);
CREATE INDEX IF NOT EXISTS documents_by_source ON documents (store, source);
CREATE INDEX IF NOT EXISTS documents_by_text ON documents (store, text_hash);
CREATE TABLE IF NOT EXISTS document_alternates (
    location TEXT NOT NULL,
    doc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS document_alternates_by_location ON document_alternates (location);
CREATE INDEX IF NOT EXISTS document_alternates_by_doc ON document_alternates (doc);
CREATE TABLE IF NOT EXISTS document_bands (
    bucket INTEGER NOT NULL,
    doc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS document_bands_by_bucket ON document_bands (bucket);
CREATE INDEX IF NOT EXISTS document_bands_by_doc ON document_bands (doc);
CREATE TABLE IF NOT EXISTS document_stores (
    store TEXT PRIMARY KEY,
    built TEXT NOT NULL
);
"""

_COLUMNS = "doc_key, version, source, location, doc_id, raw_hash, text_hash, passages, complete, written, alternates, minhash"


class MalformedState(ValueError):
    pass


def state_from(values: dict) -> DocState:
    """A DocState from stored fields, checked: MalformedState when they are not what ingest writes."""
    for name in ("doc_key", "version", "source", "location", "doc_id", "raw_hash", "text_hash", "minhash"):
        if not isinstance(values.get(name), str):
            raise MalformedState(f"'{name}' is missing or not text")
    if not values["doc_key"] or not values["version"]:
        raise MalformedState("'doc_key' or 'version' is empty")
    for name in ("passages", "written"):
        if not isinstance(values.get(name), int) or isinstance(values.get(name), bool) or values[name] < 0:
            raise MalformedState(f"'{name}' is not a whole number")
    try:
        alternates = json.loads(values.get("alternates") or "[]")
    except (TypeError, ValueError):
        raise MalformedState("'alternates' is not a JSON list") from None
    if not isinstance(alternates, list) or not all(isinstance(a, str) for a in alternates):
        raise MalformedState("'alternates' is not a JSON list of locations")
    return DocState(
        source=values["source"], location=values["location"], doc_id=values["doc_id"], version=values["version"],
        raw_hash=values["raw_hash"], text_hash=values["text_hash"], passages=values["passages"],
        complete=bool(values.get("complete")), written=values["written"], alternates=tuple(alternates),
        minhash=values["minhash"], key=values["doc_key"],
    )


def _checked(rows: Iterable[dict]) -> list[DocState]:
    """The entries that are well formed; the others are logged once per read and skipped."""
    good, bad = [], []
    for values in rows:
        try:
            good.append(state_from(values))
        except MalformedState as exc:
            bad.append((values, exc))
    if bad:
        log.warning("skipping %d malformed document state(s) (first: %s: %s)", len(bad), bad[0][0].get("doc_key"), bad[0][1])
    return good


def _fields(st: DocState) -> dict:
    return {
        "doc_key": st.key, "version": st.version, "source": st.source, "location": st.location, "doc_id": st.doc_id,
        "raw_hash": st.raw_hash, "text_hash": st.text_hash, "passages": st.passages, "complete": st.complete,
        "written": st.written, "alternates": json.dumps(sorted(st.alternates)), "minhash": st.minhash,
    }


class SqliteDocuments:
    """Embedded: the tables in state.sqlite."""

    def __init__(self, path: Path, store: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def ready(self) -> bool:
        return self.conn.execute("SELECT 1 FROM document_stores WHERE store = ?", (self.store,)).fetchone() is not None

    def rebuild(self, states: Sequence[DocState]) -> None:
        with self.conn:
            mine = "SELECT id FROM documents WHERE store = ?"
            for table in ("document_alternates", "document_bands"):
                self.conn.execute(f"DELETE FROM {table} WHERE doc IN ({mine})", (self.store,))
            self.conn.execute("DELETE FROM documents WHERE store = ?", (self.store,))
            self._put(states)
            built = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.conn.execute("INSERT OR REPLACE INTO document_stores (store, built) VALUES (?, ?)", (self.store, built))

    def _select(self, where: str = "", args: Sequence = ()) -> list[DocState]:
        sql = f"SELECT {_COLUMNS} FROM documents WHERE store = ? {where}"
        return _checked(dict(row) for row in self.conn.execute(sql, (self.store, *args)))

    def all(self) -> list[DocState]:
        return self._select()

    def of_source(self, source: str) -> list[DocState]:
        return self._select("AND source = ?", (source,))

    def shown(self) -> dict[str, tuple[str, str]]:
        """The version of each document readers see (its newest complete one) with its alternates (a JSON list),
        by document key: four columns read, for a lexical index's refresh at any size."""
        best: dict[str, tuple[tuple[int, str], str]] = {}
        bad = 0
        for key, version, written, alternates in self.conn.execute(
            "SELECT doc_key, version, written, alternates FROM documents WHERE store = ? AND complete = 1", (self.store,)
        ):
            try:
                found = json.loads(alternates or "[]")
                ok = isinstance(key, str) and key and isinstance(version, str) and version and isinstance(written, int) \
                    and isinstance(found, list) and all(isinstance(a, str) for a in found)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad += 1
                continue
            rank = (written, version)
            if key not in best or rank > best[key][0]:
                best[key] = (rank, json.dumps(found))
        if bad:
            log.warning("skipping %d malformed document state(s)", bad)
        return {k: (rank[1], alternates) for k, (rank, alternates) in best.items()}

    def by_text(self, text_hashes: Sequence[str]) -> list[DocState]:
        out: list[DocState] = []
        hashes = sorted(set(text_hashes))
        for lo in range(0, len(hashes), 500):
            chunk = hashes[lo : lo + 500]
            out += self._select(f"AND complete = 1 AND text_hash IN ({','.join('?' * len(chunk))})", chunk)
        return out

    def near(self, buckets: Sequence[int]) -> list[DocState]:
        if not buckets:
            return []
        marks = ",".join("?" * len(buckets))
        return self._select(f"AND complete = 1 AND id IN (SELECT doc FROM document_bands WHERE bucket IN ({marks}))", buckets)

    def is_alternate(self, location: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM document_alternates a JOIN documents d ON d.id = a.doc "
            "WHERE a.location = ? AND d.store = ? AND d.complete = 1 LIMIT 1",
            (location, self.store),
        ).fetchone() is not None

    def put(self, states: Sequence[DocState]) -> None:
        with self.conn:
            self._put(states)

    def _put(self, states: Sequence[DocState]) -> None:
        for st in states:
            self._forget(st.key, st.version)
            values = _fields(st)
            doc = self.conn.execute(
                f"INSERT INTO documents (store, {_COLUMNS}) VALUES (?, {','.join('?' * 12)})",
                (self.store, *values.values()),
            ).lastrowid
            self._index(doc, st.alternates, bands(st.minhash))

    def _index(self, doc: int, alternates: Sequence[str], buckets: Sequence[int]) -> None:
        self.conn.executemany("INSERT INTO document_alternates (location, doc) VALUES (?, ?)", [(a, doc) for a in alternates])
        self.conn.executemany("INSERT INTO document_bands (bucket, doc) VALUES (?, ?)", [(b, doc) for b in buckets])

    def _id(self, key: str, version: str) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM documents WHERE store = ? AND doc_key = ? AND version = ?", (self.store, key, version)
        ).fetchone()
        return row[0] if row else None

    def _forget(self, key: str, version: str) -> None:
        doc = self._id(key, version)
        if doc is not None:
            for table in ("document_alternates", "document_bands"):
                self.conn.execute(f"DELETE FROM {table} WHERE doc = ?", (doc,))
            self.conn.execute("DELETE FROM documents WHERE id = ?", (doc,))

    def mark(self, key: str, version: str, complete: bool) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE documents SET complete = ? WHERE store = ? AND doc_key = ? AND version = ?",
                (int(complete), self.store, key, version),
            )

    def set_alternates(self, state: DocState, alternates: Sequence[str]) -> None:
        with self.conn:
            doc = self._id(state.key, state.version)
            if doc is None:
                return
            self.conn.execute("UPDATE documents SET alternates = ? WHERE id = ?", (json.dumps(sorted(alternates)), doc))
            self.conn.execute("DELETE FROM document_alternates WHERE doc = ?", (doc,))
            self._index(doc, sorted(alternates), ())

    def remove(self, key: str, version: str) -> None:
        with self.conn:
            self._forget(key, version)


class ChromaDocuments:
    """Server mode: a side collection `<collection>__documents` on the Chroma server."""

    def __init__(self, client, collection: str, store: str):
        self.client = client
        self.name = f"{collection}__documents"
        self.store = store
        self._collection = None

    @property
    def collection(self):
        if self._collection is None:
            try:
                self._collection = self.client.get_collection(self.name, embedding_function=None)
            except Exception:  # not created yet
                return None
        return self._collection

    def close(self) -> None:
        pass

    def ready(self) -> bool:
        c = self.collection
        return c is not None and (c.metadata or {}).get("dealbot_store") == self.store

    def rebuild(self, states: Sequence[DocState]) -> None:
        if self.collection is not None:
            self.client.delete_collection(self.name)
        # Marked as belonging to this store only once filled: a rebuild cut short is redone.
        self._collection = self.client.create_collection(
            self.name, embedding_function=None, metadata={"hnsw:space": "l2", "dealbot_store": "building"}
        )
        self._put(states)
        self._collection.modify(metadata={"dealbot_store": self.store})

    def _get(self, where: dict) -> list[DocState]:
        c = self.collection
        if c is None:
            return []
        out: list[dict] = []
        page, offset = 5000, 0
        while True:
            res = c.get(where=where, include=["metadatas"], limit=page, offset=offset)
            out += [m or {} for m in res["metadatas"]]
            offset += len(res["ids"])
            if len(res["ids"]) < page:
                return _checked(out)

    def all(self) -> list[DocState]:
        return self._get({"kind": "doc"})

    def of_source(self, source: str) -> list[DocState]:
        return self._get({"$and": [{"kind": "doc"}, {"source": source}]})

    def by_text(self, text_hashes: Sequence[str]) -> list[DocState]:
        hashes = sorted(set(text_hashes))
        return [
            st
            for lo in range(0, len(hashes), 500)
            for st in self._get({"$and": [{"kind": "doc"}, {"complete": True}, {"text_hash": {"$in": hashes[lo : lo + 500]}}]})
        ]

    def near(self, buckets: Sequence[int]) -> list[DocState]:
        if not buckets:
            return []
        same = [{f"band_{i}": b} for i, b in enumerate(buckets)]
        return self._get({"$and": [{"kind": "doc"}, {"complete": True}, {"$or": same} if len(same) > 1 else same[0]]})

    def is_alternate(self, location: str) -> bool:
        c = self.collection
        if c is None:
            return False
        res = c.get(where={"$and": [{"kind": "alt"}, {"location": location}]}, include=["metadatas"])
        for meta in res["metadatas"]:
            found = self._get({"$and": [{"kind": "doc"}, {"doc_key": meta.get("doc_key", "")},
                                        {"version": meta.get("version", "")}, {"complete": True}]})
            if found:
                return True
        return False

    def put(self, states: Sequence[DocState]) -> None:
        self._put(states)

    def _put(self, states: Sequence[DocState]) -> None:
        c = self.collection if self._collection is None else self._collection
        if c is None:
            raise RuntimeError("the documents collection does not exist")
        ids, metas = [], []
        for st in states:
            self._forget_alternates(st.key, st.version)
            meta = {"kind": "doc", **_fields(st)}
            meta.update({f"band_{i}": b for i, b in enumerate(bands(st.minhash))})
            ids.append(_doc_id(st.key, st.version))
            metas.append(meta)
            for alt in st.alternates:
                ids.append(_alt_id(st.key, st.version, alt))
                metas.append({"kind": "alt", "location": alt, "doc_key": st.key, "version": st.version})
        batch = self.client.get_max_batch_size()
        for lo in range(0, len(ids), batch):
            c.upsert(ids=ids[lo : lo + batch], embeddings=[[0.0]] * len(ids[lo : lo + batch]), metadatas=metas[lo : lo + batch])

    def _forget_alternates(self, key: str, version: str) -> None:
        c = self.collection
        if c is not None:
            c.delete(where={"$and": [{"kind": "alt"}, {"doc_key": key}, {"version": version}]})

    def mark(self, key: str, version: str, complete: bool) -> None:
        c = self.collection
        if c is not None and c.get(ids=[_doc_id(key, version)], include=[])["ids"]:
            c.update(ids=[_doc_id(key, version)], metadatas=[{"complete": complete}])

    def set_alternates(self, state: DocState, alternates: Sequence[str]) -> None:
        self._forget_alternates(state.key, state.version)
        c = self.collection
        c.update(ids=[_doc_id(state.key, state.version)], metadatas=[{"alternates": json.dumps(sorted(alternates))}])
        alts = sorted(alternates)
        if alts:
            c.upsert(
                ids=[_alt_id(state.key, state.version, a) for a in alts],
                embeddings=[[0.0]] * len(alts),
                metadatas=[{"kind": "alt", "location": a, "doc_key": state.key, "version": state.version} for a in alts],
            )

    def remove(self, key: str, version: str) -> None:
        c = self.collection
        if c is not None:
            c.delete(where={"$and": [{"doc_key": key}, {"version": version}]})


def _doc_id(key: str, version: str) -> str:
    return f"d:{key}:{version}"


def _alt_id(key: str, version: str, location: str) -> str:
    return f"a:{key}:{version}:{hashlib.sha1(location.encode()).hexdigest()[:16]}"
