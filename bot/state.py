"""Where the state that bot replicas share is kept: a SQLite file in the data directory (one machine), or a
PostgreSQL database named by `state_url` (replicas on several hosts).

The stores (bot/slack/store.py, the digest's outbox in bot/digest.py) write one SQL for both: `?` placeholders,
`INSERT ... ON CONFLICT DO NOTHING`, `RETURNING`; REAL, INTEGER and auto-numbered keys are translated for
PostgreSQL here. Every exactly-once decision is a unique key that the database enforces in one statement, never a
read followed by a write, so two replicas racing for one Slack event get one "inserted" between them. Tables are
created on first use.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import zlib
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ingest.settings import Settings

_POOLS: dict[str, Any] = {}
_POOLS_LOCK = threading.Lock()


class StateError(RuntimeError):
    """The shared state cannot be reached; the message says which and how to fix it (never the password)."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A database URL as it may be shown: without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _postgres_sql(sql: str) -> str:
    sql = re.sub(r"\bINTEGER PRIMARY KEY(?: AUTOINCREMENT)?", "BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    """One state database: `path` (SQLite) unless `url` names a PostgreSQL database. Rows come back as tuples, or
    as dicts with `dicts`."""

    def __init__(self, path: Path, url: str = "", dicts: bool = False):
        self.path, self.url, self.dicts = path, url, dicts
        self.postgres = is_postgres(url)
        self._lock = threading.Lock()  # SQLite: one writer at a time in this process (the file serialises the rest)
        if not self.postgres:
            path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def where(self) -> str:
        return redact(self.url) if self.postgres else str(self.path)

    def exists(self) -> bool:
        """Whether anything was ever kept (a SQLite file is not created just to say it is empty)."""
        return self.postgres or self.path.exists()

    def create(self, schema: str) -> None:
        """Create the tables of `schema` (statements separated by ';') if they are missing."""
        without_comments = re.sub(r"--[^\n]*", "", schema)
        with self.transaction(exclusive=True) as tx:
            for statement in filter(str.strip, without_comments.split(";")):
                tx.execute(statement)

    def execute(self, sql: str, args: Sequence = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        with self.transaction() as tx:
            return tx.execute(sql, args).rowcount

    def query(self, sql: str, args: Sequence = ()) -> list:
        with self.transaction(write=False) as tx:
            return tx.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self, exclusive: bool = False, write: bool = True) -> Iterator["_Transaction"]:
        """A transaction, committed when the block ends. `exclusive`: one at a time across every process using this
        database (SQLite's BEGIN IMMEDIATE; an advisory lock in PostgreSQL), for read-then-decide work."""
        if self.postgres:
            with self._pool().connection() as conn:
                if exclusive:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(self.path.name.encode()),))
                yield _Transaction(conn, postgres=True)
            return
        with (self._lock if write else _nothing()), closing(self._sqlite()) as conn, conn:
            if exclusive:
                conn.execute("BEGIN IMMEDIATE")
            yield _Transaction(conn, postgres=False)

    def _sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        if self.dicts:
            conn.row_factory = lambda cursor, row: {d[0]: v for d, v in zip(cursor.description, row)}
        return conn

    def _pool(self):
        key = f"{self.url}#{self.dicts}"
        with _POOLS_LOCK:
            if key not in _POOLS:
                _POOLS[key] = _open_pool(self.url, self.dicts)
            return _POOLS[key]


def _open_pool(url: str, dicts: bool):
    import psycopg
    from psycopg.rows import dict_row, tuple_row
    from psycopg_pool import ConnectionPool

    try:  # once by hand first: a refused connection is told at once, in the server's words
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.Error as reason:
        raise StateError(f"state_url {redact(url)}: cannot connect ({redact(_first_line(reason))}): check the URL, "
                         "that the server runs and accepts this host, and PGPASSWORD") from None
    pool = ConnectionPool(url, min_size=1, max_size=16, open=False, name="dealbot-state",
                          kwargs={"row_factory": dict_row if dicts else tuple_row, "connect_timeout": 10})
    pool.open(wait=True, timeout=30)
    return pool


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def _nothing():
    yield


class _Transaction:
    """A connection inside a transaction, taking the stores' SQL (with `?` placeholders) for either database."""

    def __init__(self, conn, postgres: bool):
        self.conn, self.postgres = conn, postgres

    def execute(self, sql: str, args: Sequence = ()):
        return self.conn.execute(_postgres_sql(sql) if self.postgres else sql, tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        if self.postgres:
            with self.conn.cursor() as cur:
                cur.executemany(_postgres_sql(sql), [tuple(r) for r in rows])
        else:
            self.conn.executemany(sql, rows)


def slack_state(settings: Settings, dicts: bool = False) -> Database:
    """The database of the Slack bot's and the digest's records: state_url, else slack.sqlite in the data dir."""
    return Database(settings.slack_db, settings.state_url, dicts=dicts)


def close_pools() -> None:
    """Close every PostgreSQL connection this process opened (at exit, and between tests)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()
