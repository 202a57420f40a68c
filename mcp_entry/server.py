"""The MCP server: the tools over the domain, served on stdio or streamable HTTP."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
import pydantic_core
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import TextContent
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from domain import health as health_domain
from domain import jobs, projects, watching
from domain import search as search_domain
from domain.embedders import get_embedder
from domain.errors import CodesearchError
from domain.estimate import estimate
from domain.models import IndexEstimate, JobList, JobState, JobStatus, SearchResponse, StartedJob
from domain.paths import is_inside_any
from domain.projects import ProjectList, ProjectResolution, RepositoryList
from domain.secrets import SecretPolicy
from domain.settings import Settings, get_settings
from domain.store import get_store
from monitoring.server import ServerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")
ProjectId = Annotated[str | None, Field(description=(
    "Project to use. When omitted, tools that index, search or list repositories resolve it (client roots' "
    ".codesearch.toml, the repository's, else the default project; see project_resolution in the result); "
    "tools that read jobs look in every project."))]
JobId = Annotated[str, Field(description="A job id returned by start_indexing_background.")]
RepoPath = Annotated[str, Field(description="Absolute path of the repository directory to index.")]
Watch = Annotated[bool | None, Field(description=(
    "true: keep the repository's index fresh as its files change (one watcher in the deployment, run by a "
    "worker); false: stop watching it; omitted: leave its watch as it is."))]
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


class CodesearchServer(MCPServer):
    """MCPServer that counts every tool call and error (validation errors included) in its metrics, and
    resolves the project of tools that work in one (domain/projects.py), saying so in the result."""

    def __init__(self, metrics: ServerMetrics, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics, self.codesearch_settings = metrics, settings
        self._slots: anyio.CapacityLimiter | None = None
        #: Loads what the first search would (set by `build_server`); see `warm_up`.
        self.warm_up: Callable[[], None] = lambda: None

    @property
    def slots(self) -> anyio.CapacityLimiter:
        """The places of `server_concurrency` tool calls at once; the rest queue first come, first served.

        With every call at once, the cores are shared among all of them and a costly search is slowed by
        every other; in turn, each call waits about as long and then runs at full speed."""
        if self._slots is None:  # made in the event loop that uses it
            self._slots = anyio.CapacityLimiter(self.codesearch_settings.server_concurrency or os.cpu_count() or 1)
        return self._slots

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = name if self._tool_manager.get_tool(name) is not None else "unknown"
        self.metrics.tool_calls.labels(tool).inc()
        try:
            roots = await self._roots(name, arguments, context)  # may wait on the client: before taking a place
            # A tool that waits for a job takes a place only while it works (index_repository).
            async with self.place() if name not in WAITING_TOOLS else contextlib.nullcontext():
                resolution = await self._resolve_project(name, arguments, roots)
                if resolution is not None:
                    arguments = {**arguments, "project_id": resolution.project_id}
                result = await super().call_tool(name, arguments, context)
        except Exception:
            self.metrics.tool_errors.labels(tool).inc()
            raise
        if getattr(result, "is_error", False):
            self.metrics.tool_errors.labels(tool).inc()
        elif resolution is not None:
            _attach_resolution(result, resolution)
        return result

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """One of `slots` for the block, counted in `codesearch_tool_calls_waiting` until it is free."""
        self.metrics.tool_calls_waiting.inc()
        try:
            await self.slots.acquire()
        finally:
            self.metrics.tool_calls_waiting.dec()
        try:
            yield
        finally:
            self.slots.release()

    async def _roots(self, name: str, arguments: dict[str, Any], context: Any) -> list[Path]:
        """The client's roots when `_resolve_project` needs them: a project tool without an explicit project."""
        explicit = arguments.get("project_id")
        if name not in PROJECT_TOOLS or (explicit is not None and not isinstance(explicit, str)):
            return []
        return [] if explicit and explicit.strip() else await client_roots(context)

    async def _resolve_project(self, name: str, arguments: dict[str, Any],
                               roots: list[Path]) -> ProjectResolution | None:
        if name not in PROJECT_TOOLS:
            return None
        explicit = arguments.get("project_id")
        if explicit is not None and not isinstance(explicit, str):
            return None  # argument validation reports it
        settings = self.codesearch_settings
        repo = _allowed_repo(arguments.get("repo_path"), settings) if PROJECT_TOOLS[name] else None
        try:
            return await anyio.to_thread.run_sync(projects.resolve, explicit, roots, repo, settings.default_project)
        except CodesearchError as exc:
            raise ToolError(str(exc)) from None


#: Tools that wait (for an indexing job) between their calls into the database.
WAITING_TOOLS = frozenset({"index_repository"})
#: Tools that work in one project; True when the repository's own .codesearch.toml counts too.
PROJECT_TOOLS = {"start_indexing_background": True, "index_repository": True, "search_code": False,
                 "list_repositories": False}
ROOTS_TIMEOUT_S = 5.0


async def client_roots(context: Any) -> list[Path]:
    """The client's workspace roots (file:// URIs), or none when it has no roots capability."""
    session = getattr(getattr(context, "request_context", None), "session", None) if context is not None else None
    caps = getattr(session, "client_capabilities", None)
    if session is None or caps is None or caps.roots is None or not getattr(session, "can_send_request", True):
        return []
    try:
        with warnings.catch_warnings():  # deprecated by protocol 2026-07-28, still what clients send today
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            with anyio.fail_after(ROOTS_TIMEOUT_S):
                listed = await session.list_roots()
    except Exception as exc:  # a client that cannot answer simply has no roots for us
        log.info("could not list the client's roots: %s", type(exc).__name__)
        return []
    paths = []
    for root in listed.roots:
        uri = urlsplit(str(root.uri))
        if uri.scheme == "file" and uri.path:
            paths.append(Path(url2pathname(uri.path)))
    return paths


def _allowed_repo(raw: object, settings: Settings) -> Path | None:
    if not isinstance(raw, str) or "\x00" in raw or not raw.startswith("/"):
        return None
    path = Path(raw)
    return path if is_inside_any(path, settings.allowed_root_paths) else None


def _attach_resolution(result: Any, resolution: ProjectResolution) -> None:
    """Add `project_resolution` to a successful result's structured content (and its JSON text)."""
    content = getattr(result, "structured_content", None)
    if not isinstance(content, dict):
        return
    content["project_resolution"] = resolution.model_dump(mode="json")
    # As MCPServer writes the text of every other result (pydantic's encoder: json.dumps with an indent
    # runs in pure Python, 7x slower on a search's 12 KB).
    result.content = [TextContent(type="text", text=pydantic_core.to_json(content, indent=2, fallback=str).decode())]


def build_server(settings: Settings | None = None) -> CodesearchServer:
    """The MCP server with every tool registered, against the configured database and broker.

    Its `/metrics` route (streamable HTTP only) serves `server.metrics`.
    """
    import actors  # configures the broker; the server only sends messages
    from actors.broker import DATABASE_URL
    from actors.indexing import QUEUE
    from actors.rescue import HEARTBEAT_MAX_AGE_S

    settings = settings or get_settings()
    store = get_store(DATABASE_URL)
    metrics = ServerMetrics()
    metrics.collect_database(store, HEARTBEAT_MAX_AGE_S, (QUEUE,))
    server = CodesearchServer(metrics, settings, name="codesearch", instructions=INSTRUCTIONS)
    project = functools.partial(_project, settings)

    @server.resource("codesearch://health", name="health", mime_type="application/json",
                     description="What `codesearch doctor` reports: database, pgvector, migrations, workers, "
                                 "embedder, embedded server; each failed check names its remedy.")
    async def health() -> str:
        report = await anyio.to_thread.run_sync(health_domain.diagnose, settings, HEARTBEAT_MAX_AGE_S)
        return report.model_dump_json()

    @server.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=content_type)

    def start(repo_path: str, project_id: str | None, force_reindex: bool, connection: str,
              watch: bool | None = None) -> tuple[JobStatus, bool]:
        status, created = jobs.create_job(store, repo_path, project(project_id), force_reindex, connection,
                                          settings.allowed_root_paths)
        if created:
            actors.enqueue_job(store, status.job_id)
        if watch is not None:
            status.watch = watching.set_watch(store, status.repo_path, status.project_id, watch,
                                              settings.allowed_root_paths)
        return status, created

    def warm_up() -> None:
        """Load the embedder (the local model takes seconds) and run one search of the project with the
        most chunks, so that clients' first searches do not pay for it (a fresh database connection's
        caches, the term statistics): at 321k chunks a fresh server's first search_code took 35-38 ms
        and the next 10-20; after this warm-up (56-63 ms) the first took 10-12. Never fails: a database
        that is down only means there is nothing to warm."""
        started = time.perf_counter()
        try:
            embedder = get_embedder(settings)
            embedder.embed(["warm up"])
            largest = max(projects.list_projects(store).projects, key=lambda p: p.chunks, default=None)
            if largest is not None and largest.chunks:
                search_domain.search(store, embedder, "warm up", largest.project_id, limit=1)
        except Exception as exc:
            log.info("warm-up skipped: %s", exc)
            return
        log.info("warmed up in %.0f ms", (time.perf_counter() - started) * 1000)

    server.warm_up = warm_up

    @server.tool()
    @tool_edge
    def start_indexing_background(repo_path: RepoPath, project_id: ProjectId = None,
                                  force_reindex: bool = False, watch: Watch = None) -> StartedJob:
        """Start indexing a repository in the background; returns at once with the job id to poll.
        With watch, the repository is then kept fresh as its files change (watch: false stops that)."""
        return _started(*start(repo_path, project_id, force_reindex, "mcp", watch), force_reindex)

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
        return JobList(jobs=jobs.list_jobs(store, _optional_project(project_id), status, limit),
                       watches=watching.watches(store, _optional_project(project_id)))

    @server.tool()
    @tool_edge
    def estimate_indexing(repo_path: RepoPath) -> IndexEstimate:
        """Dry run before indexing: files, bytes, estimated chunks and embedding time by top-level
        directory, and what the ignore rules would skip and why. Writes and embeds nothing."""
        return estimate(settings, repo_path)

    @server.tool()
    async def index_repository(ctx: Context, repo_path: RepoPath, project_id: ProjectId = None,
                               force_reindex: bool = False,
                               timeout_s: Annotated[float, Field(gt=0, le=3600)] = 600,
                               watch: Watch = None) -> JobStatus:
        """Index a repository and wait: sends progress notifications, returns the final status, or the
        still-running status (with its job_id) when timeout_s passes first. With watch, the repository is
        then kept fresh as its files change (watch: false stops that)."""
        async with server.place():  # a place only while it reads, not while it waits
            status, _ = await anyio.to_thread.run_sync(tool_edge(start), repo_path, project_id, force_reindex, "mcp",
                                                       watch)
        deadline = time.monotonic() + timeout_s
        while not jobs.is_final(status.status) and time.monotonic() < deadline:
            await ctx.report_progress(status.progress_percentage, 100, status.progress_message)
            await anyio.sleep(POLL_INTERVAL_S)
            async with server.place():
                status = await anyio.to_thread.run_sync(tool_edge(jobs.get_job), store, status.job_id)
        await ctx.report_progress(status.progress_percentage, 100, status.progress_message)
        return status

    @server.tool()
    @tool_edge
    def list_projects() -> ProjectList:
        """Every project with its repository, file and chunk counts, last indexing and active jobs."""
        return projects.list_projects(store)

    @server.tool()
    @tool_edge
    def list_repositories(project_id: ProjectId = None) -> RepositoryList:
        """The project's repositories: file and chunk counts, last indexed, git commit, files changed since."""
        return projects.list_repositories(store, project(project_id),
                                          SecretPolicy.configured(settings.secret_files, settings.secret_files_allow),
                                          settings.max_file_bytes)

    @server.tool()
    @tool_edge
    @metrics.timed_search
    def search_code(query: Annotated[str, Field(description="What the code does, or an identifier (parseHttpDate, Console.print, Foo::bar).")],
                    project_id: ProjectId = None, limit: Annotated[int, Field(ge=1, le=50)] = 10,
                    file_type: Annotated[str | None, Field(description="File extension, e.g. 'py'.")] = None,
                    directory: Annotated[str | None, Field(description="Path prefix relative to the repository root.")] = None,
                    repository: Annotated[str | None, Field(description="Repository name or absolute path.")] = None,
                    mode: Annotated[str, Field(description=(
                        "hybrid (default: meaning and identifiers fused), semantic (meaning only) or "
                        "lexical (identifiers and words only)."))] = "hybrid",
                    language: Annotated[str | None, Field(description="Only this language, e.g. 'python', 'go', 'tsx'.")] = None,
                    ) -> SearchResponse:
        """Find the code that best matches a query in the project's indexed repositories: describe what the
        code does, or name an identifier (its definition ranks first)."""
        return search_domain.search(store, get_embedder(settings), query, project(project_id), limit,
                                    file_type, directory, repository, mode, language)

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
    if status.watch is not None:
        message += (" Watching the repository: changes are indexed as they happen." if status.watch.status == "watching"
                    else " The repository is no longer watched.")
    return StartedJob(job_id=status.job_id, status=status.status, project_id=status.project_id, message=message,
                      watch=status.watch)
