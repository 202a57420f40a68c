"""Watches: which repositories are kept fresh, and which worker process watches each (a lease)."""

from __future__ import annotations

from domain.store.base import Connections, Row

WATCH_COLUMNS = """w.project_id, w.repo_path, w.repo_name, w.status, w.owner, w.lease_expires_at, w.requested_at,
    w.owned_since, w.last_change_at, w.last_job_id::text AS last_job_id, w.up_to_date_at, w.stopped_at,
    w.stopped_reason"""


class WatchQueries(Connections):
    """Queries of `repository_watches`. A watch is `watching` (owned or waiting for an owner) or `stopped`
    (by `unwatch` or by its watcher, with the reason); ownership changes are guarded by the owner."""

    def watch_repository(self, project_id: str, repo_path: str, repo_name: str) -> Row:
        """Ask for a repository to be watched (again); a watch already running keeps its owner."""
        with self.transaction() as cur:
            cur.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project_id,))
            cur.execute(
                f"""INSERT INTO repository_watches AS w (project_id, repo_path, repo_name) VALUES (%s, %s, %s)
                    ON CONFLICT (project_id, repo_path) DO UPDATE SET
                        requested_at = CASE WHEN w.status = 'stopped' THEN now() ELSE w.requested_at END,
                        status = 'watching', stopped_at = NULL, stopped_reason = NULL
                    RETURNING {WATCH_COLUMNS}""",
                (project_id, repo_path, repo_name),
            )
            return dict(cur.fetchone())

    def unwatch_repository(self, project_id: str, repo_path: str, reason: str) -> Row | None:
        """Stop a watch (its owner notices at its next renewal); None when it was not watching."""
        return self._one(
            f"""UPDATE repository_watches w SET status = 'stopped', stopped_at = now(), stopped_reason = %s,
                    owner = NULL, lease_expires_at = NULL
                WHERE project_id = %s AND repo_path = %s AND status = 'watching' RETURNING {WATCH_COLUMNS}""",
            (reason, project_id, repo_path),
        )

    def stop_watch(self, project_id: str, repo_path: str, owner: str, reason: str) -> bool:
        """A watcher gives up its watch for good (the directory vanished): stopped, with the reason."""
        row = self._one(
            """UPDATE repository_watches SET status = 'stopped', stopped_at = now(), stopped_reason = %s,
                    owner = NULL, lease_expires_at = NULL
                WHERE project_id = %s AND repo_path = %s AND owner = %s AND status = 'watching'
                RETURNING project_id""",
            (reason, project_id, repo_path, owner),
        )
        return row is not None

    def claim_watches(self, owner: str, lease_seconds: float, limit: int) -> list[Row]:
        """Take up to `limit` watches that have no live owner (none yet, or a lease run out)."""
        if limit <= 0:
            return []
        return self._all(
            f"""UPDATE repository_watches w SET owner = %(owner)s, owned_since = now(),
                    lease_expires_at = now() + make_interval(secs => %(lease)s)
                FROM (SELECT project_id, repo_path FROM repository_watches
                      WHERE status = 'watching' AND (owner IS NULL OR lease_expires_at < now())
                      ORDER BY requested_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) free
                WHERE w.project_id = free.project_id AND w.repo_path = free.repo_path
                RETURNING {WATCH_COLUMNS}""",
            {"owner": owner, "lease": lease_seconds, "limit": limit},
        )

    def renew_watches(self, owner: str, lease_seconds: float) -> set[tuple[str, str]]:
        """Extend this owner's leases; the (project, path) of the watches it still owns."""
        rows = self._all(
            """UPDATE repository_watches SET lease_expires_at = now() + make_interval(secs => %s)
                WHERE owner = %s AND status = 'watching' RETURNING project_id, repo_path""",
            (lease_seconds, owner),
        )
        return {(str(r["project_id"]), str(r["repo_path"])) for r in rows}

    def release_watches(self, owner: str) -> int:
        """Give up every watch of an owner that stops, so another process takes them at once."""
        rows = self._all(
            """UPDATE repository_watches SET owner = NULL, lease_expires_at = NULL
                WHERE owner = %s AND status = 'watching' RETURNING project_id""",
            (owner,),
        )
        return len(rows)

    def record_watch(self, project_id: str, repo_path: str, owner: str, *, changed: bool = False,
                     job_id: str | None = None, up_to_date: bool = False) -> bool:
        """Note on an owned watch that files changed, that a job was sent for them, or that the index
        has caught up with every change seen (as of now); False when the watch is no longer ours."""
        row = self._one(
            """UPDATE repository_watches SET
                    last_change_at = CASE WHEN %s THEN now() ELSE last_change_at END,
                    last_job_id = coalesce(%s::uuid, last_job_id),
                    up_to_date_at = CASE WHEN %s THEN now() ELSE up_to_date_at END
                WHERE project_id = %s AND repo_path = %s AND owner = %s AND status = 'watching'
                RETURNING project_id""",
            (changed, job_id, up_to_date, project_id, repo_path, owner),
        )
        return row is not None

    def watches(self, project_id: str | None = None) -> list[Row]:
        """Watches, of one project when given, by project and path."""
        return self._all(
            f"""SELECT {WATCH_COLUMNS} FROM repository_watches w
                WHERE %(project)s::text IS NULL OR w.project_id = %(project)s
                ORDER BY w.project_id, w.repo_path""",
            {"project": project_id},
        )

    def get_watch(self, project_id: str, repo_path: str) -> Row | None:
        return self._one(f"SELECT {WATCH_COLUMNS} FROM repository_watches w WHERE project_id = %s AND repo_path = %s",
                         (project_id, repo_path))
