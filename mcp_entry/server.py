"""The MCP server: six tools over the domain, served on stdio or streamable HTTP."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from domain import jobs
from domain import search as search_domain
from domain.embedders import get_embedder
from domain.errors import CodesearchError
from domain.estimate import estimate
from domain.models import IndexEstimate, JobList, JobState, JobStatus, SearchResponse, StartedJob
from domain.settings import Settings, get_settings
from domain.store import get_store

log = logging.getLogger(__name__)
T = TypeVar("T")
ProjectId = Annotated[str | None, Field(description="Project to use; the configured default project when omitted.")]
JobId = Annotated[str, Field(description="A job id returned by start_indexing_background.")]
RepoPath = Annotated[str, Field(description="Absolute path of the repository directory to index.")]
POLL_INTERVAL_S = 0.5

INSTRUCTIONS = """Search code in indexed repositories. Index a repository once with
start_indexing_background (or index_repository to wait), poll get_indexing_status, then search_code
with a natural-language description or an identifier."""


def tool_edge(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn domain errors into tool errors with their message; anything else into a short internal error.

    The traceback of an unexpected error is logged here, never sent to the client.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except CodesearchError as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(f"internal error ({type(exc).__name__}); see the server log") from None

    return wrapper


def build_server(settings: Settings | None = None) -> MCPServer:
    """The MCP server with every tool registered, against the configured database and broker."""
    import actors  # configures the broker; the server only sends messages
    from actors.broker import DATABASE_URL

    settings = settings or get_settings()
    store = get_store(DATABASE_URL)
    server: MCPServer = MCPServer(name="codesearch", instructions=INSTRUCTIONS)
    project = functools.partial(_project, settings)

    def start(repo_path: str, project_id: str | None, force_reindex: bool, connection: str) -> tuple[JobStatus, bool]:
        status, created = jobs.create_job(store, repo_path, project(project_id), force_reindex, connection)
        if created:
            actors.enqueue_job(store, status.job_id)
        return status, created

    @server.tool()
    @tool_edge
    def start_indexing_background(repo_path: RepoPath, project_id: ProjectId = None,
                                  force_reindex: bool = False) -> StartedJob:
        """Start indexing a repository in the background; returns at once with the job id to poll."""
        return _started(*start(repo_path, project_id, force_reindex, "mcp"), force_reindex)

    @server.tool()
    @tool_edge
    def get_indexing_status(job_id: JobId, project_id: ProjectId = None) -> JobStatus:
        """Progress, counts, timestamps and any error of an indexing job."""
        return jobs.get_job(store, job_id, _optional_project(project_id))

    @server.tool()
    @tool_edge
    def cancel_indexing_background(job_id: JobId, project_id: ProjectId = None) -> JobStatus:
        """Cancel a pending or running job; workers stop before their next file and write nothing more."""
        return jobs.cancel_job(store, job_id, _optional_project(project_id))

    @server.tool()
    @tool_edge
    def list_indexing_jobs(project_id: ProjectId = None, status: JobState | None = None,
                           limit: Annotated[int, Field(ge=1, le=500)] = 20) -> JobList:
        """Recent indexing jobs, newest first, optionally of one project and one status."""
        return JobList(jobs=jobs.list_jobs(store, _optional_project(project_id), status, limit))

    @server.tool()
    @tool_edge
    def estimate_indexing(repo_path: RepoPath) -> IndexEstimate:
        """Dry run before indexing: files, bytes, estimated chunks and embedding time by top-level
        directory, and what the ignore rules would skip and why. Writes and embeds nothing."""
        return estimate(settings, repo_path)

    @server.tool()
    async def index_repository(ctx: Context, repo_path: RepoPath, project_id: ProjectId = None,
                               force_reindex: bool = False,
                               timeout_s: Annotated[float, Field(gt=0, le=3600)] = 600) -> JobStatus:
        """Index a repository and wait: sends progress notifications, returns the final status, or the
        still-running status (with its job_id) when timeout_s passes first."""
        status, _ = await anyio.to_thread.run_sync(tool_edge(start), repo_path, project_id, force_reindex, "mcp")
        deadline = time.monotonic() + timeout_s
        while not jobs.is_final(status.status) and time.monotonic() < deadline:
            await ctx.report_progress(status.progress_percentage, 100, status.progress_message)
            await anyio.sleep(POLL_INTERVAL_S)
            status = await anyio.to_thread.run_sync(tool_edge(jobs.get_job), store, status.job_id)
        await ctx.report_progress(status.progress_percentage, 100, status.progress_message)
        return status

    @server.tool()
    @tool_edge
    def search_code(query: Annotated[str, Field(description="What the code does, or an identifier.")],
                    project_id: ProjectId = None, limit: Annotated[int, Field(ge=1, le=50)] = 10,
                    file_type: Annotated[str | None, Field(description="File extension, e.g. 'py'.")] = None,
                    directory: Annotated[str | None, Field(description="Path prefix relative to the repository root.")] = None,
                    repository: Annotated[str | None, Field(description="Repository name or absolute path.")] = None,
                    ) -> SearchResponse:
        """Find the code that best matches a query in the project's indexed repositories."""
        return search_domain.search(store, get_embedder(settings), query, project(project_id), limit,
                                    file_type, directory, repository)

    return server


def _project(settings: Settings, project_id: str | None) -> str:
    return project_id if project_id is not None and project_id.strip() else settings.default_project


def _optional_project(project_id: str | None) -> str | None:
    return project_id if project_id is not None and project_id.strip() else None


def _started(status: JobStatus, created: bool, force: bool = False) -> StartedJob:
    if created:
        message = f"Indexing job {status.job_id} queued; poll get_indexing_status for progress."
    else:
        message = f"Job {status.job_id} for this repository is already {status.status}; returning it."
        if force and not status.force_reindex:
            message += " force_reindex was not applied: the job was already running; start again when it ends."
    return StartedJob(job_id=status.job_id, status=status.status, project_id=status.project_id, message=message)
