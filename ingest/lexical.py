"""The lexical index on disk: BM25 postings, the corpus statistics and what a hit shows, for the passages readers
see, kept in a SQLite file and brought up to date in proportion to what changed.

`LexicalStore.sync(index)` compares the documents the index shows (one complete version per document, from the
document state) with those the file holds, removes what went and adds what came, reading from Chroma only the
added documents' passages. The ingest run calls it when it finishes; a bot process calls it when it opens and on
refresh (in server mode each replica keeps its own copy in its data directory, brought up to date the same way
from the server).

Scores are computed at query time from what is stored (each passage's term frequencies and length, each term's
postings), exactly as bm25s scores an index built over the same passages (method "lucene", k1 1.5, b 0.75,
float32), so the answers are those of an in-memory bm25s index. The corpus statistics are counted per document
and summed, so removing a document subtracts exactly what adding it added.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sqlite3
import threading
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .index import Index, Row, _usable
from .words import STOPWORDS, _plain, terms, words

log = logging.getLogger("dealbot.lexical")

SCHEMA = "5"
K1, B = 1.5, 0.75  # bm25s's defaults, which the in-memory index used
EMPTY = "_"  # the token of a passage with no content word, as the in-memory index had it

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passages (
    pos INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, doc_key TEXT NOT NULL, version TEXT NOT NULL,
    n INTEGER NOT NULL, doc_id TEXT NOT NULL, title TEXT NOT NULL, location TEXT NOT NULL, url TEXT NOT NULL,
    outlet TEXT NOT NULL, published TEXT NOT NULL, start INTEGER NOT NULL, sents TEXT NOT NULL, alts TEXT NOT NULL,
    fingerprint INTEGER NOT NULL, length INTEGER NOT NULL, terms BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS passages_doc ON passages (doc_key);
CREATE INDEX IF NOT EXISTS passages_published ON passages (published);
CREATE TABLE IF NOT EXISTS docs (
    doc_key TEXT PRIMARY KEY, version TEXT NOT NULL, alts TEXT NOT NULL, doc_id TEXT NOT NULL,
    first_pos INTEGER NOT NULL, text BLOB NOT NULL, location TEXT NOT NULL, url TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS docs_doc_id ON docs (doc_id);
CREATE INDEX IF NOT EXISTS docs_first ON docs (first_pos);
CREATE TABLE IF NOT EXISTS postings (term TEXT PRIMARY KEY, pos BLOB NOT NULL, tf BLOB NOT NULL, len BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contrib (doc_key TEXT PRIMARY KEY, sentences INTEGER NOT NULL, counts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS initials (key TEXT NOT NULL, doc INTEGER NOT NULL, PRIMARY KEY (key, doc)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forms (doc_key TEXT NOT NULL, form TEXT NOT NULL, PRIMARY KEY (doc_key, form)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (kind TEXT NOT NULL, word TEXT NOT NULL, n INTEGER NOT NULL, first INTEGER NOT NULL,
    PRIMARY KEY (kind, word)) WITHOUT ROWID;
"""


def fingerprint(text: str) -> int:
    """Passages that read the same (syndicated copies, case and spacing aside) share a fingerprint: a 64-bit hash
    of their words."""
    digest = hashlib.blake2b(" ".join(words(text.lower())).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def unpack(text: bytes) -> str:
    """A document's text as the docs table keeps it (compressed)."""
    return zlib.decompress(text).decode()


def bm25_terms(title: str, text: str) -> list[str]:
    return terms(f"{title} {text}") or [EMPTY]


def idf(df: int, n: int) -> np.float32:
    """bm25s's "lucene" idf, as it stores it (float32)."""
    return np.float32(math.log(1 + (n - df + 0.5) / (df + 0.5)))


def scores(tf: np.ndarray, length: np.ndarray, term_idf: np.float32, avg_len: np.float64) -> np.ndarray:
    """Each posting's BM25 score, computed with bm25s's types and operations, so equal to its stored scores."""
    tfc = tf / (K1 * ((1 - B) + B * length / avg_len) + tf)
    return (np.array([term_idf], dtype=np.float32) * tfc).astype(np.float32)


def _document_stats(rows: list[Row], first_pos: int) -> tuple[dict[tuple[str, str], list[int]], int, str]:
    """One document's contribution to the corpus statistics (counted as the in-memory statistics counted them:
    each sentence once, though passages overlap), its sentence count and its text (outlet, title, passages)."""
    counts: dict[tuple[str, str], list[int]] = {}  # (kind, word) -> [n, first seen]
    order = first_pos * 1_000_000

    def add(kind: str, word: str, n: int = 1) -> None:
        nonlocal order
        entry = counts.get((kind, word))
        if entry is None:
            counts[(kind, word)] = [n, order]
            order += 1
        else:
            entry[0] += n

    seen: set[int] = set()
    parts: dict[int, str] = {}
    for row in rows:
        m = row.meta
        parts.setdefault(-2, m["outlet"] or "")
        parts.setdefault(-1, m["title"])
        parts[m["start"]] = row.text
        for s, e in row.sentences:
            if m["start"] + s in seen:
                continue
            seen.add(m["start"] + s)
            text = row.text[s:e]
            for t in set(terms(text)):
                add("df", t)
            ws = words(text)
            for w in ws:
                add("voc", w.lower())
                add("voc", _plain(w))
            for i, w in enumerate(ws):
                if w[0].islower():
                    add("low", w)
                elif i and w[0].isupper() and not (ws[i - 1][0].isupper() or ws[i + 1:i + 2] and ws[i + 1][0].isupper()):
                    add("cap", w)
    text = "\n".join(t for _, t in sorted(parts.items()))
    return counts, len(seen), text


# A letter as `[a-z]` matches one case-insensitively (Python's re also lets it match these four), and how each
# stands as an initial.
_LETTERS = re.compile("[A-Za-z\u0130\u0131\u017f\u212a]+")
_ODD_INITIAL = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
_GAP = re.compile(r"[\s-]+")
ACRONYM_LETTERS = (2, 5)  # the acronyms a question's words are expanded from (bot.question.expand_acronyms)


def initials(text: str) -> set[str]:
    """The initials (lower case) of every run of 2-5 words that an acronym's expansion could be
    (bot.retrieve.CorpusStats.expansion): words of two or more letters separated by spaces or hyphens only, none of
    them a stop word standing alone. A superset: the expansion is looked for, word for word, in the documents
    having the acronym's initials only."""
    runs = [(m.start(), m.end(), m[0]) for m in _LETTERS.finditer(text)]
    found: set[str] = set()
    chain: list[tuple[str, bool]] = []  # (initial, usable) for the current run of words joined by gaps

    def flush():
        lo_n, hi_n = ACRONYM_LETTERS
        for i in range(len(chain)):
            key = ""
            for j in range(i, min(len(chain), i + hi_n)):
                if not chain[j][1]:
                    break
                key += chain[j][0]
                if j - i + 1 >= lo_n:
                    found.add(key)
        chain.clear()

    for n, (start, end, word) in enumerate(runs):
        before = text[runs[n - 1][1]:start] if n else None
        after = text[end:runs[n + 1][0]] if n + 1 < len(runs) else None
        joined_before = before is not None and _GAP.fullmatch(before) is not None
        if not joined_before:
            flush()
        alone = (not joined_before or not before.endswith("-")) and (
            after is None or _GAP.fullmatch(after) is None or not after.startswith("-"))
        usable = len(word) >= 2 and not (alone and word.lower() in STOPWORDS)
        chain.append((_ODD_INITIAL.get(word[0], word[0].lower()), usable))
    flush()
    return found


class LexicalStore:
    """The lexical index of one collection, in one SQLite file. Thread-safe for one writer and any readers."""

    def __init__(self, path: Path, store_id: str | None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.store_id = store_id or "unmigrated"
        self._write_lock = threading.Lock()
        self.conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")  # a snapshot being read never waits for a sync
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        found = dict(self.conn.execute("SELECT key, value FROM meta"))
        if found and (found.get("schema") != SCHEMA or found.get("store") != self.store_id):
            self._wipe()  # another collection under the same name, or an older layout: start over
        self.conn.executescript(_TABLES)
        if not found or found.get("schema") != SCHEMA or found.get("store") != self.store_id:
            with self._transaction():
                self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                      [("schema", SCHEMA), ("store", self.store_id), ("sentences", "0")])

    def _wipe(self) -> None:
        with self._transaction():
            self.conn.execute("DELETE FROM meta")
            for table in ("passages", "docs", "postings", "contrib", "stats", "forms", "initials"):
                self.conn.execute(f"DROP TABLE IF EXISTS {table}")

    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, exc, tb):
                conn.execute("ROLLBACK" if kind else "COMMIT")

        return _Tx()

    def close(self) -> None:
        self.conn.close()

    # Bringing it up to date

    def sync(self, index: Index, alias_forms: Iterable[str] = ()) -> tuple[int, int]:
        """Make the file hold exactly the passages `index` shows: (documents added, documents removed).

        `alias_forms` (the story's names and their aliases, bot.text.Lexicon.alias_forms) are looked for in each
        document as it is added, so that whether any article mentions a name is a lookup; when they differ from
        those recorded, every document is looked through again, once."""
        forms = sorted(set(alias_forms))
        with self._write_lock:
            recorded = self.conn.execute("SELECT value FROM meta WHERE key = 'forms'").fetchone()
            if recorded is None or json.loads(recorded[0]) != forms:
                with self._transaction():
                    self.conn.execute("DELETE FROM forms")
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('forms', ?)", (json.dumps(forms),))
                    for key, text in self.conn.execute("SELECT doc_key, text FROM docs").fetchall():
                        self._record_forms(key, unpack(text), forms)
            self._forms = forms
            shown = shown_versions(index)
            if self._changes(shown) == ([], []):
                return 0, 0
            # Another process (the ingest beside a bot) may be syncing the same file: what changed is decided
            # inside the write transaction, so two syncs never both add a document.
            with self._transaction():
                gone, came = self._changes(shown)
                if not self.conn.execute("SELECT 1 FROM docs LIMIT 1").fetchone():
                    # A first build: every passage, in the order the index keeps them.
                    rows = _usable(index.passages(with_vectors=False), lambda row: row.problem(with_vectors=False))
                else:
                    rows = _rows_of(index, came, {k: shown[k] for k in came}) if came else []
                removed: set[int] = set()
                touched: set[str] = set()
                for key in gone:
                    positions, terms = self._remove(key)
                    removed |= positions
                    touched |= terms
                postings = self._add(rows, {k: a for k, (_, a) in shown.items()})
                for term in touched:
                    postings.setdefault(term, [])
                self._merge_postings(postings, frozenset(removed))
            return len(came), len(gone)

    def _changes(self, shown: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
        """The documents held that the index no longer shows as held, and those it shows that are not held (in the
        order the index lists them)."""
        held = {k: (v, a) for k, v, a in self.conn.execute("SELECT doc_key, version, alts FROM docs")}
        return [k for k, va in held.items() if shown.get(k) != va], [k for k, va in shown.items() if held.get(k) != va]

    def _add(self, rows: list[Row], alternates: dict[str, str]) -> dict[str, list[tuple[int, int, int]]]:
        """Add these passages (whole documents); their postings (term -> (position, tf, length)) are returned for
        `_merge_postings`."""
        by_doc: dict[str, list[Row]] = {}
        for row in rows:
            by_doc.setdefault(row.meta["doc_key"], []).append(row)
        postings: dict[str, list[tuple[int, int, int]]] = {}
        totals: dict[tuple[str, str], list[int]] = {}
        sentences = 0
        for key, doc_rows in by_doc.items():
            first = None
            for row in doc_rows:
                m = row.meta
                tokens = bm25_terms(m["title"], row.text)
                cur = self.conn.execute(
                    "INSERT INTO passages (id, doc_key, version, n, doc_id, title, location, url, outlet, published, "
                    "start, sents, alts, fingerprint, length, terms) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.id, key, m["version"], int(m["n"]), m["doc_id"], m["title"], m["location"], m["url"] or "",
                     m["outlet"] or "", m["published"] or "", int(m["start"]), json.dumps(row.sentences),
                     m.get("alts") or "[]", fingerprint(row.text), len(tokens),
                     zlib.compress(" ".join(sorted(set(tokens))).encode())),
                )
                pos = cur.lastrowid
                first = pos if first is None else first
                for term, tf in Counter(tokens).items():
                    postings.setdefault(term, []).append((pos, tf, len(tokens)))
            counts, n_sentences, text = _document_stats(doc_rows, first)
            sentences += n_sentences
            m = doc_rows[0].meta
            self.conn.execute("INSERT OR REPLACE INTO docs VALUES (?,?,?,?,?,?,?,?)",
                              (key, m["version"], alternates.get(key, ""), m["doc_id"], first, zlib.compress(text.encode()), m["location"],
                               m["url"] or ""))
            self.conn.execute("INSERT OR REPLACE INTO contrib VALUES (?, ?, ?)", (key, n_sentences, zlib.compress(
                json.dumps([[kind, w, n] for (kind, w), (n, _) in counts.items()]).encode())))
            self._record_forms(key, text, getattr(self, "_forms", []))
            # A document is known in `initials` by its first passage's position (smaller than its key).
            self.conn.executemany("INSERT OR IGNORE INTO initials VALUES (?, ?)", [(k, first) for k in initials(text)])
            for word, (n, f) in counts.items():  # summed over the documents, written once below
                entry = totals.get(word)
                if entry is None:
                    totals[word] = [n, f]
                else:
                    entry[0] += n
                    entry[1] = min(entry[1], f)
        self.conn.executemany(
            "INSERT INTO stats VALUES (?,?,?,?) ON CONFLICT (kind, word) DO UPDATE SET n = n + excluded.n, "
            "first = min(first, excluded.first)",
            [(kind, w, n, f) for (kind, w), (n, f) in totals.items()],
        )
        self._bump_sentences(sentences)
        return postings

    def _record_forms(self, key: str, text: str, forms: Sequence[str]) -> None:
        """Which of `forms` the document's text has, matched as bot.text.Lexicon.name_pattern matches them."""
        found = [f for f in forms if re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", text, re.I)]
        self.conn.executemany("INSERT OR IGNORE INTO forms VALUES (?, ?)", [(key, f) for f in found])

    def _remove(self, key: str) -> tuple[set[int], set[str]]:
        """Remove a document: the positions of its passages and their terms are returned for `_merge_postings`."""
        removed = self.conn.execute("SELECT pos, terms FROM passages WHERE doc_key = ?", (key,)).fetchall()
        found = self.conn.execute("SELECT sentences, counts FROM contrib WHERE doc_key = ?", (key,)).fetchone()
        if found:
            self._bump_sentences(-found[0])
            rows = json.loads(zlib.decompress(found[1]))
            # A word's first sighting stays where it was: it only breaks ties between spellings of one name.
            self.conn.executemany("UPDATE stats SET n = n - ? WHERE kind = ? AND word = ?", [(n, k, w) for k, w, n in rows])
            self.conn.executemany("DELETE FROM stats WHERE kind = ? AND word = ? AND n <= 0", [(k, w) for k, w, _ in rows])
        self.conn.execute("DELETE FROM contrib WHERE doc_key = ?", (key,))
        self.conn.execute("DELETE FROM forms WHERE doc_key = ?", (key,))
        doc = self.conn.execute("SELECT first_pos, text FROM docs WHERE doc_key = ?", (key,)).fetchone()
        if doc:
            self.conn.executemany("DELETE FROM initials WHERE key = ? AND doc = ?",
                                  [(k, doc[0]) for k in initials(unpack(doc[1]))])
        self.conn.execute("DELETE FROM passages WHERE doc_key = ?", (key,))
        self.conn.execute("DELETE FROM docs WHERE doc_key = ?", (key,))
        return {pos for pos, _ in removed}, {t for _, ts in removed for t in zlib.decompress(ts).decode().split(" ")}

    def _bump_sentences(self, by: int) -> None:
        self.conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) WHERE key = 'sentences'", (by,))

    def _merge_postings(self, added: dict[str, list[tuple[int, int, int]]], removed: frozenset[int]) -> None:
        """Each term's postings (positions ascending, with tf and passage length) with `added` merged in and the
        positions `removed` taken out; one row per term, rewritten."""
        gone = np.fromiter(removed, dtype=np.int64) if removed else None
        for term, new in added.items():
            old = self.conn.execute("SELECT pos, tf, len FROM postings WHERE term = ?", (term,)).fetchone()
            pos = np.frombuffer(old[0], dtype=np.int64) if old else np.empty(0, np.int64)
            tf = np.frombuffer(old[1], dtype=np.int32) if old else np.empty(0, np.int32)
            ln = np.frombuffer(old[2], dtype=np.int32) if old else np.empty(0, np.int32)
            if gone is not None:
                keep = ~np.isin(pos, gone)
                pos, tf, ln = pos[keep], tf[keep], ln[keep]
            if new:
                pos = np.concatenate([pos, np.array([p for p, _, _ in new], np.int64)])
                tf = np.concatenate([tf, np.array([t for _, t, _ in new], np.int32)])
                ln = np.concatenate([ln, np.array([n for _, _, n in new], np.int32)])
            if len(pos):
                self.conn.execute("INSERT OR REPLACE INTO postings VALUES (?,?,?,?)",
                                  (term, pos.tobytes(), tf.tobytes(), ln.tobytes()))
            else:
                self.conn.execute("DELETE FROM postings WHERE term = ?", (term,))

    # Reading

    def snapshot(self) -> "Snapshot":
        """A consistent view of the file as it is now, unaffected by later syncs."""
        return Snapshot(self.path)


class Snapshot:
    """One read transaction over the lexical file: every query and statistic comes from the same state."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self.conn.execute("BEGIN")
        self._lock = threading.Lock()
        self.positions = np.fromiter((p for (p,) in self.conn.execute("SELECT pos FROM passages ORDER BY pos")), np.int64)
        self.size = len(self.positions)
        total = self.conn.execute("SELECT coalesce(sum(length), 0) FROM passages").fetchone()[0]
        self.avg_len = np.float64(total) / self.size if self.size else np.float64(1.0)
        self.sentences = int(self.conn.execute("SELECT value FROM meta WHERE key = 'sentences'").fetchone()[0])

    def forms(self) -> tuple[frozenset[str], frozenset[str]]:
        """The alias forms looked for, and those some document has."""
        recorded = self.query("SELECT value FROM meta WHERE key = 'forms'")
        present = frozenset(f for (f,) in self.query("SELECT DISTINCT form FROM forms"))
        return frozenset(json.loads(recorded[0][0]) if recorded else ()), present

    def documents_with_initials(self, key: str) -> list[str]:
        """The texts of the documents having a run of words with these initials (see `initials`), in order."""
        return [unpack(t) for (t,) in self.query(
            "SELECT d.text FROM initials i JOIN docs d ON d.first_pos = i.doc WHERE i.key = ? ORDER BY d.first_pos",
            (key,))]

    def stat(self, kind: str) -> list[tuple[str, int, int]]:
        with self._lock:
            return self.conn.execute("SELECT word, n, first FROM stats WHERE kind = ?", (kind,)).fetchall()

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def scores(self, query_terms: Iterable[str]) -> np.ndarray:
        """BM25 scores of every passage (in position order) for these terms, a term repeated counting again."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in query_terms:
            with self._lock:
                found = self.conn.execute("SELECT pos, tf, len FROM postings WHERE term = ?", (term,)).fetchone()
            if not found:
                continue
            pos = np.frombuffer(found[0], dtype=np.int64)
            tf = np.frombuffer(found[1], dtype=np.int32).astype(np.float32)
            ln = np.frombuffer(found[2], dtype=np.int32)
            s = scores(tf, ln, idf(len(pos), self.size), self.avg_len)
            out[np.searchsorted(self.positions, pos)] += s  # a term lists each passage once: no index repeats
        return out

    def ids_at(self, places: Sequence[int]) -> list[str]:
        """The ids of the passages at these places (indices into position order)."""
        pos = [int(self.positions[i]) for i in places]
        found = dict(self.query(f"SELECT pos, id FROM passages WHERE pos IN ({','.join('?' * len(pos))})", pos)) if pos else {}
        return [found[p] for p in pos]

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __del__(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()


def shown_versions(index: Index) -> dict[str, tuple[str, str]]:
    """The version each document shows readers (its newest complete one), with its alternates, by document key."""
    if index.store_id is not None and hasattr(index.documents, "shown") and index.documents.ready():
        return index.documents.shown()
    best: dict[str, tuple[tuple[int, str], str]] = {}
    for st in index.doc_states():
        if not st.complete or not st.key:
            continue
        rank = (st.written or 0, st.version)
        if st.key not in best or rank > best[st.key][0]:
            best[st.key] = (rank, json.dumps(list(st.alternates)))
    return {k: (rank[1], alts) for k, (rank, alts) in best.items()}


def _rows_of(index: Index, keys: list[str], shown: dict[str, tuple[str, str]]) -> list[Row]:
    """The readable passages of these documents' shown versions (and alternates), a document left out whole when
    any of its passages is missing or malformed (as readers of the index leave it out). What this process just
    wrote is taken as written, not read back."""
    versions = {k: v for k, (v, _) in shown.items()}

    def as_shown(row: Row) -> bool:
        version, alts = shown.get(row.meta.get("doc_key"), (None, "[]"))
        return row.meta.get("version") == version and json.loads(row.meta.get("alts") or "[]") == json.loads(alts)

    rows = [r for r in index.written or () if as_shown(r)]
    have = {r.meta["doc_key"] for r in rows}
    keys = [k for k in keys if k not in have]
    for lo in range(0, len(keys), 200):
        rows += index.rows({"doc_key": {"$in": keys[lo : lo + 200]}}, with_vectors=False)
    rows = [r for r in rows if isinstance(r.meta, dict) and r.meta.get("version") == versions.get(r.meta.get("doc_key"))]
    rows = list({r.id: r for r in rows}.values())  # a passage written twice in one run counts once
    rows = _usable(rows, lambda row: row.problem(with_vectors=False))
    counts = Counter(r.meta["doc_key"] for r in rows)
    return [r for r in rows if counts[r.meta["doc_key"]] == r.meta["n_total"]]


def path_for(data_dir: Path, collection: str) -> Path:
    return data_dir / f"lexical_{re.sub(r'[^0-9A-Za-z_]', '_', collection)}.sqlite"
