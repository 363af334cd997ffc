"""Sentence vectors and passage texts, kept beside the index rather than in it, and read only for the passages
asked for.

Each passage's sentence vectors are one float16 blob (sentences x DIMENSIONS), keyed by the passage id. Chroma
indexes every metadata string, so the vectors stored there cost about four times their size and slowed every
metadata read; here they cost their size and are fetched by id.

- Embedded: a SQLite file in the data directory (`sentences.sqlite`, one table per collection). Large pages keep
  each blob (about 5 KB) inside one page instead of spilling to overflow pages.
- Server mode: a side collection `<collection>__sentences` on the same Chroma server, one row per passage (a
  one-dimensional placeholder embedding, the blob as base64 in metadata), read with `get(ids=...)`. Every bot
  replica on any host reaches it through the server it already uses; nothing is kept on the ingest's host.

Each passage's text is kept here too (zlib-compressed in SQLite; the side row's document in server mode), not in
the collection, where Chroma would index it for full-text search at about five times its size. An index written
before texts moved here keeps them in the collection, and readers take them from there.

Writes come before the passages' own write, deletes after theirs, so a passage readers can see always has its
vectors; what a killed run leaves behind is keyed by a version the next run removes.
"""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .embed import DIMENSIONS

log = logging.getLogger("dealbot.index")

PAGE_SIZE = 65536


def encode(vectors: np.ndarray) -> bytes:
    return np.asarray(vectors, dtype=np.float16).tobytes()


def decode(blob) -> np.ndarray:
    """float32 (sentences x DIMENSIONS) from a stored blob; ValueError when it is not that."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError("not bytes")
    raw = np.frombuffer(bytes(blob), dtype=np.float16)
    if raw.size == 0 or raw.size % DIMENSIONS:
        raise ValueError(f"{raw.size} values are not whole vectors of {DIMENSIONS}")
    vectors = raw.reshape(-1, DIMENSIONS).astype(np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError("not finite")
    return vectors


def pack_text(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"))


def unpack_text(pid: str, blob) -> str | None:
    """A passage's text from its stored blob; None (logged) when there is none or it is not one."""
    if blob is None:
        return None
    try:
        return zlib.decompress(bytes(blob)).decode("utf-8")
    except (TypeError, ValueError, zlib.error) as exc:
        log.warning("the text of passage %s in the sidecar is unreadable: %s", pid, exc)
        return None


def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """Ids starting with `prefix` are those >= lo and < hi (prefix ends with ':', whose successor is ';')."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SqliteVectors:
    """The embedded sidecar: one table per collection in `<data dir>/sentences.sqlite`."""

    def __init__(self, path: Path, collection: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.table = "sv_" + re.sub(r"[^0-9A-Za-z_]", "_", collection)
        self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self.conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes effect on a new file
        self.conn.execute("PRAGMA journal_mode = WAL")  # readers in other processes never wait for the writer
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id TEXT PRIMARY KEY, vectors BLOB NOT NULL, text BLOB)")
        if "text" not in {c[1] for c in self.conn.execute(f"PRAGMA table_info({self.table})")}:
            self.conn.execute(f"ALTER TABLE {self.table} ADD COLUMN text BLOB")  # a sidecar written before texts moved here
        self.conn.commit()

    def put_passages(self, items: Iterable[tuple[str, np.ndarray, str]]) -> None:
        """Each passage's sentence vectors and its text (compressed)."""
        with self.conn:
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {self.table} (id, vectors, text) VALUES (?, ?, ?)",
                [(pid, encode(v), pack_text(t)) for pid, v, t in items],
            )

    def get_both(self, ids: Sequence[str]) -> dict[str, tuple[bytes, str | None]]:
        """Each passage's vectors blob and text (None when not kept here)."""
        out: dict[str, tuple[bytes, str | None]] = {}
        ids = list(dict.fromkeys(ids))
        for lo in range(0, len(ids), 900):
            chunk = ids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            for pid, blob, text in self.conn.execute(f"SELECT id, vectors, text FROM {self.table} WHERE id IN ({marks})", chunk):
                out[pid] = (blob, unpack_text(pid, text))
        return out

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(ids))
        for lo in range(0, len(ids), 900):
            chunk = ids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            for pid, text in self.conn.execute(f"SELECT id, text FROM {self.table} WHERE id IN ({marks})", chunk):
                if (found := unpack_text(pid, text)) is not None:
                    out[pid] = found
        return out

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        with self.conn:
            self.conn.executemany(
                f"INSERT OR REPLACE INTO {self.table} (id, vectors) VALUES (?, ?)",
                [(pid, encode(v)) for pid, v in items],
            )

    def put_raw(self, items: Iterable[tuple[str, bytes]]) -> None:
        with self.conn:
            self.conn.executemany(f"INSERT OR REPLACE INTO {self.table} (id, vectors) VALUES (?, ?)", list(items))

    def get(self, ids: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        ids = list(dict.fromkeys(ids))
        for lo in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[lo : lo + 900]
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(f"SELECT id, vectors FROM {self.table} WHERE id IN ({marks})", chunk))
        return out

    def delete_version(self, key: str, version: str) -> None:
        lo, hi = _prefix_bounds(f"{key}:{version}:")
        with self.conn:
            self.conn.execute(f"DELETE FROM {self.table} WHERE id >= ? AND id < ?", (lo, hi))

    def count(self) -> int:
        return self.conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        self.conn.close()


class ChromaVectors:
    """Server mode: a side collection on the Chroma server, one row per passage, fetched by id."""

    def __init__(self, client, collection: str, create: bool):
        self.client = client
        self.name = f"{collection}__sentences"
        self._collection = None
        if create:
            self._collection = client.get_or_create_collection(
                self.name, embedding_function=None, metadata={"hnsw:space": "l2", "dealbot_role": "sentence vectors"}
            )

    @property
    def collection(self):
        if self._collection is None:
            try:
                self._collection = self.client.get_collection(self.name, embedding_function=None)
            except Exception:  # not there yet: nothing written
                return None
        return self._collection

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        self.put_raw((pid, encode(v)) for pid, v in items)

    def put_passages(self, items: Iterable[tuple[str, np.ndarray, str]]) -> None:
        """Each passage's sentence vectors (metadata) and its text (the side row's document)."""
        items = list(items)
        batch = self.client.get_max_batch_size()
        for lo in range(0, len(items), batch):
            chunk = items[lo : lo + batch]
            self.collection.upsert(
                ids=[pid for pid, _, _ in chunk],
                embeddings=[[0.0]] * len(chunk),
                metadatas=[_side_meta(pid, encode(v)) for pid, v, _ in chunk],
                documents=[t for _, _, t in chunk],
            )

    def get_both(self, ids: Sequence[str]) -> dict[str, tuple[bytes, str | None]]:
        return self._get(ids, with_text=True)

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        collection = self.collection
        if collection is None or not ids:
            return {}
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(ids))
        for lo in range(0, len(ids), 1000):
            res = collection.get(ids=ids[lo : lo + 1000], include=["documents"])
            out.update((pid, t) for pid, t in zip(res["ids"], res["documents"] or []) if t)
        return out

    def put_raw(self, items: Iterable[tuple[str, bytes]]) -> None:
        items = list(items)
        batch = self.client.get_max_batch_size()
        for lo in range(0, len(items), batch):
            chunk = items[lo : lo + batch]
            self.collection.upsert(
                ids=[pid for pid, _ in chunk],
                embeddings=[[0.0]] * len(chunk),
                metadatas=[_side_meta(pid, blob) for pid, blob in chunk],
            )

    def get(self, ids: Sequence[str]) -> dict[str, bytes]:
        return {pid: blob for pid, (blob, _) in self._get(ids, with_text=False).items()}

    def _get(self, ids: Sequence[str], with_text: bool) -> dict[str, tuple[bytes, str | None]]:
        collection = self.collection
        if collection is None or not ids:
            return {}
        out: dict[str, tuple[bytes, str | None]] = {}
        ids = list(dict.fromkeys(ids))
        include = ["metadatas", "documents"] if with_text else ["metadatas"]
        for lo in range(0, len(ids), 1000):
            res = collection.get(ids=ids[lo : lo + 1000], include=include)
            texts = res.get("documents") or [None] * len(res["ids"])
            for pid, meta, text in zip(res["ids"], res["metadatas"], texts):
                try:
                    out[pid] = (base64.b64decode((meta or {}).get("svec"), validate=True), text or None)
                except (TypeError, ValueError):
                    log.warning("sentence vectors of %s are not base64: skipped", pid)
        return out

    def delete_version(self, key: str, version: str) -> None:
        if self.collection is not None:
            self.collection.delete(where={"$and": [{"doc_key": key}, {"version": version}]})

    def count(self) -> int:
        return self.collection.count() if self.collection is not None else 0

    def close(self) -> None:
        pass


def _side_meta(pid: str, blob: bytes) -> dict:
    key, version, _ = (pid.split(":") + ["", ""])[:3]
    return {"doc_key": key, "version": version, "svec": base64.b64encode(blob).decode("ascii")}
