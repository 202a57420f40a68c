"""Jobs: creating, starting, cancelling, failing and aggregating indexing jobs."""

from __future__ import annotations

from domain.store.base import Connections, Row

JOB_COLUMNS = """id::text AS job_id, status, project_id, repo_path, repo_name, force_reindex,
    progress_percentage, progress_message, files_scanned, files_indexed, files_skipped, files_unchanged, chunks_created,
    batches_total, batches_done, error_type, error_message, created_at, started_at, completed_at,
    cancelled_at, repository_id::text AS repository_id, metadata, paths, cardinality(paths) AS scoped_paths,
    connection_id"""


class JobQueries(Connections):
    """Queries of `indexing_jobs`, each state change a guarded update."""

    # --- jobs -------------------------------------------------------------------------------

    def create_job(self, project_id: str, repo_path: str, repo_name: str, force: bool, connection_id: str | None,
                   paths: list[str] | None = None) -> tuple[Row, bool]:
        """Insert a pending job, or return the active job for the same repository and project.

        `paths` limits the job to those root-relative files or directories (None: the whole repository).
        Returns the job row and whether it was created by this call. Joining a pending job widens it:
        `force` sets its force_reindex, and its paths take in `paths` (or it becomes whole when
        `paths` is None). A running job keeps its flag and paths: the row says so, and the caller
        says so (or, a watcher, sends its paths again once the job ends).
        """
        with self.transaction() as cur:
            cur.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project_id,))
            cur.execute(
                f"""INSERT INTO indexing_jobs (project_id, repo_path, repo_name, force_reindex, connection_id,
                        progress_message, paths)
                    VALUES (%s, %s, %s, %s, %s, 'Waiting for a worker', %s)
                    ON CONFLICT (project_id, repo_path) WHERE status IN ('pending', 'running') DO NOTHING
                    RETURNING {JOB_COLUMNS}""",
                (project_id, repo_path, repo_name, force, connection_id, paths),
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
            if existing is not None and existing["status"] == "pending":
                # A job that has not started yet can still honour force_reindex and more paths; a running
                # one cannot (some of its batches may be done), so its flag and paths stay.
                cur.execute(
                    f"""UPDATE indexing_jobs SET force_reindex = force_reindex OR %s,
                            paths = CASE WHEN paths IS NULL OR %s::text[] IS NULL THEN NULL
                                         ELSE ARRAY(SELECT DISTINCT unnest(paths || %s::text[]) ORDER BY 1) END
                        WHERE id = %s AND status = 'pending' RETURNING {JOB_COLUMNS}""",
                    (force, paths, paths, existing["job_id"]),
                )
                existing = cur.fetchone() or existing
        if existing is None:  # the active job finished between our insert and select: try again
            return self.create_job(project_id, repo_path, repo_name, force, connection_id, paths)
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
