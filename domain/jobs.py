"""Starting, reading, listing and cancelling indexing jobs: what the MCP tools and the CLI share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from domain.errors import Conflict, InvalidInput, NotFound
from domain.models import FINAL_STATES, JobState, JobStatus, WatchInfo, parse_job_id, parse_project_id
from domain.paths import validate_repo_path
from domain.store import Row, Store

JOB_STATES: tuple[str, ...] = get_args(JobState)


def to_status(row: Row) -> JobStatus:
    """The client-facing view of a job row."""
    return JobStatus.model_validate(row)


def create_job(store: Store, repo_path: str, project_id: str, force: bool,
               connection_id: str | None = None,
               allowed_roots: Sequence[Path] | None = None) -> tuple[JobStatus, bool]:
    """Validate and record a job; returns it and whether it is new (a new job must be enqueued).

    An active job for the same repository and project is returned instead of a second one.

    Raises:
        InvalidInput: a bad path (or one outside `allowed_roots`) or project id.
    """
    root = validate_repo_path(repo_path, allowed_roots)
    project = parse_project_id(project_id)
    row, created = store.create_job(project, str(root), root.name or str(root), force, connection_id)
    return to_status(row), created


def get_job(store: Store, job_id: str, project_id: str | None = None) -> JobStatus:
    """Raises: InvalidInput (malformed id), NotFound (no such job in that project)."""
    row = store.get_job(parse_job_id(job_id))
    if row is None or (project_id is not None and row["project_id"] != project_id):
        where = f" in project {project_id!r}" if project_id is not None else ""
        raise NotFound(f"no indexing job {job_id}{where}")
    status = to_status(row)
    watch = store.get_watch(status.project_id, status.repo_path)
    if watch is not None:
        status.watch = WatchInfo.model_validate(watch)
    return status


def cancel_job(store: Store, job_id: str, project_id: str | None = None) -> JobStatus:
    """Raises: InvalidInput, NotFound, Conflict (the job already finished)."""
    current = get_job(store, job_id, project_id)
    row = store.cancel_job(current.job_id)
    if row is None:
        final = get_job(store, job_id, project_id)
        raise Conflict(f"job {final.job_id} is already {final.status}; only pending or running jobs can be cancelled")
    return to_status(row)


def list_jobs(store: Store, project_id: str | None, status: str | None, limit: int) -> list[JobStatus]:
    """Raises: InvalidInput for an unknown status or a limit outside 1..500."""
    if status is not None and status not in JOB_STATES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(JOB_STATES)}")
    if not 1 <= limit <= 500:
        raise InvalidInput(f"limit {limit} is out of range 1..500")
    if project_id is not None:
        parse_project_id(project_id)
    return [to_status(r) for r in store.list_jobs(project_id, status, limit)]


def is_final(state: JobState) -> bool:
    return state in FINAL_STATES
