"""Pydantic models shared by the MCP tools and the CLI's `--json` output."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from domain.errors import InvalidInput

JobState = Literal["pending", "running", "completed", "failed", "cancelled"]
FINAL_STATES: tuple[JobState, ...] = ("completed", "failed", "cancelled")
PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class WatchInfo(BaseModel):
    """A repository kept fresh by watch mode (`codesearch watch`, `watch: true`)."""

    project_id: str
    repo_path: str
    repo_name: str
    status: Literal["watching", "stopped"]
    owner: str | None = Field(description=(
        "The worker process (host:pid) watching it; null while it waits for a worker to take it."))
    requested_at: datetime
    last_change_at: datetime | None = Field(description="When the watcher last saw a relevant file change.")
    last_job_id: str | None = Field(description="The last job the watcher sent.")
    up_to_date_at: datetime | None = Field(description=(
        "When the index last caught up with every change the watcher had seen (the completion of its job)."))
    stopped_at: datetime | None
    stopped_reason: str | None = Field(description="Why it stopped: unwatched, or the directory vanished.")


class JobStatus(BaseModel):
    """Everything a client may know about an indexing job (never the traceback)."""

    job_id: str
    status: JobState
    project_id: str
    repo_path: str
    repo_name: str
    force_reindex: bool
    progress_percentage: float
    progress_message: str | None
    files_scanned: int | None = Field(description="Files found to index; null until discovery is done.")
    files_indexed: int
    files_skipped: int
    chunks_created: int
    batches_total: int | None
    batches_done: int
    error_type: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    scoped_paths: int | None = Field(default=None, description=(
        "How many files or directories the job was limited to (a watcher's changes); null: the whole repository."))
    requested_by: str | None = Field(default=None, validation_alias=AliasChoices("connection_id", "requested_by"),
                                     description="Who asked for the job: mcp, cli or watch.")
    watch: WatchInfo | None = Field(default=None, description=(
        "The repository's watch, when it is or was watched: up_to_date_at says when it was last brought up to date."))


class StartedJob(BaseModel):
    """What starting a job returns; `status` is the job's status now (an existing active job is reused)."""

    job_id: str
    status: JobState
    project_id: str
    message: str
    watch: WatchInfo | None = Field(default=None, description="The repository's watch, when watch was given.")


class JobList(BaseModel):
    jobs: list[JobStatus]
    watches: list[WatchInfo] = Field(default_factory=list, description="Watched (and stopped) repositories.")


class SearchHit(BaseModel):
    file_path: str = Field(description="Path relative to the repository root.")
    repository: str = Field(description="Repository name (its directory name).")
    repository_path: str
    language: str
    symbol: str | None = None
    kind: str | None = None
    start_line: int
    end_line: int
    score: float = Field(description=(
        "Fused score in (0, 1], higher is better, same meaning in every mode: each ranking's score normalised "
        "over its candidates, weighted and summed; 1 is best in every ranking the mode uses (and, in hybrid and "
        "lexical modes, defining a name the query mentions)."))
    semantic_score: float | None = Field(default=None, description="Cosine similarity of the embeddings, if ranked.")
    lexical_score: float | None = Field(default=None, description="BM25F score of the lexical match, if ranked.")
    content: str
    context_before: str = Field(description="Up to a few lines before start_line, from the index.")
    context_after: str = Field(description="Up to a few lines after end_line, from the index.")
    indexed_at: datetime | None = Field(default=None, description=(
        "When this file's content was last written to the index: how fresh the result is."))


class SearchResponse(BaseModel):
    query: str
    project_id: str
    mode: str = Field(description="hybrid, semantic or lexical.")
    results: list[SearchHit]
    latency_ms: float
    embedding_ms: float | None = Field(default=None, description="Time spent embedding the query (part of latency_ms).")


def parse_job_id(raw: str) -> str:
    """Canonical form of a job id.

    Raises:
        InvalidInput: not a UUID.
    """
    try:
        return str(uuid.UUID(raw.strip()))
    except (ValueError, AttributeError):
        raise InvalidInput(f"job_id {raw!r} is not a valid job id (expected a UUID like 123e4567-e89b-12d3-a456-426614174000)") from None


def parse_project_id(raw: str) -> str:
    """A project id as stored.

    Raises:
        InvalidInput: empty, too long, or with characters other than letters, digits, '.', '_', '-'.
    """
    if not PROJECT_ID.match(raw):
        raise InvalidInput(
            f"project_id {raw!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return raw


class DirectoryEstimate(BaseModel):
    """The cost of one top-level directory ("." for files at the root)."""

    directory: str
    files: int = 0
    bytes: int = 0
    estimated_chunks: int = 0
    estimated_embedding_seconds: float = 0.0


class IndexEstimate(BaseModel):
    """A dry run of indexing a repository: nothing is read into the index or embedded."""

    repo_path: str
    embedder: str = Field(description="The configured embedder kind the time estimate assumes.")
    embedding_chunks_per_second: float = Field(description="Assumed throughput of that embedder.")
    files: int
    bytes: int
    estimated_chunks: int
    estimated_embedding_seconds: float = Field(
        description="Upper bound: unchanged files and chunks with cached vectors cost nothing on a re-index.")
    by_directory: list[DirectoryEstimate]
    skipped_by_reason: dict[str, int] = Field(description="Entries the ignore rules skipped, by reason.")
    skip_reasons: dict[str, str] = Field(description="What each skip reason means.")
