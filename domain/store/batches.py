"""Batches: planning a job into batches, leasing them, and writing their files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extras
import psycopg2.pool

from domain.store.base import Connections, Row, StoredVector
from domain.store.chunks import ChunkRow, FileRow, _cached_vectors, _ChunkStream
from domain.store.lexicon import FORGET


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


class BatchQueries(Connections):
    """Queries of repositories, files and `indexing_batches`."""

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
        """Forget every file of a repository (and its lexicon) and record the embedder its new vectors come from."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM files WHERE repository_id = %s", (repository_id,))
            cur.execute("DELETE FROM lexicon WHERE repository_id = %s", (repository_id,))
            cur.execute("DELETE FROM lexicon_changes WHERE repository_id = %s", (repository_id,))
            cur.execute(
                "UPDATE repositories SET embedding_model = %s, embedding_dim = %s, lexicon_through = 0 WHERE id = %s",
                (model, dim, repository_id),
            )

    def delete_files(self, repository_id: str, paths: Sequence[str]) -> int:
        """Remove files (and their chunks, `FORGET`ting their lexemes) by path: those discovery no longer finds."""
        if not paths:
            return 0
        with self.transaction() as cur:
            cur.execute(
                f"""WITH gone AS (DELETE FROM chunks WHERE repository_id = %(repo)s AND path = ANY(%(paths)s)
                                  RETURNING id, lexemes),
                    {FORGET}
                    DELETE FROM files WHERE repository_id = %(repo)s AND path = ANY(%(paths)s)""",
                {"repo": repository_id, "paths": list(paths)})
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
                    gone AS (DELETE FROM chunks WHERE file_id = ANY(ARRAY(SELECT id FROM file)) RETURNING id, lexemes),
                    {FORGET}
                    {_cached_vectors(cur, new_vectors)}
                    SELECT file.id, file.path FROM file, through  -- the lock of `FORGET` whatever `gone` holds""",
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
