"""Overviews: project and repository summaries, and the operations snapshot of metrics and health."""

from __future__ import annotations

from domain.store.base import Connections, Row


class OverviewQueries(Connections):
    """Summaries across jobs, files and chunks."""

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

    def indexed_paths(self, project_id: str, root_path: str, paths: list[str]) -> set[str]:
        """Of root-relative files or directories, those the index holds a file at or below."""
        rows = self._all(
            """SELECT p FROM unnest(%s::text[]) p
               WHERE EXISTS (SELECT 1 FROM files f JOIN repositories r ON r.id = f.repository_id
                             WHERE r.project_id = %s AND r.root_path = %s
                               AND (f.path = p OR starts_with(f.path, p || '/')))""",
            (paths, project_id, root_path),
        )
        return {str(r["p"]) for r in rows}

    # --- operations (metrics and health) ----------------------------------------------------------

    def operations_snapshot(self, worker_max_age_s: float) -> Row:
        """What the scrape-time metrics collector reports, read in one transaction.

        Keys: jobs_by_status {status: count}, pending_batches, oldest_pending_job_age_s (0 when none),
        running_jobs [{job_id, project_id, repo_name, progress_percentage, idle_s}] where idle_s is the
        time since the job last showed activity (start, a batch finishing or a batch heartbeat),
        queue_depth {queue_name: queued messages}, live_workers, watches {owned|unowned|stopped: count}.
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
            cur.execute(
                """SELECT CASE WHEN status = 'stopped' THEN 'stopped'
                               WHEN owner IS NOT NULL AND lease_expires_at > now() THEN 'owned'
                               ELSE 'unowned' END AS state, count(*) AS n
                   FROM repository_watches GROUP BY 1""")
            watches = {r["state"]: int(r["n"]) for r in cur.fetchall()}
        return {"jobs_by_status": jobs, "pending_batches": pending_batches, "oldest_pending_job_age_s": oldest,
                "running_jobs": running, "queue_depth": queues, "live_workers": live, "watches": watches}
