"""The PostgreSQL store: every SQL statement codesearch runs lives in this module.

Every state change of a job or a batch is a guarded update (`... WHERE status = <expected>`): a late
or duplicate worker finds its update matching no row instead of overwriting a finished one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import psycopg2
import psycopg2.extras
import psycopg2.pool
from psycopg2.extensions import cursor as Cursor

from domain import pgbinary
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
JOB_COLUMNS = """id::text AS job_id, status, project_id, repo_path, repo_name, force_reindex,
    progress_percentage, progress_message, files_scanned, files_indexed, files_skipped, files_unchanged, chunks_created,
    batches_total, batches_done, error_type, error_message, created_at, started_at, completed_at,
    cancelled_at, repository_id::text AS repository_id, metadata"""


class ChunkRow(NamedTuple):
    """A chunk ready to be written, with its embedding. A named tuple: one is made for every chunk
    written, and a frozen dataclass's __init__ cost ~3x as much (it sets each field through
    object.__setattr__)."""

    start_line: int
    end_line: int
    content: str
    content_hash: str
    #: The vector, or a stored form of it (`StoredVector`).
    embedding: Sequence[float] | StoredVector
    symbol: str | None = None
    kind: str | None = None
    #: The chunk's tsvector (`lexical.document`): symbol (A), path (B) and body terms; in binary
    #: form, or in text form (`lexical.document_text`) where the vector is text.
    lexical: bytes | str = b"\x00\x00\x00\x00"  # no lexemes


@dataclass(frozen=True)
class FileRow:
    """A file's identity and change-detection facts."""

    path: str
    language: str
    size_bytes: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class Progress:
    """A running batch's state after a file: its holder, how long the lease is renewed for, its counts."""

    job_id: str
    batch_no: int
    owner: str
    lease_s: float
    files_done: int
    files_indexed: int
    files_skipped: int
    chunks_created: int

    def params(self) -> dict[str, Any]:
        return {"job": self.job_id, "batch": self.batch_no, "owner": self.owner, "lease": self.lease_s,
                "files_done": self.files_done, "files_indexed": self.files_indexed,
                "files_skipped": self.files_skipped, "chunks_created": self.chunks_created}


# A batch's progress, guarded: only while the job runs (its row locked FOR SHARE, see `write_files`) and
# the holder still holds the batch. Returns the batch number when it was recorded.
_PROGRESS = """UPDATE indexing_batches b SET files_done = %(files_done)s, files_indexed = %(files_indexed)s,
        files_skipped = %(files_skipped)s, chunks_created = %(chunks_created)s, progress_at = now(),
        heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %(lease)s)
    FROM (SELECT id FROM indexing_jobs WHERE id = %(job)s AND status = 'running' FOR SHARE) AS j
    WHERE b.job_id = j.id AND b.batch_no = %(batch)s AND b.status = 'running' AND b.lease_owner = %(owner)s
    RETURNING b.batch_no"""


class Store:
    """Connections and queries. Safe to share between threads of one process."""

    def __init__(self, url: str, max_connections: int = 16) -> None:
        self.url = url
        self._max = max_connections
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._free = threading.BoundedSemaphore(max_connections)
        self._pid = -1
        self._lock = threading.Lock()
        self._term_stats: tuple[float, dict[str, float], float, float] | None = None

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

    # --- jobs -------------------------------------------------------------------------------

    def create_job(self, project_id: str, repo_path: str, repo_name: str, force: bool, connection_id: str | None) -> tuple[Row, bool]:
        """Insert a pending job, or return the active job for the same repository and project.

        Returns the job row and whether it was created by this call. Joining a pending job with
        `force` sets its force_reindex; a running job keeps its flag (see `force_reindex` in the row).
        """
        with self.transaction() as cur:
            cur.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project_id,))
            cur.execute(
                f"""INSERT INTO indexing_jobs (project_id, repo_path, repo_name, force_reindex, connection_id,
                        progress_message)
                    VALUES (%s, %s, %s, %s, %s, 'Waiting for a worker')
                    ON CONFLICT (project_id, repo_path) WHERE status IN ('pending', 'running') DO NOTHING
                    RETURNING {JOB_COLUMNS}""",
                (project_id, repo_path, repo_name, force, connection_id),
            )
            row = cur.fetchone()
            if row is not None:
                return dict(row), True
            cur.execute(
                f"""SELECT {JOB_COLUMNS} FROM indexing_jobs
                    WHERE project_id = %s AND repo_path = %s AND status IN ('pending', 'running')""",
                (project_id, repo_path),
            )
            existing = cur.fetchone()
            if existing is not None and force and not existing["force_reindex"]:
                # A job that has not started yet can still honour force_reindex; a running one cannot
                # (some of its batches may be done), so its flag stays and the caller says so.
                cur.execute(
                    f"""UPDATE indexing_jobs SET force_reindex = true WHERE id = %s AND status = 'pending'
                        RETURNING {JOB_COLUMNS}""",
                    (existing["job_id"],),
                )
                existing = cur.fetchone() or existing
        if existing is None:  # the active job finished between our insert and select: try again
            return self.create_job(project_id, repo_path, repo_name, force, connection_id)
        return dict(existing), False

    def set_job_task_id(self, job_id: str, task_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE indexing_jobs SET worker_task_id = %s WHERE id = %s", (task_id, job_id))

    def job_task_id(self, job_id: str) -> str | None:
        row = self._one("SELECT worker_task_id FROM indexing_jobs WHERE id = %s", (job_id,))
        return str(row["worker_task_id"]) if row and row["worker_task_id"] else None

    def get_job(self, job_id: str) -> Row | None:
        return self._one(f"SELECT {JOB_COLUMNS} FROM indexing_jobs WHERE id = %s", (job_id,))

    def job_state(self, job_id: str) -> str | None:
        row = self._one("SELECT status FROM indexing_jobs WHERE id = %s", (job_id,))
        return str(row["status"]) if row else None

    def list_jobs(self, project_id: str | None, status: str | None, limit: int) -> list[Row]:
        return self._all(
            f"""SELECT {JOB_COLUMNS} FROM indexing_jobs
                WHERE (%(project)s::text IS NULL OR project_id = %(project)s)
                  AND (%(status)s::text IS NULL OR status = %(status)s)
                ORDER BY created_at DESC, id LIMIT %(limit)s""",
            {"project": project_id, "status": status, "limit": limit},
        )

    def cancel_job(self, job_id: str) -> Row | None:
        """Cancel an active job; None when it is not active (the caller reports why)."""
        with self.transaction() as cur:
            cur.execute(
                f"""UPDATE indexing_jobs SET status = 'cancelled', cancelled_at = now(), completed_at = now(),
                        progress_message = 'Cancelled'
                    WHERE id = %s AND status IN ('pending', 'running') RETURNING {JOB_COLUMNS}""",
                (job_id,),
            )
            row = cur.fetchone()
            if row is not None:
                cur.execute(
                    "UPDATE indexing_batches SET status = 'cancelled', finished_at = now() "
                    "WHERE job_id = %s AND status IN ('pending', 'running')",
                    (job_id,),
                )
            return dict(row) if row else None

    def start_job(self, job_id: str, max_running: int) -> Row | None:
        """pending -> running while fewer than `max_running` jobs run; None when the job is not pending
        (cancelled, or already started) or must wait, in which case it is marked deferred.

        Starts are serialised by a transaction advisory lock so two of them cannot both take the last slot.
        """
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('codesearch.start_job'))")
            cur.execute("SELECT count(*) AS n FROM indexing_jobs WHERE status = 'running'")
            running = int(cur.fetchone()["n"])
            if running >= max_running:
                cur.execute(
                    """UPDATE indexing_jobs SET deferred_at = coalesce(deferred_at, now()),
                            progress_message = format('Waiting: %%s indexing jobs are running, the most allowed '
                                '(MAX_CONCURRENT_INDEXING_JOBS=%%s)', %s, %s)
                       WHERE id = %s AND status = 'pending'""",
                    (running, max_running, job_id),
                )
                return None
            cur.execute(
                f"""UPDATE indexing_jobs SET status = 'running', started_at = now(), deferred_at = NULL,
                        progress_message = 'Discovering files'
                    WHERE id = %s AND status = 'pending' RETURNING {JOB_COLUMNS}""",
                (job_id,),
            )
            row = cur.fetchone()
            return dict(row) if row else None

    def fail_job(self, job_id: str, error_type: str, message: str, traceback: str | None) -> bool:
        row = self._one(
            """UPDATE indexing_jobs SET status = 'failed', completed_at = now(), error_type = %s,
                    error_message = %s, error_traceback = %s, progress_message = 'Failed: ' || %s
                WHERE id = %s AND status IN ('pending', 'running') RETURNING id""",
            (error_type, message, traceback, message, job_id),
        )
        return row is not None

    # --- repositories and planning ------------------------------------------------------------

    def upsert_repository(self, project_id: str, root_path: str, name: str) -> Row:
        row = self._one(
            """INSERT INTO repositories (project_id, root_path, name) VALUES (%s, %s, %s)
               ON CONFLICT (project_id, root_path) DO UPDATE SET name = EXCLUDED.name
               RETURNING id::text AS id, embedding_model, embedding_dim""",
            (project_id, root_path, name),
        )
        assert row is not None
        return row

    def reset_repository(self, repository_id: str, model: str, dim: int) -> None:
        """Forget every file of a repository and record the embedder its new vectors come from."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM files WHERE repository_id = %s", (repository_id,))
            cur.execute(
                "UPDATE repositories SET embedding_model = %s, embedding_dim = %s WHERE id = %s",
                (model, dim, repository_id),
            )

    def delete_files(self, repository_id: str, paths: Sequence[str]) -> int:
        """Remove files (and their chunks) by path: those discovery no longer finds."""
        if not paths:
            return 0
        with self.transaction() as cur:
            cur.execute("DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repository_id, list(paths)))
            return int(cur.rowcount)

    def plan_batches(self, job_id: str, repository_id: str, batches: Sequence[Sequence[tuple[str, int, int]]],
                     files_scanned: int, files_unchanged: int, metadata: dict[str, Any]) -> bool:
        """Store a running job's batches and discovery result; False when the job is no longer running.

        `files_unchanged` are the scanned files in no batch; `aggregate_job` counts them as skipped and done.
        """
        with self.transaction() as cur:
            cur.execute(
                """UPDATE indexing_jobs SET repository_id = %s, files_scanned = %s, files_unchanged = %s,
                        batches_total = %s, metadata = metadata || %s, progress_message = %s
                   WHERE id = %s AND status = 'running' RETURNING id""",
                (repository_id, files_scanned, files_unchanged, len(batches), psycopg2.extras.Json(metadata),
                 f"Indexing {files_scanned - files_unchanged} new or changed files of {files_scanned} "
                 f"in {len(batches)} batches", job_id),
            )
            if cur.fetchone() is None:
                return False
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO indexing_batches (job_id, batch_no, files, file_count, byte_count) VALUES %s "
                "ON CONFLICT DO NOTHING",
                [(job_id, n, psycopg2.extras.Json([list(f) for f in b]), len(b), sum(f[1] for f in b))
                 for n, b in enumerate(batches)],
            )
            return True

    def queue_state(self, message_id: str) -> str | None:
        """The dramatiq-pg state of a message: queued, consumed, rejected or done."""
        row = self._one("SELECT state::text AS state FROM dramatiq.queue WHERE message_id = %s::uuid", (message_id,))
        return str(row["state"]) if row else None

    def renotify_orphaned_messages(self, min_age_s: float) -> int:
        """Re-send the enqueue NOTIFY of consumed dramatiq-pg messages older than min_age_s.

        Called by the reaper, under `reaper_lock`; returns how many were sent. Consumed messages of
        live workers are notified too: their advisory lock makes the consume fail, so they never run twice.
        """
        with self.transaction() as cur:
            cur.execute(
                """SELECT pg_notify('dramatiq.' || queue_name || '.enqueue', message::text)
                   FROM dramatiq.queue
                   WHERE state = 'consumed'
                     -- dramatiq-pg writes mtime as (now() AT TIME ZONE 'UTC'); compare like with like
                     AND mtime < (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)""",
                (min_age_s,),
            )
            return int(cur.rowcount)

    def renotify_queued_messages(self, min_age_s: float, limit: int) -> int:
        """Re-send the enqueue NOTIFY of up to `limit` messages queued at least min_age_s ago.

        dramatiq-pg's graceful shutdown puts a worker's prefetched messages back to `queued` without a
        NOTIFY, so running workers would find them only at their random rescan (minutes). A message
        someone consumes meanwhile is not run twice: consuming is a guarded update of its state.
        """
        with self.transaction() as cur:
            cur.execute(
                """SELECT pg_notify('dramatiq.' || queue_name || '.enqueue', message::text)
                   FROM (SELECT queue_name, message FROM dramatiq.queue
                         WHERE state = 'queued'
                           AND mtime < (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)
                         ORDER BY mtime LIMIT %s) stranded""",
                (min_age_s, limit),
            )
            return int(cur.rowcount)

    @contextmanager
    def reaper_lock(self) -> Iterator[bool]:
        """A session advisory lock that makes one process at a time the reaper; yields whether we got it.

        Held on a connection of its own for the whole round; if that connection dies (a database
        restart) the lock goes with it, and the next round takes it again.

        Raises:
            DatabaseUnavailable: no connection could be made.
        """
        pool, conn = self._checkout()
        broken = True
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext('codesearch.reaper'))")
                mine = bool(cur.fetchone()[0])
            try:
                yield mine
            finally:
                if mine:
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(hashtext('codesearch.reaper'))")
                conn.autocommit = False
                broken = False
        finally:
            self._checkin(pool, conn, broken)

    def heartbeat_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        """Record that worker process `worker_id` is alive now."""
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO worker_heartbeats (worker_id, hostname, pid) VALUES (%s, %s, %s)
                   ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()""",
                (worker_id, hostname, pid),
            )

    def remove_worker(self, worker_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM worker_heartbeats WHERE worker_id = %s", (worker_id,))

    def forget_dead_workers(self, max_age_s: float) -> list[str]:
        """Delete the heartbeats older than max_age_s (their workers are taken for dead); their ids.

        A worker that was only stalled heartbeats again and is back, so each death is seen once."""
        return [str(r["worker_id"]) for r in self._all(
            """DELETE FROM worker_heartbeats WHERE heartbeat_at <= now() - make_interval(secs => %s)
               RETURNING worker_id""", (max_age_s,))]

    def live_workers(self, max_age_s: float) -> list[Row]:
        """Worker processes whose last heartbeat is at most max_age_s old."""
        return self._all(
            """SELECT worker_id, hostname, pid, started_at, heartbeat_at FROM worker_heartbeats
               WHERE heartbeat_at > now() - make_interval(secs => %s) ORDER BY started_at""",
            (max_age_s,),
        )

    def batch_numbers(self, job_id: str, status: str = "pending") -> list[int]:
        rows = self._all("SELECT batch_no FROM indexing_batches WHERE job_id = %s AND status = %s ORDER BY batch_no",
                         (job_id, status))
        return [int(r["batch_no"]) for r in rows]

    # --- batches --------------------------------------------------------------------------------

    def claim_batch(self, job_id: str, batch_no: int, owner: str, lease_s: float) -> Row | None:
        """Take a batch with a lease while its job runs: pending -> running, or running -> running when
        the previous holder's lease has expired (or was never taken, as after a crash before 0003).

        Returns the batch with its repository and the progress of earlier attempts (a batch taken over
        resumes at `files_done`), or None when someone else holds it or there is nothing to do.
        """
        return self._one(
            """UPDATE indexing_batches b SET status = 'running', attempts = attempts + 1,
                    started_at = coalesce(b.started_at, now()), lease_owner = %(owner)s, heartbeat_at = now(),
                    lease_expires_at = now() + make_interval(secs => %(lease)s)
               FROM indexing_jobs j
               WHERE b.job_id = %(job)s AND b.batch_no = %(batch)s AND j.id = b.job_id AND j.status = 'running'
                 AND (b.status = 'pending' OR (b.status = 'running'
                      AND (b.lease_expires_at IS NULL OR b.lease_expires_at < now())))
               RETURNING b.files, b.files_done, b.files_indexed, b.files_skipped, b.chunks_created, b.attempts,
                         j.repository_id::text AS repository_id, j.repo_path, j.force_reindex""",
            {"owner": owner, "lease": lease_s, "job": job_id, "batch": batch_no},
        )

    def record_progress(self, progress: Progress, model: str, new_vectors: Mapping[str, Sequence[float] | StoredVector]) -> bool:
        """Store a running batch's progress, renew its lease and cache the vectors its last files needed.

        One round trip. Returns False when the holder no longer holds the batch (the reaper took it
        back) or the job is no longer running: the caller must stop.
        """
        with self.transaction(durable=False) as cur:
            cached = _cached_vectors(cur, new_vectors)
            cur.execute(f"WITH progress AS ({_PROGRESS}){cached} SELECT count(*) AS held FROM progress",
                        {**progress.params(), "model": model})
            return bool(cur.fetchone()["held"])

    def release_batch(self, job_id: str, batch_no: int, owner: str) -> bool:
        """running -> pending, giving up `owner`'s lease (graceful shutdown, a transient error); the
        stored progress stays, so whoever claims the batch next resumes where it stopped."""
        row = self._one(
            """UPDATE indexing_batches SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
               WHERE job_id = %s AND batch_no = %s AND status = 'running' AND lease_owner = %s RETURNING batch_no""",
            (job_id, batch_no, owner),
        )
        return row is not None

    def renew_leases(self, leases: Sequence[tuple[str, int, str]], lease_s: float) -> int:
        """Extend the given (job_id, batch_no, owner) leases, those still held by their owner."""
        if not leases:
            return 0
        with self.transaction(durable=False) as cur:
            cur.execute(
                """UPDATE indexing_batches b SET heartbeat_at = now(),
                        lease_expires_at = now() + make_interval(secs => %s)
                   FROM unnest(%s::uuid[], %s::int[], %s::text[]) AS l(job_id, batch_no, owner)
                   WHERE b.job_id = l.job_id AND b.batch_no = l.batch_no AND b.lease_owner = l.owner
                     AND b.status = 'running'""",
                (lease_s, [x[0] for x in leases], [x[1] for x in leases], [x[2] for x in leases]),
            )
            return int(cur.rowcount)

    def known_files(self, repository_id: str, paths: Sequence[str]) -> dict[str, FileRow]:
        rows = self._all(
            "SELECT path, language, size_bytes, mtime_ns, content_hash FROM files "
            "WHERE repository_id = %s AND path = ANY(%s)",
            (repository_id, list(paths)),
        )
        return {r["path"]: FileRow(**r) for r in rows}

    def touch_file(self, repository_id: str, file: FileRow) -> None:
        """Record new size/mtime for a file whose content hash did not change."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE files SET size_bytes = %s, mtime_ns = %s WHERE repository_id = %s AND path = %s",
                (file.size_bytes, file.mtime_ns, repository_id, file.path),
            )

    def write_files(self, progress: Progress, repository_id: str, files: Sequence[tuple[FileRow, Sequence[ChunkRow]]],
                    model: str, new_vectors: Mapping[str, Sequence[float] | StoredVector]) -> bool:
        """Replace several files' chunks and record the batch's progress after them, atomically and
        idempotently: as `record_progress`, and nothing is written unless the job runs and the batch
        is still held (returns False then; the caller must stop).

        The job row is locked FOR SHARE first: a cancel (an UPDATE of that row) either commits before
        and this write is refused, or waits for it, so no chunk is written after `cancelled_at`. A
        holder whose lease the reaper took back writes nothing either.

        The commit does not wait for the WAL flush (~1.5 ms a file). A database crash can forget the
        last writes, but only as a suffix of the WAL: their progress records are forgotten with them,
        so the batch redoes those files; batch and job completion commit durably, flushing every
        write before them. The guard, the progress record and every file row are one statement and
        the chunks of every file one COPY (`_ChunkStream`): four round trips for a group of
        files, where a transaction a file took four for each.
        """
        with self.transaction(durable=False) as cur:
            params = {**progress.params(), "repo": repository_id, "model": model,
                      "paths": [f.path for f, _ in files], "languages": [f.language for f, _ in files],
                      "sizes": [f.size_bytes for f, _ in files], "mtimes": [f.mtime_ns for f, _ in files],
                      "hashes": [f.content_hash for f, _ in files]}
            cur.execute(
                f"""WITH progress AS ({_PROGRESS}),
                    file AS (
                        INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash)
                        SELECT %(repo)s, f.path, f.language, f.size, f.mtime, f.hash
                        FROM progress, unnest(%(paths)s::text[], %(languages)s::text[], %(sizes)s::bigint[],
                                              %(mtimes)s::bigint[], %(hashes)s::text[]) AS f(path, language, size, mtime, hash)
                        ORDER BY f.path  -- one order: no deadlocks
                        ON CONFLICT (repository_id, path) DO UPDATE SET language = EXCLUDED.language,
                            size_bytes = EXCLUDED.size_bytes, mtime_ns = EXCLUDED.mtime_ns,
                            content_hash = EXCLUDED.content_hash, indexed_at = now()
                        RETURNING id, path),
                    -- = ANY of an array is an index scan on chunks_file_idx whatever the estimates; with
                    -- IN (SELECT ...) of the CTE's rows one b1 took 2.7x PostgreSQL's CPU (docs/benchmarks.md).
                    gone AS (DELETE FROM chunks WHERE file_id = ANY(ARRAY(SELECT id FROM file)))
                    {_cached_vectors(cur, new_vectors)}
                    SELECT id, path FROM file""",
                params,
            )
            ids = {row["path"]: row["id"] for row in cur.fetchall()}
            if len(ids) != len(files):
                return False
            stream = _ChunkStream(ids, repository_id, files, model)
            cur.copy_expert(stream.statement, stream)
            return True

    def finish_batch(self, job_id: str, batch_no: int, owner: str, result: dict[str, Any]) -> bool:
        """running -> completed, with the batch's counts, while `owner` holds the lease."""
        row = self._one(
            """UPDATE indexing_batches SET status = 'completed', finished_at = now(), progress_at = now(),
                    lease_expires_at = NULL, files_done = file_count, files_indexed = %(files_indexed)s,
                    files_skipped = %(files_skipped)s, chunks_created = %(chunks_created)s
               WHERE job_id = %(job_id)s AND batch_no = %(batch_no)s AND status = 'running'
                 AND lease_owner = %(owner)s RETURNING batch_no""",
            {"job_id": job_id, "batch_no": batch_no, "owner": owner, **result},
        )
        return row is not None

    def fail_batch(self, job_id: str, batch_no: int, owner: str, error_type: str, message: str,
                   traceback: str | None) -> bool:
        """pending, or running under `owner`'s lease -> failed, with the error (the job then fails).

        `pending` is accepted because an error may come before the claim (the database was down).
        """
        row = self._one(
            """UPDATE indexing_batches SET status = 'failed', finished_at = now(), lease_expires_at = NULL,
                    error_type = %s, error_message = %s, error_traceback = %s
               WHERE job_id = %s AND batch_no = %s
                 AND (status = 'pending' OR (status = 'running' AND lease_owner = %s)) RETURNING batch_no""",
            (error_type, message, traceback, job_id, batch_no, owner),
        )
        return row is not None

    # --- aggregation ----------------------------------------------------------------------------

    def aggregate_job(self, job_id: str) -> Row | None:
        """Roll the job's batch results into its row; complete or fail it when every batch is in.

        Sums are recomputed from the batch table rather than incremented, so a redelivered aggregate
        message changes nothing. Progress only grows (GREATEST).
        """
        with self.transaction() as cur:
            cur.execute(
                """SELECT count(*) FILTER (WHERE status IN ('completed', 'failed')) AS done,
                          count(*) FILTER (WHERE status = 'failed') AS failed,
                          coalesce(sum(file_count) FILTER (WHERE status IN ('completed', 'failed')), 0) AS processed,
                          coalesce(sum(files_indexed), 0) AS indexed, coalesce(sum(files_skipped), 0) AS skipped,
                          coalesce(sum(chunks_created), 0) AS chunks,
                          min(error_type) FILTER (WHERE status = 'failed') AS error_type,
                          min(error_message) FILTER (WHERE status = 'failed') AS error_message,
                          min(error_traceback) FILTER (WHERE status = 'failed') AS error_traceback
                   FROM indexing_batches WHERE job_id = %s""",
                (job_id,),
            )
            agg = dict(cur.fetchone() or {})
            # Files planning found unchanged are in no batch: they count as skipped and as processed.
            cur.execute(
                f"""UPDATE indexing_jobs j SET files_indexed = %(indexed)s,
                        files_skipped = %(skipped)s + j.files_unchanged,
                        chunks_created = %(chunks)s, batches_done = %(done)s,
                        progress_percentage = GREATEST(j.progress_percentage,
                            CASE WHEN coalesce(j.files_scanned, 0) = 0 THEN 0
                                 ELSE LEAST(99, floor(100.0 * (%(processed)s + j.files_unchanged) / j.files_scanned))
                            END),
                        progress_message = format('Indexed %%s of %%s files (%%s chunks)',
                            %(processed)s + j.files_unchanged, j.files_scanned, %(chunks)s)
                    WHERE id = %(job_id)s AND status = 'running' RETURNING {JOB_COLUMNS}""",
                {**agg, "job_id": job_id},
            )
            row = cur.fetchone()
            if row is None:
                return None
            finished = row["batches_total"] is not None and agg["done"] >= row["batches_total"]
            if not agg["failed"] and not finished:
                return dict(row)
            if agg["failed"]:  # one failed batch fails the job at once; the other batches stop at their next file
                cur.execute(
                    f"""UPDATE indexing_jobs SET status = 'failed', completed_at = now(), error_type = %s,
                            error_message = %s, error_traceback = %s, progress_message = 'Failed: ' || %s
                        WHERE id = %s AND status = 'running' RETURNING {JOB_COLUMNS}""",
                    (agg["error_type"], agg["error_message"], agg["error_traceback"], agg["error_message"], job_id),
                )
            else:
                cur.execute(
                    f"""UPDATE indexing_jobs SET status = 'completed', completed_at = now(), progress_percentage = 100,
                            progress_message = format('Completed: %%s files indexed, %%s unchanged or skipped, %%s chunks',
                                files_indexed, files_skipped, chunks_created)
                        WHERE id = %s AND status = 'running' RETURNING {JOB_COLUMNS}""",
                    (job_id,),
                )
            final = cur.fetchone()
            if final is not None and final["status"] == "completed":
                cur.execute("UPDATE repositories SET last_indexed_at = now() WHERE id = %s", (final["repository_id"],))
            return dict(final) if final else dict(row)

    # --- reaper ---------------------------------------------------------------------------------

    def expire_leases(self, max_attempts: int) -> tuple[list[tuple[str, int]], list[str]]:
        """Take back running batches of running jobs whose lease expired.

        Returns the batches put back to pending (to be re-sent) and the jobs of batches that had already
        been claimed `max_attempts` times, which are failed instead (aggregate those jobs). A holder that
        finishes at the same moment wins or loses cleanly: both sides are guarded updates of one row.
        """
        with self.transaction() as cur:
            cur.execute(
                """UPDATE indexing_batches b SET status = 'failed', finished_at = now(), lease_expires_at = NULL,
                        error_type = 'BatchAttemptsExhausted',
                        error_message = format('batch %%s was claimed %%s times and its worker was lost each time '
                            '(last holder %%s); giving up', b.batch_no, b.attempts, b.lease_owner)
                   FROM indexing_jobs j
                   WHERE j.id = b.job_id AND j.status = 'running' AND b.status = 'running'
                     AND b.lease_expires_at < now() AND b.attempts >= %s
                   RETURNING b.job_id::text AS job_id""",
                (max_attempts,),
            )
            exhausted = sorted({r["job_id"] for r in cur.fetchall()})
            cur.execute(
                """UPDATE indexing_batches b SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
                   FROM indexing_jobs j
                   WHERE j.id = b.job_id AND j.status = 'running' AND b.status = 'running'
                     AND b.lease_expires_at < now()
                   RETURNING b.job_id::text AS job_id, b.batch_no""",
            )
            released = [(r["job_id"], int(r["batch_no"])) for r in cur.fetchall()]
        return released, exhausted

    def jobs_to_aggregate(self) -> list[str]:
        """Running jobs whose batches are all finished, or one failed: their last aggregate message
        may have been lost (retries exhausted), so the reaper rolls them up itself."""
        rows = self._all(
            """SELECT j.id::text AS job_id FROM indexing_jobs j
               WHERE j.status = 'running' AND j.batches_total IS NOT NULL
                 AND ((SELECT count(*) FROM indexing_batches b
                       WHERE b.job_id = j.id AND b.status IN ('completed', 'failed')) >= j.batches_total
                      OR EXISTS (SELECT 1 FROM indexing_batches b WHERE b.job_id = j.id AND b.status = 'failed'))"""
        )
        return [r["job_id"] for r in rows]

    def time_out_jobs(self, timeout_s: float, worker_max_age_s: float) -> list[str]:
        """Fail running jobs with no progress (a file processed, a batch finished) for timeout_s.

        Only while some worker process has been alive for the whole of timeout_s: after the workers
        were stopped overnight, a job waiting for them has not stalled, and must not fail the moment
        the first worker comes back.
        """
        rows = self._all(
            """UPDATE indexing_jobs j SET status = 'failed', completed_at = now(), error_type = 'JobTimeout',
                    error_message = format('no progress for %%s s (INDEXING_JOB_TIMEOUT_SECONDS); '
                        'start the job again to resume it', %(timeout)s),
                    progress_message = 'Failed: timed out'
               WHERE j.status = 'running'
                 AND greatest(j.started_at, (SELECT max(greatest(b.progress_at, b.finished_at))
                                             FROM indexing_batches b WHERE b.job_id = j.id))
                     < now() - make_interval(secs => %(timeout)s)
                 AND EXISTS (SELECT 1 FROM worker_heartbeats w
                             WHERE w.started_at < now() - make_interval(secs => %(timeout)s)
                               AND w.heartbeat_at > now() - make_interval(secs => %(alive)s))
               RETURNING j.id::text AS job_id""",
            {"timeout": timeout_s, "alive": worker_max_age_s},
        )
        return [r["job_id"] for r in rows]

    def deferred_jobs(self, max_running: int) -> list[str]:
        """Pending jobs that waited for a slot, oldest first, as many as there are free slots."""
        rows = self._all(
            """SELECT id::text AS job_id FROM indexing_jobs WHERE status = 'pending' AND deferred_at IS NOT NULL
               ORDER BY created_at
               LIMIT greatest(0, %s - (SELECT count(*) FROM indexing_jobs WHERE status = 'running'))""",
            (max_running,),
        )
        return [r["job_id"] for r in rows]

    def prune(self, job_retention_days: float, message_retention_s: float) -> tuple[int, int]:
        """Delete finished jobs (with their batches) and finished dramatiq messages past retention."""
        with self.transaction() as cur:
            cur.execute(
                """DELETE FROM indexing_jobs WHERE status IN ('completed', 'failed', 'cancelled')
                     AND completed_at < now() - make_interval(days => 0, secs => %s)""",
                (job_retention_days * 86400,),
            )
            jobs = int(cur.rowcount)
            cur.execute(
                """DELETE FROM dramatiq.queue WHERE state IN ('done', 'rejected')
                     AND mtime < (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)""",
                (message_retention_s,),
            )
            return jobs, int(cur.rowcount)

    # --- embedding cache ------------------------------------------------------------------------

    def cached_embeddings(self, model: str, text_hashes: Sequence[str]) -> dict[str, bytes]:
        """Vectors already computed by `model` for these text hashes, in halfvec's binary form."""
        if not text_hashes:
            return {}
        rows = self._all(
            "SELECT text_hash, halfvec_send(embedding) AS embedding FROM embedding_cache "
            "WHERE model = %s AND text_hash = ANY(%s)",
            (model, list(text_hashes)),
        )
        return {r["text_hash"]: bytes(r["embedding"]) for r in rows}

    # --- search ---------------------------------------------------------------------------------

    def search_scope(self, project_id: str, repository: str | None) -> list[Row]:
        """The repositories a search covers (the project's, or the one `repository` names by name or
        root path), with their ids and embedders.

        The ranking queries take these ids as constants rather than joining `repositories`: the
        planner then estimates each repository's share of `chunks` from the column statistics. With
        a join it assumed the average share, and once other projects shared the table it intersected
        every lexical and definition lookup with all of the project's entries of the repository
        index: 15-17 ms of a 20 ms lookup at 321k chunks (docs/benchmarks.md, 2026-12-01)."""
        return self._all(
            """SELECT id::text AS id, name, root_path, embedding_model, embedding_dim FROM repositories
               WHERE project_id = %(project)s
                 AND (%(repo)s::text IS NULL OR name = %(repo)s OR root_path = %(repo)s)
               ORDER BY root_path""",
            {"project": project_id, "repo": repository}, reading=True,
        )

    def estimated_chunks(self) -> float:
        """The planner's row estimate of `chunks` (0 before any VACUUM or ANALYZE)."""
        row = self._one(f"SELECT {_CHUNKS_ESTIMATE} AS n")
        return float(row["n"]) if row else 0.0

    def analyze_chunks(self) -> None:
        """Refresh the statistics of `chunks` (the planner's, and the lexeme shares of `term_shares`)."""
        with self.transaction() as cur:
            cur.execute("ANALYZE chunks")
        self._term_stats = None

    def count_chunks(self, model: str) -> int:
        row = self._one("SELECT count(*) AS n FROM chunks WHERE embedding_model = %s", (model,))
        return int(row["n"]) if row else 0

    def has_vector_index(self, model: str) -> bool:
        row = self._one("SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                        (_vector_index_name(model),))
        return bool(row and row["valid"])

    def ensure_vector_index(self, model: str, dim: int) -> bool:
        """Build the HNSW cosine index over one embedder's vectors, without blocking writers.

        Vectors are stored untyped so that several embedders can share the table; the index is on
        the expression `embedding::halfvec(dim)` for that embedder's rows, which is what
        `semantic_search` orders by. CREATE INDEX CONCURRENTLY lets indexing go on meanwhile; a
        session advisory lock makes one process build it; an invalid leftover of a crashed build is
        dropped first. Returns whether this call built it.
        """
        name = _vector_index_name(model)
        conn = psycopg2.connect(self.url)
        conn.autocommit = True  # CONCURRENTLY cannot run inside a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext('codesearch.vector-index'))")
                if not cur.fetchone()[0]:
                    return False
                cur.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,))
                found = cur.fetchone()
                if found and found[0]:
                    return False
                if found:
                    cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                cur.execute(
                    f"CREATE INDEX CONCURRENTLY {name} ON chunks "
                    f"USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops) WHERE embedding_model = %s",
                    (model,),
                )
                return True
        finally:
            conn.close()

    def semantic_search(self, repositories: Sequence[str], model: str, vector: Sequence[float], limit: int,
                        filters: SearchFilters) -> list[Row]:
        """Nearest chunks by cosine distance among `repositories` (ids, `search_scope`) and one embedder, as ranking
        rows (`_RANK_COLUMNS`, `distance`, `score`); `hit_details` reads the rest for the rows kept.

        Uses the embedder's HNSW index when the planner prefers it, with iterative scans so that a
        filtered query still finds `limit` rows when they exist. No content is carried through the
        sort: an exact search over 20,100 chunks took 31.2 ms when it carried every row's columns,
        22.9 ms without.
        """
        dim = len(vector)
        distance = f"(c.embedding::halfvec({dim})) <=> %(q)s::halfvec({dim})"
        with self.reading(rows_as_dicts=False) as cur:  # SET LOCAL holds for this execute's statements
            cur.execute(
                f"""SET LOCAL hnsw.iterative_scan = relaxed_order;
                    SELECT set_config('hnsw.ef_search', %(ef)s, true);
                    SELECT {_RANK_COLUMNS}, nearest.distance, 1 - nearest.distance AS score
                    FROM (SELECT c.id, {distance} AS distance
                          FROM chunks c
                          WHERE c.embedding_model = %(model)s AND {_FILTERS}
                          ORDER BY {distance} LIMIT %(limit)s) AS nearest
                    JOIN chunks c ON c.id = nearest.id
                    ORDER BY nearest.distance, c.id""",
                {"q": encode_vector(vector), "model": model, "limit": limit,
                 "ef": str(min(1000, max(40, 2 * limit))),
                 **filters.params(repositories)},
            )
            return _dicts(cur)

    def lexical_search(self, repositories: Sequence[str], match: str, rank: str, limit: int,
                       filters: SearchFilters, cap: int) -> list[Row]:
        """Chunks matching the `match` tsquery (at most `cap` of them), ordered by ts_rank under `rank`,
        as ranking rows (`_RANK_COLUMNS`, `score`).

        ts_rank weighs the symbol over the path over the body and normalises by length. `cap` bounds
        the work when the statistics `term_shares` relies on are missing or stale.
        """
        return self._all(
            f"""SELECT {_RANK_COLUMNS}, ranked.score
                FROM (SELECT hit.id, ts_rank(hit.lexemes, %(rank)s::tsquery, 1) AS score
                      FROM (SELECT c.id, c.lexemes FROM chunks c
                            WHERE c.lexemes @@ %(match)s::tsquery AND {_FILTERS}
                            LIMIT %(cap)s) AS hit
                      ORDER BY score DESC, hit.id LIMIT %(limit)s) AS ranked
                JOIN chunks c ON c.id = ranked.id
                ORDER BY ranked.score DESC, c.id""",
            {"match": match, "rank": rank, "limit": limit, "cap": cap, **filters.params(repositories)},
            reading=True,
        )

    def definitions(self, repositories: Sequence[str], names: Sequence[str], limit: int, filters: SearchFilters,
                    cap: int) -> list[Row]:
        """Chunks of `repositories` whose symbol ends with one of `names` (lowercased, underscores
        dropped), through the symbol-suffix index, as ranking rows; the caller keeps those that really
        define a name ("Server.serve", not "observe").

        Of at most `cap` suffix matches, the `limit` with the shortest symbols are returned: an exact
        name is the shortest symbol that ends with it. The matches are gathered first (MATERIALIZED)
        so that the planner cannot walk the primary key in order hoping to meet them early: it
        misjudges how many symbols end with a name, and that walk took 473 ms at 421k chunks."""
        key = "reverse(lower(replace(c.symbol, '_', '')))"
        ends = " OR ".join(f"{key} LIKE %(name{n})s" for n in range(len(names)))
        return self._all(
            f"""WITH found AS MATERIALIZED (
                    SELECT {_RANK_COLUMNS} FROM chunks c
                    WHERE c.symbol IS NOT NULL AND ({ends}) AND {_FILTERS} LIMIT %(cap)s)
                SELECT found.*, NULL::real AS score FROM found
                ORDER BY length(found.symbol), found.id LIMIT %(limit)s""",
            {**{f"name{n}": f"{_like_literal(name[::-1])}%" for n, name in enumerate(names)},
             "limit": limit, "cap": cap, **filters.params(repositories)},
            reading=True,
        ) if names and repositories else []

    def term_shares(self, terms: Sequence[str]) -> tuple[dict[str, float], float, float]:
        """PostgreSQL's own statistics of the lexeme column (kept by ANALYZE and autovacuum): the share
        of chunks holding each of `terms` that is among the most common lexemes, the smallest share
        it lists (every unlisted term is rarer), and the number of chunks. Before any ANALYZE: ({}, 0, 0).

        The whole list (at most 1,000 lexemes) is read at most once a TERM_STATS_TTL_S: statistics
        only change when the table is analysed, and reading them cost ~1.5 ms of every search. Missing
        statistics are not kept: a first ANALYZE is then used as soon as it is there."""
        now = time.monotonic()
        cached = self._term_stats
        if cached is None or now - cached[0] > TERM_STATS_TTL_S or not cached[1]:
            row = self._one(
                f"""SELECT {_CHUNKS_ESTIMATE} AS chunks,
                          s.most_common_elem_freqs[array_length(s.most_common_elem_freqs, 1) - 2] AS least,
                          (SELECT coalesce(jsonb_object_agg(u.term, u.share), '{{}}')
                           FROM unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                                AS u(term, share) WHERE u.term IS NOT NULL) AS shares
                   FROM (SELECT 1) AS one
                   LEFT JOIN pg_stats s ON s.tablename = 'chunks' AND s.attname = 'lexemes'
                    AND s.schemaname = (SELECT relnamespace::regnamespace::text FROM pg_class
                                        WHERE oid = 'chunks'::regclass)""")
            assert row is not None
            shares = {k: float(v) for k, v in (row["shares"] or {}).items()}
            cached = self._term_stats = (now, shares, float(row["least"] or 0.0), float(row["chunks"]))
        _, shares, least, chunks = cached
        return {t: shares[t] for t in terms if t in shares}, least, chunks

    def hit_details(self, ids: Sequence[int], spans: Sequence[tuple[int, int, int]]) -> tuple[dict[int, Row], list[Row]]:
        """The columns of the chunks a search returns (`_HIT_COLUMNS` by id), and the chunks overlapping
        each (file_id, first_line, last_line) span, for context lines: after fusion, so that content
        is read for the results and not for every candidate of every ranking. A chunk re-indexed
        away in between is missing from the result, which the caller skips."""
        if not ids:
            return {}, []
        with self.reading(rows_as_dicts=False) as cur:
            cur.execute(f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN repositories r ON r.id = c.repository_id "
                        "WHERE c.id = ANY(%s)", (list(ids),))
            details = {row["id"]: row for row in _dicts(cur)}
            cur.execute(
                """SELECT DISTINCT c.file_id, c.start_line, c.end_line, c.content
                   FROM chunks c JOIN unnest(%s::bigint[], %s::int[], %s::int[]) AS s(file_id, lo, hi)
                     ON c.file_id = s.file_id AND c.start_line <= s.hi AND c.end_line >= s.lo""",
                ([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans]),
            )
            return details, _dicts(cur)

    # --- projects --------------------------------------------------------------------------------

    def project_summaries(self) -> list[Row]:
        """Every project with its repository, file and chunk counts, last indexing and active jobs."""
        return self._all(
            """SELECT p.id AS project_id,
                      (SELECT count(*) FROM repositories r WHERE r.project_id = p.id) AS repositories,
                      (SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id
                        WHERE r.project_id = p.id) AS files,
                      (SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id
                        WHERE r.project_id = p.id) AS chunks,
                      (SELECT max(r.last_indexed_at) FROM repositories r WHERE r.project_id = p.id) AS last_indexed_at,
                      (SELECT count(*) FROM indexing_jobs j WHERE j.project_id = p.id
                        AND j.status IN ('pending', 'running')) AS active_jobs
               FROM projects p ORDER BY p.id""")

    def repository_summaries(self, project_id: str) -> list[Row]:
        """A project's repositories with file and chunk counts."""
        return self._all(
            """SELECT r.id::text AS id, r.name, r.root_path AS path, r.embedding_model, r.last_indexed_at,
                      (SELECT count(*) FROM files f WHERE f.repository_id = r.id) AS files,
                      (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id) AS chunks
               FROM repositories r WHERE r.project_id = %s ORDER BY r.root_path""",
            (project_id,))

    def file_stamps(self, repository_id: str) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of every stored file of a repository, by path."""
        rows = self._all("SELECT path, size_bytes, mtime_ns FROM files WHERE repository_id = %s", (repository_id,))
        return {r["path"]: (int(r["size_bytes"]), int(r["mtime_ns"])) for r in rows}

    # --- operations (metrics and health) ----------------------------------------------------------

    def operations_snapshot(self, worker_max_age_s: float) -> Row:
        """What the scrape-time metrics collector reports, read in one transaction.

        Keys: jobs_by_status {status: count}, pending_batches, oldest_pending_job_age_s (0 when none),
        running_jobs [{job_id, project_id, repo_name, progress_percentage, idle_s}] where idle_s is the
        time since the job last showed activity (start, a batch finishing or a batch heartbeat),
        queue_depth {queue_name: queued messages}, live_workers.
        """
        with self.transaction() as cur:
            cur.execute("SELECT status, count(*) AS n FROM indexing_jobs GROUP BY status")
            jobs = {r["status"]: int(r["n"]) for r in cur.fetchall()}
            cur.execute("SELECT count(*) AS n FROM indexing_batches WHERE status = 'pending'")
            pending_batches = int(cur.fetchone()["n"])
            cur.execute(
                """SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age
                   FROM indexing_jobs WHERE status = 'pending'""")
            oldest = float(cur.fetchone()["age"])
            cur.execute(
                """SELECT j.id::text AS job_id, j.project_id, j.repo_name, j.progress_percentage,
                          extract(epoch FROM now() - greatest(j.started_at, max(b.finished_at),
                                                              max(b.heartbeat_at), max(b.started_at))) AS idle_s
                   FROM indexing_jobs j LEFT JOIN indexing_batches b ON b.job_id = j.id
                   WHERE j.status = 'running' GROUP BY j.id ORDER BY j.created_at""")
            running = [dict(r) for r in cur.fetchall()]
            cur.execute(
                """SELECT queue_name, count(*) AS n FROM dramatiq.queue WHERE state = 'queued'
                   GROUP BY queue_name""")
            queues = {r["queue_name"]: int(r["n"]) for r in cur.fetchall()}
            cur.execute("SELECT count(*) AS n FROM worker_heartbeats "
                        "WHERE heartbeat_at > now() - make_interval(secs => %s)", (worker_max_age_s,))
            live = int(cur.fetchone()["n"])
        return {"jobs_by_status": jobs, "pending_batches": pending_batches, "oldest_pending_job_age_s": oldest,
                "running_jobs": running, "queue_depth": queues, "live_workers": live}

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(url: str) -> Store:
    """The process-wide store for a URL."""
    with _stores_lock:
        if url not in _stores:
            _stores[url] = Store(url)
        return _stores[url]


# How long the lexeme statistics of `term_shares` are reused.
TERM_STATS_TTL_S = 60.0
#: How long `Store._checkout` waits for a connection when all of the process's are in use.
CHECKOUT_WAIT_S = 30.0
# The planner's row count of `chunks` (kept by ANALYZE and VACUUM; 0 before either ran).
_CHUNKS_ESTIMATE = "(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass)"
#: What fusion needs of a ranked chunk; the rest (`_HIT_COLUMNS`) is read for the results only.
_RANK_COLUMNS = "c.id, c.file_id, c.symbol, c.start_line, c.end_line"
_HIT_COLUMNS = """c.id, c.file_id, c.path, r.name AS repository, r.root_path AS repository_path, c.language,
    c.symbol, c.kind, c.start_line, c.end_line, c.content"""
# LIKE wildcards in user input are escaped by SearchFilters.params, so they match literally.
_FILTERS = """c.repository_id = ANY(%(repositories)s::uuid[])
    AND (%(suffix)s::text IS NULL OR lower(c.path) LIKE '%%' || %(suffix)s ESCAPE '\\')
    AND (%(dir)s::text IS NULL OR c.path LIKE %(dir)s || '%%' ESCAPE '\\')
    AND (%(language)s::text IS NULL OR c.language = %(language)s)"""


@dataclass(frozen=True)
class SearchFilters:
    """Validated filters of a search: file suffix (".py"), directory prefix ("src/"), repository, language.

    The repository filter is applied by `search_scope`; the ranking queries get the ids it returns."""

    suffix: str | None = None
    directory: str | None = None
    repository: str | None = None
    language: str | None = None

    def params(self, repositories: Sequence[str]) -> dict[str, object]:
        return {"repositories": list(repositories), "suffix": _like_literal(self.suffix),
                "dir": _like_literal(self.directory), "language": self.language}


def _dicts(cur: Cursor) -> list[Row]:
    """The rows of a plain (tuple) cursor's last result as dicts keyed by column name."""
    names = [column.name for column in cur.description or ()]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _vector_index_name(model: str) -> str:
    return "chunks_embedding_hnsw_" + hashlib.sha1(model.encode()).hexdigest()[:12]


def _cached_vectors(cur: Cursor, vectors: Mapping[str, Sequence[float] | StoredVector]) -> str:
    """A CTE (", cached AS (...)") adding `vectors` of `%(model)s` to the embedding cache while the batch
    is held, or ""."""
    if not vectors:
        return ""
    rows = b",".join(cur.mogrify("(%s, %s)", (h, encode_vector(vectors[h]))) for h in sorted(vectors)).decode()
    return f""", cached AS (
        INSERT INTO embedding_cache (model, text_hash, embedding)
        SELECT %(model)s, v.text_hash, v.embedding::halfvec
        FROM progress, (VALUES {rows.replace("%", "%%")}) AS v(text_hash, embedding)
        ORDER BY v.text_hash  -- one order: no deadlocks
        ON CONFLICT DO NOTHING)"""


def _like_literal(text: str | None) -> str | None:
    """User text for a LIKE pattern, with its wildcards and escape character made literal."""
    if text is None:
        return None
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: Chunk rows go in by COPY, in its binary format where they can (`_ChunkStream`). A multi-row INSERT
#: made PostgreSQL lex and parse every row's ~5 KB of SQL literals first: ~100 us a row against ~36
#: us for inserting the same typed rows (docs/benchmarks.md, B1).
_COPY_CHUNKS = """COPY chunks (file_id, repository_id, path, language, symbol, kind, start_line, end_line, content,
                               content_hash, embedding, embedding_model, lexemes) FROM STDIN"""
_COPY_FIELDS = b"\x00\x0d"  # each row's field count in binary: the 13 columns of _COPY_CHUNKS
_LINES = struct.Struct(">iiii")  # start_line and end_line in binary: length 4 and value, each
_HASH = pgbinary.LENGTH.pack(64)  # content_hash: 64 hexadecimal digits


class _ChunkStream:
    """The chunk rows of several files as one COPY stream, produced as copy_expert reads it: a read
    returns a few rows (~8 KiB, copy_expert's default), so neither this nor libpq's output buffer ever
    holds more. Each file's first four fields are encoded once for all its chunks.

    Binary (`pgbinary`) unless some vector or tsvector is in text form (Ollama's vectors, and the
    tsvectors `indexing` builds beside them): numpy parses decimal text ~10x slower than PostgreSQL
    (~170 against ~15 us for 768 components), and a statement converting text vectors for binary
    rows cost ~150 us of the server's CPU a vector, most of it reading the array literal.
    """

    def __init__(self, ids: Mapping[str, int], repository_id: str, files: Sequence[tuple[FileRow, Sequence[ChunkRow]]],
                 model: str) -> None:
        self.binary = not any(isinstance(c.embedding, str) or isinstance(c.lexical, str)
                              for _, chunks in files for c in chunks)
        # Every vector in the stream's form before COPY starts: a ValueError raised inside a read
        # would reach the caller as psycopg2's QueryCanceled, a transient error, and be retried.
        self._vectors = iter([_binary_vector(c.embedding) if self.binary else encode_vector(c.embedding)
                              for _, chunks in files for c in chunks])
        self._rows = self._chunks(ids, repository_id, files)
        self._model = pgbinary.text_field(model) if self.binary else _copy_field(model).encode()
        self._started = self._ended = False

    @property
    def statement(self) -> str:
        return _COPY_CHUNKS + (" (FORMAT binary)" if self.binary else "")

    def _chunks(self, ids: Mapping[str, int], repository_id: str,
                files: Sequence[tuple[FileRow, Sequence[ChunkRow]]]) -> Iterator[tuple[bytes, ChunkRow]]:
        repository = pgbinary.field(uuid.UUID(repository_id).bytes)
        for file, chunks in files:
            if self.binary:
                fixed = (_COPY_FIELDS + pgbinary.bigint_field(ids[file.path]) + repository
                         + pgbinary.text_field(file.path) + pgbinary.text_field(file.language))
            else:
                fixed = f"{ids[file.path]}\t{repository_id}\t{_copy_field(file.path)}\t{_copy_field(file.language)}".encode()
            for chunk in chunks:
                yield fixed, chunk

    def read(self, size: int = 8192) -> bytes:
        parts: list[bytes] = []
        if not self._started and self.binary:
            parts.append(pgbinary.HEADER)
        self._started, length = True, 0
        row = self._binary_row if self.binary else self._text_row
        for fixed, chunk in self._rows:
            parts.append(row(fixed, chunk))
            length += len(parts[-1])
            if length >= size:
                return b"".join(parts)
        if not self._ended and self.binary:
            parts.append(pgbinary.TRAILER)
        self._ended = True
        return b"".join(parts)

    def _binary_row(self, fixed: bytes, c: ChunkRow) -> bytes:
        content, vector, lexemes = c.content.encode(), cast(bytes, next(self._vectors)), cast(bytes, c.lexical)
        length_of = pgbinary.LENGTH.pack
        return b"".join((fixed, pgbinary.text_field(c.symbol), pgbinary.text_field(c.kind),
                         _LINES.pack(4, c.start_line, 4, c.end_line), length_of(len(content)), content,
                         _HASH, c.content_hash.encode(), length_of(len(vector)), vector, self._model,
                         length_of(len(lexemes)), lexemes))

    def _text_row(self, fixed: bytes, c: ChunkRow) -> bytes:
        lexemes = c.lexical if isinstance(c.lexical, str) else pgbinary.tsvector_text(c.lexical)
        return (fixed + f"\t{_copy_field(c.symbol)}\t{_copy_field(c.kind)}\t{c.start_line}\t{c.end_line}\t"
                f"{_copy_field(c.content)}\t{c.content_hash}\t{next(self._vectors)!s}\t".encode()
                + self._model + f"\t{lexemes}\n".encode())


def _binary_vector(vector: Sequence[float] | StoredVector) -> bytes:
    """A vector that is not text in halfvec's binary form. Raises: ValueError as `pgbinary.halfvecs`."""
    if isinstance(vector, bytes):
        return vector
    return pgbinary.halfvecs(np.asarray(vector, dtype=np.float64).reshape(1, -1))[0]


def _copy_field(value: str | None) -> str:
    """A text value in COPY's text format: \\N for NULL; backslash, tab, newline and CR escaped."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def encode_vector(values: Sequence[float] | StoredVector) -> str:
    """A vector in pgvector's text form, for a statement's parameter; a text form passes through, a
    binary one (`pgbinary.halfvecs`) is decoded.

    Raises: ValueError for a vector with NaN or infinite components.
    """
    if isinstance(values, str):
        return values
    if isinstance(values, bytes):
        return encode_vectors(pgbinary.halfvec_components(values).reshape(1, -1))[0]
    return encode_vectors(np.asarray(values, dtype=np.float64).reshape(1, -1))[0]


#: Components are laid out through a table of every integer of 1e-5 in [-1, 1] (1.6 MB, built on
#: first use); vectors with larger components take the slow path.
_TABLE_LIMIT = 100_000
_FIELD = np.dtype([("number", "S8"), ("tail", "S3")])


@functools.cache
def _number_table() -> npt.NDArray[np.bytes_]:
    """"-012345e" for -12345, "0012345e" for 12345: eight bytes for each integer of the table."""
    values = np.arange(-_TABLE_LIMIT, _TABLE_LIMIT + 1)
    magnitude = np.abs(values)
    table = np.empty((values.size, 8), dtype=np.uint8)
    table[:, 0] = np.where(values < 0, ord("-"), ord("0"))
    for place in range(6, 0, -1):
        table[:, place] = magnitude % 10 + ord("0")
        magnitude //= 10
    table[:, 7] = ord("e")
    return table.view("S8").ravel()


def encode_vectors(matrix: npt.NDArray[np.floating[Any]]) -> list[str]:
    """Each row of `matrix` in pgvector's text form, components as integers of 1e-5 ("0012345e-5" is
    0.12345): five decimals exceed halfvec's precision for unit-vector components.

    Fixed-width fields are gathered by numpy for the whole matrix at once instead of formatting each
    number: ~2 us a 256-d row instead of ~30 us, while PostgreSQL parses the longer text within ~2 us a
    row of the shorter (docs/benchmarks.md). Indexing encodes each new vector once, for its chunk and
    the embedding cache alike.

    Raises: ValueError for a vector with NaN or infinite components.
    """
    rows, dim = matrix.shape
    if not np.isfinite(matrix).all():
        raise ValueError("a vector has NaN or infinite components")
    if not rows or not dim:
        return ["[]"] * rows
    ints = np.rint(matrix * 1e5).astype(np.int64)
    if np.abs(ints).max() > _TABLE_LIMIT:
        return ["[" + "e-5,".join(map(str, row)) + "e-5]" for row in ints.tolist()]
    fields = np.empty((rows, dim), dtype=_FIELD)
    fields["number"] = _number_table()[ints + _TABLE_LIMIT]
    fields["tail"] = b"-5,"
    fields["tail"][:, -1] = b"-5]"
    text = fields.tobytes().decode("ascii")
    width = dim * _FIELD.itemsize
    return ["[" + text[start:start + width] for start in range(0, rows * width, width)]
