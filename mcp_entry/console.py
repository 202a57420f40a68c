"""What the CLI shows: job progress bars, job tables and search results (rich)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain import jobs, watching
from domain import search as search_domain
from domain.embedders import get_embedder
from domain.models import IndexEstimate, JobList, JobStatus, SearchResponse, WatchInfo
from domain.settings import Settings
from domain.store import Store, get_store

POLL_INTERVAL_S = 0.5
# How long a new job may sit unclaimed before we say no worker is consuming the queue. Planning
# messages are normally taken within a second by a live worker.
NO_WORKER_AFTER_S = 5.0
err = Console(stderr=True)


def _store() -> Store:
    """The store of the database the workers use (`database_url`, as actors.broker resolves it), without
    importing the broker: Dramatiq's import was ~60 ms of every `codesearch search`."""
    from domain.database import database_url
    from domain.settings import get_settings

    return get_store(database_url(get_settings()))


def start(path: str, project: str, force: bool) -> JobStatus:
    """Create (or join) the job for a repository and enqueue it when new."""
    import actors

    from domain.settings import get_settings

    store = _store()
    status, created = jobs.create_job(store, path, project, force, "cli", get_settings().allowed_root_paths)
    if created:
        actors.enqueue_job(store, status.job_id)
    return status


def wait(status: JobStatus, quiet: bool = False) -> JobStatus:
    """Poll until the job ends, drawing a progress bar on stderr unless quiet."""
    store = _store()
    started = time.monotonic()
    warned = False
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=err, disable=quiet)
    with progress:
        task = progress.add_task(f"indexing {status.repo_name}", total=100, detail="")
        while not jobs.is_final(status.status):
            progress.update(task, completed=status.progress_percentage, detail=status.progress_message or "")
            if not warned and time.monotonic() - started > NO_WORKER_AFTER_S and _unclaimed(store, status):
                warned = True
                err.print("[yellow]No worker has picked this job up yet: is one running? "
                          "Start one with `codesearch worker` (or `codesearch up`).[/]")
            time.sleep(POLL_INTERVAL_S)
            status = jobs.get_job(store, status.job_id)
        progress.update(task, completed=status.progress_percentage, detail=status.progress_message or "")
    if not quiet:
        print_status(status)
    return status


def _unclaimed(store: Store, status: JobStatus) -> bool:
    if status.status != "pending":
        return False
    task_id = store.job_task_id(status.job_id)
    return task_id is not None and store.queue_state(task_id) == "queued"


def get(job_id: str) -> JobStatus:
    return jobs.get_job(_store(), job_id)


def cancel(job_id: str) -> JobStatus:
    return jobs.cancel_job(_store(), job_id)


def listing(project: str | None, status: str | None, limit: int) -> JobList:
    store = _store()
    return JobList(jobs=jobs.list_jobs(store, project, status, limit), watches=watching.watches(store, project))


def watch(path: str, project: str, on: bool) -> WatchInfo:
    """Start (or stop) watching a repository.

    Raises:
        InvalidInput: a bad path or project. NotFound: stopping a watch that does not exist.
    """
    from domain.settings import get_settings

    store = _store()
    if on:
        return watching.watch(store, path, project, get_settings().allowed_root_paths)
    return watching.unwatch(store, path, project)


def workers_alive() -> int:
    from actors.rescue import HEARTBEAT_MAX_AGE_S

    return len(_store().live_workers(HEARTBEAT_MAX_AGE_S))


def print_watch(info: WatchInfo, workers: int | None = None) -> None:
    out = Console(file=sys.stdout, highlight=False)
    if info.status == "stopped":
        out.print(f"not watching {escape(info.repo_path)} (project {info.project_id}): {info.stopped_reason}")
        return
    owner = f"watched by {info.owner}" if info.owner else "a running worker takes it within seconds"
    out.print(f"watching {escape(info.repo_path)} (project {info.project_id}): {owner}")
    if workers == 0:
        err.print("[yellow]No worker is running: start one with `codesearch worker` (or `codesearch up`); "
                  "it takes the watch and indexes what changed first.[/]")


def search(settings: Settings, query: str, project: str, limit: int, file_type: str | None,
           directory: str | None, repository: str | None, mode: str = "hybrid",
           language: str | None = None) -> SearchResponse:
    return search_domain.search(_store(), get_embedder(settings), query, project, limit, file_type, directory,
                                repository, mode, language)


def print_status(status: JobStatus) -> None:
    out = Console(file=sys.stdout)
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(status.status, "cyan")
    out.print(f"[{colour}]{status.status}[/] job {status.job_id} ({status.repo_path}, project {status.project_id})")
    out.print(f"  {status.progress_percentage:.0f}%  {status.progress_message or ''}")
    out.print(f"  files scanned {status.files_scanned}, indexed {status.files_indexed}, "
              f"skipped {status.files_skipped}, chunks {status.chunks_created}")
    if status.error_message:
        out.print(f"  [red]{status.error_type}: {status.error_message}[/]")


def print_jobs(listing: JobList) -> None:
    table = Table("job", "status", "progress", "files", "chunks", "repository", "created")
    for j in listing.jobs:
        repo = j.repo_path + (f" ({j.scoped_paths} changed paths)" if j.scoped_paths is not None else "")
        table.add_row(j.job_id, j.status, f"{j.progress_percentage:.0f}%", str(j.files_indexed), str(j.chunks_created),
                      repo, j.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    out = Console(file=sys.stdout)
    out.print(table)
    if listing.watches:
        watches = Table("watched repository", "project", "status", "owner", "up to date at", title="watches")
        for w in listing.watches:
            state = w.status if w.status == "watching" else f"stopped: {w.stopped_reason}"
            watches.add_row(w.repo_path, w.project_id, state, w.owner or "-",
                            w.up_to_date_at.strftime("%Y-%m-%d %H:%M:%S") if w.up_to_date_at else "-")
        out.print(watches)


def print_results(response: SearchResponse) -> None:
    out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    for hit in response.results:
        where = escape(f"{hit.repository}/{hit.file_path}:{hit.start_line}-{hit.end_line}")
        symbol = escape(f"  {hit.kind} {hit.symbol}") if hit.symbol else ""
        out.print(f"[bold]{where}[/]{symbol}  score {hit.score:.3f}", markup=True)
        for line in hit.content.split("\n")[:8]:
            out.print(f"    {line}", markup=False)
    out.print(f"{len(response.results)} results ({response.mode}) in {response.latency_ms:.0f} ms")


def print_estimate(estimate: IndexEstimate) -> None:
    out = Console(file=sys.stdout, highlight=False)
    table = Table("directory", "files", "bytes", "chunks", "embedding", title=estimate.repo_path)
    for d in estimate.by_directory:
        table.add_row(d.directory, str(d.files), _size(d.bytes), str(d.estimated_chunks),
                      _duration(d.estimated_embedding_seconds))
    table.add_row("[bold]total[/]", str(estimate.files), _size(estimate.bytes), str(estimate.estimated_chunks),
                  _duration(estimate.estimated_embedding_seconds))
    out.print(table)
    out.print(f"embedding time assumes {estimate.embedding_chunks_per_second:g} chunks/s ({estimate.embedder} "
              "embedder); unchanged files and cached vectors cost nothing on a re-index")
    for reason, count in sorted(estimate.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        out.print(f"skipped {count} {reason}: {estimate.skip_reasons.get(reason, '')}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
