"""Connections: the pool, transactions and autocommitted reads every query module builds on."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extras
import psycopg2.pool
from psycopg2.extensions import cursor as Cursor

from domain.errors import DatabaseUnavailable, EmbedderUnavailable

Row = dict[str, Any]
#: A vector as the store takes it: halfvec's binary form (`pgbinary.halfvecs`, what the local and
#: hashing embedders give and the embedding cache hands back), or pgvector's text form (Ollama's
#: JSON numbers as they came: PostgreSQL parses them ~10x faster than numpy does).
StoredVector = bytes | str
#: Failures that may pass if the same work is tried again later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable, EmbedderUnavailable, psycopg2.OperationalError, psycopg2.InterfaceError,
    psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected,
)

#: How long `Connections._checkout` waits for a connection when all of the process's are in use.
CHECKOUT_WAIT_S = 30.0


class Connections:
    """A pool of connections and the ways to run statements on it. Safe to share between threads of one process."""

    def __init__(self, url: str, max_connections: int = 16) -> None:
        self.url = url
        self._max = max_connections
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._free = threading.BoundedSemaphore(max_connections)
        self._pid = -1
        self._lock = threading.Lock()

    def _checkout(self) -> tuple[psycopg2.pool.ThreadedConnectionPool, Any]:
        """A pooled connection (and its pool, to give to `_checkin`), waiting up to CHECKOUT_WAIT_S
        for one when all `max_connections` are in use: psycopg2's pool raises at once instead, and 40
        concurrent searches of one MCP session failed 24 times with "connection pool exhausted".

        Raises:
            DatabaseUnavailable: no connection could be made, or none came free in time.
        """
        pool = self._get_pool()
        free = self._free
        if not free.acquire(timeout=CHECKOUT_WAIT_S):
            raise DatabaseUnavailable(f"all {self._max} database connections of this process stayed in use for "
                                      f"{CHECKOUT_WAIT_S:g} s; try again later")
        try:
            return pool, pool.getconn()
        except (psycopg2.OperationalError, psycopg2.pool.PoolError) as exc:
            free.release()
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}".strip()) from exc

    def _checkin(self, pool: psycopg2.pool.ThreadedConnectionPool, conn: Any, broken: bool) -> None:
        """Return a connection of `_checkout` (closed when `broken`) and free its place."""
        try:
            pool.putconn(conn, close=broken or conn.closed != 0)
        finally:
            self._free.release()

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # A forked child must not reuse its parent's sockets.
                # UTF8: binary COPY sends text fields and lexemes encoded so (`pgbinary`).
                pool = psycopg2.pool.ThreadedConnectionPool(0, self._max, self.url, client_encoding="UTF8")
                # Connections open on demand (minconn 0 at creation) but stay open once returned: with
                # minconn left at 0, psycopg2 closes every returned connection, and each transaction
                # paid for a new one (~6 ms; 172 of them in 80 files of a batch).
                pool.minconn = self._max
                self._pool = pool
                if self._pid != os.getpid():  # a forked child starts with every place free
                    self._free = threading.BoundedSemaphore(self._max)
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.closeall()
            self._pool = None

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Cursor]:
        """A cursor in one transaction: committed on success, rolled back on error.

        `durable=False` commits without waiting for the WAL flush (synchronous_commit off) — for
        bookkeeping whose loss in a database crash is harmless (lease renewals, batch progress, cache
        rows): the database stays consistent, only the last fraction of a second may be forgotten and
        redone. Each flush costs a few ms; per-file bookkeeping with flushes made indexing ~3x slower.

        Raises:
            DatabaseUnavailable: no connection could be made.
        """
        with self._cursor(autocommit=False, durable=durable) as cur:
            yield cur

    @contextmanager
    def reading(self, rows_as_dicts: bool = True) -> Iterator[Cursor]:
        """A cursor whose statements each run and commit on their own (autocommit), for reads that
        need no snapshot in common: no BEGIN and COMMIT round trips. A search makes four to five
        such reads; in a transaction each cost two round trips more, and waiting for COMMIT was 18%
        of the MCP server's samples under 10 HTTP clients (py-spy). Over five alternating runs of
        those clients (500 searches at 321k chunks each) reads like this took the server's CPU per
        search from 3.88 to 3.62 ms, PostgreSQL's from 5.07 to 4.83, the mean latency 66.2 -> 62.7 ms.

        `rows_as_dicts=False` gives tuples (see `_dicts`).

        Raises:
            DatabaseUnavailable: no connection could be made.
        """
        with self._cursor(autocommit=True, rows_as_dicts=rows_as_dicts) as cur:
            yield cur

    @contextmanager
    def _cursor(self, autocommit: bool, durable: bool = True, rows_as_dicts: bool = True) -> Iterator[Cursor]:
        pool, conn = self._checkout()
        broken = False
        try:
            conn.autocommit = autocommit
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor if rows_as_dicts else None) as cur:
                if not durable:
                    cur.execute("SET LOCAL synchronous_commit = off")
                yield cur
            if not autocommit:
                conn.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True  # the server closed the connection; never hand it out again
            self._drop_pool(pool)
            raise
        except BaseException:
            if not autocommit:
                conn.rollback()
            raise
        finally:
            self._checkin(pool, conn, broken)

    def _drop_pool(self, broken: psycopg2.pool.ThreadedConnectionPool) -> None:
        """Forget a pool after one of its connections broke: a server restart or pg_terminate_backend
        kills its idle connections too, and handing each of them out once would spend one retry of
        some batch per dead connection. Connections in use go back to the old pool and die with it."""
        with self._lock:
            if self._pool is broken:
                self._pool = None

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), durable: bool = True) -> Row | None:
        with self.transaction(durable) as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return dict(row) if row else None

    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), reading: bool = False) -> list[Row]:
        """Every row as a dict, in a transaction or (`reading`) autocommitted. Rows are made from
        plain tuples here: RealDictCursor builds each row column by column in Python, and its rows
        were ~15% of the MCP server's CPU samples under search load; without them the server's CPU
        per search went 3.55 -> 2.95 ms (three alternating runs of 10 HTTP clients)."""
        with self._cursor(autocommit=reading, rows_as_dicts=False) as cur:
            cur.execute(sql, params)
            return _dicts(cur)

    # --- health -----------------------------------------------------------------------------

    def migration_revision(self) -> str | None:
        row = self._one("SELECT to_regclass('alembic_version') IS NOT NULL AS present")
        if not row or not row["present"]:
            return None
        version = self._one("SELECT version_num FROM alembic_version")
        return str(version["version_num"]) if version else None

    def pgvector_version(self) -> tuple[str | None, str | None]:
        """(installed version, version the server could install) of the `vector` extension."""
        row = self._one(
            """SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
                      (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available""")
        return (row or {}).get("installed"), (row or {}).get("available")


def _dicts(cur: Cursor) -> list[Row]:
    """The rows of a plain (tuple) cursor's last result as dicts keyed by column name."""
    names = [column.name for column in cur.description or ()]
    return [dict(zip(names, row)) for row in cur.fetchall()]
