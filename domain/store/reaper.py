"""The reaper's queries: worker heartbeats, expired leases, stranded messages, pruning."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from domain.store.base import Connections, Row


class ReaperQueries(Connections):
    """Queries of workers, the broker's queue, leases and old rows."""

    # --- workers and the broker's queue ---------------------------------------------------

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
