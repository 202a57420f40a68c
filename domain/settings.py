"""Settings from the environment and `.env`; every name here is listed in `.env.example`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.discovery import Rules

EmbedderName = Literal["local", "ollama", "hashing"]


def _env(name: str) -> AliasChoices:
    # Only the documented variable name: a field named `home` must never read $HOME.
    return AliasChoices(name)


def _issue_env(name: str) -> AliasChoices:
    # Names the issue tracker and operators use bare; the prefixed form matches every other setting.
    return AliasChoices(f"CODESEARCH_{name}", name)


class Settings(BaseSettings):
    """All runtime settings. Environment variables win over `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("codesearch"),
        validation_alias=_env("CODESEARCH_HOME"),
    )
    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    embedder: EmbedderName = Field(default="local", validation_alias=_env("CODESEARCH_EMBEDDER"))
    ollama_host: str = Field(default="http://127.0.0.1:11434", validation_alias=_env("OLLAMA_HOST"))
    ollama_model: str = Field(default="nomic-embed-text", validation_alias=_env("CODESEARCH_OLLAMA_MODEL"))
    # An Ollama call that takes longer than this is treated as a transient failure and retried;
    # the ollama client's own default is no timeout at all, which would hang a batch forever.
    ollama_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias=_env("CODESEARCH_OLLAMA_TIMEOUT_SECONDS"))
    default_project: str = Field(default="default", min_length=1, validation_alias=_env("CODESEARCH_DEFAULT_PROJECT"))
    max_file_bytes: int = Field(default=1024 * 1024, gt=0, validation_alias=_env("CODESEARCH_MAX_FILE_BYTES"))
    # A file whose first 8 KiB hold a longer line is taken for minified or generated and skipped.
    max_line_chars: int = Field(default=1000, ge=80, validation_alias=_env("CODESEARCH_MAX_LINE_CHARS"))
    # Comma-separated gitignore-style globs on root-relative paths. Exclude wins; when include is
    # set, only files matching it are indexed. A project's own `.codesearchignore` is read as well.
    include_globs: str = Field(default="", validation_alias=_env("CODESEARCH_INCLUDE"))
    exclude_globs: str = Field(default="", validation_alias=_env("CODESEARCH_EXCLUDE"))
    batch_max_files: int = Field(default=32, gt=0, validation_alias=_env("CODESEARCH_BATCH_MAX_FILES"))
    batch_max_bytes: int = Field(default=512 * 1024, gt=0, validation_alias=_env("CODESEARCH_BATCH_MAX_BYTES"))
    # A job with the files for it is cut into at least this many batches (smaller than the caps above),
    # so every worker thread has a share: twice the threads of the default Procfile (2 processes x 4).
    # With the local model a 60-file job was 2 batches, and the pipeline reached 0.80 of the model's
    # own throughput (docs/benchmarks.md, B2).
    batch_min_count: int = Field(default=16, ge=1, validation_alias=_env("CODESEARCH_BATCH_MIN_COUNT"))
    embed_batch_size: int = Field(default=8, gt=0, le=256, validation_alias=_env("CODESEARCH_EMBED_BATCH_SIZE"))
    # Threads of each local-model inference in a worker (0: onnxruntime's default, one per core). The
    # worker processes together run several inferences at once, so threads within one inference only
    # compete with the others: 2 x 4 workers embedded 20.4 chunks/s with the default and 22.3 with 1
    # (docs/benchmarks.md, B2). The server and the CLI embed one query at a time and keep the default.
    worker_model_threads: int = Field(default=1, ge=0, le=256,
                                      validation_alias=_env("CODESEARCH_WORKER_MODEL_THREADS"))
    # Whether a worker's narrow inference may take every core while the rest of the host leaves them
    # idle (the last batch of a job, one process at work): see domain.embedders.SpareCores.
    worker_model_widen: bool = Field(default=True, validation_alias=_env("CODESEARCH_WORKER_MODEL_WIDEN"))
    # Local-model inferences one worker process runs at once (0: cores / 2, at least 1, for the
    # Procfile's two processes). Its other threads chunk, write and wait meanwhile. With 2 x 4 workers
    # on 2 cores, one at a time embedded as fast as four (34.42 against 34.33 chunks/s) in about half
    # the memory (peak RSS 617/634 against 844/1,165 MiB; docs/benchmarks.md, B2).
    worker_model_inferences: int = Field(default=0, ge=0, le=256,
                                         validation_alias=_env("CODESEARCH_WORKER_MODEL_INFERENCES"))
    # Below this many chunks of one embedder an exact scan is fast (28 ms at 100k, FACTS.md)
    # and inserts stay cheap (HNSW inserts: ~550 rows/s); a job that reaches it has a worker build the index.
    hnsw_min_chunks: int = Field(default=100_000, ge=0, validation_alias=_env("CODESEARCH_HNSW_MIN_CHUNKS"))
    # A definition up to this many tokens (and chunk_max_lines lines) is one chunk; the local model reads
    # a chunk's first 256 word pieces (its signature, docstring and start), the lexical index all of it.
    # 1024 against 256, 512, 768 and 1536 on the dev questions of benchmarks/corpora.py: symbol MRR@10
    # .726 against .589, .675, .701 and .676 (docs/benchmarks.md, tenth session).
    chunk_max_tokens: int = Field(default=1024, ge=32, validation_alias=_env("CODESEARCH_CHUNK_MAX_TOKENS"))
    chunk_max_lines: int = Field(default=60, ge=4, validation_alias=_env("CODESEARCH_CHUNK_MAX_LINES"))
    chunk_max_chars: int = Field(default=1500, ge=200, validation_alias=_env("CODESEARCH_CHUNK_MAX_CHARS"))
    chunk_overlap_lines: int = Field(default=4, ge=0, validation_alias=_env("CODESEARCH_CHUNK_OVERLAP_LINES"))
    # Security (docs/security.md). Repository paths must resolve inside one of these directories
    # (os.pathsep-separated); unset means the user's home directory. An HTTP server bound to a
    # non-loopback address refuses to start unless this and CODESEARCH_HTTP_TOKEN are set explicitly.
    allowed_roots: str | None = Field(default=None, validation_alias=_env("CODESEARCH_ALLOWED_ROOTS"))
    http_token: SecretStr | None = Field(default=None, validation_alias=_env("CODESEARCH_HTTP_TOKEN"))
    # Host header values the HTTP transport accepts besides loopback ones ("host:port" or "host:*"),
    # comma-separated; guards against DNS rebinding. Defaults to the bound host on any port.
    http_allowed_hosts: str | None = Field(default=None, validation_alias=_env("CODESEARCH_HTTP_ALLOWED_HOSTS"))
    # File-name globs, comma-separated, added to (or removed from) the built-in secret list
    # (domain/secrets.py); matching files are never read and are reported as skipped "secret".
    secret_files: str = Field(default="", validation_alias=_env("CODESEARCH_SECRET_FILES"))
    secret_files_allow: str = Field(default="", validation_alias=_env("CODESEARCH_SECRET_FILES_ALLOW"))
    # Tool calls the MCP server runs at once (0: one per core); the others wait their turn, first come
    # first served. Ten HTTP clients searching 321k chunks on 2 cores, all at once against two at a
    # time: p95 154 / 186 -> 137 / 142 ms, p95 / mean 1.67 / 1.61 -> 1.26 / 1.23 (docs/benchmarks.md,
    # ninth session).
    server_concurrency: int = Field(default=0, ge=0, le=64, validation_alias=_env("CODESEARCH_SERVER_CONCURRENCY"))
    http_host: str = Field(default="127.0.0.1", validation_alias=_env("CODESEARCH_HTTP_HOST"))
    http_port: int = Field(default=8765, ge=1, le=65535, validation_alias=_env("CODESEARCH_HTTP_PORT"))
    worker_processes: int = Field(default=2, ge=1, validation_alias=_env("CODESEARCH_WORKER_PROCESSES"))
    worker_threads: int = Field(default=4, ge=1, validation_alias=_env("CODESEARCH_WORKER_THREADS"))
    # Worker metrics: one exposition server per worker group (per `dramatiq actors`), serving the
    # metrics of all its processes from one prometheus_client multiprocess directory (by default one
    # per port). Two groups on one host need different ports. Dramatiq's variable names are honoured too.
    worker_metrics_host: str = Field(default="127.0.0.1", validation_alias=AliasChoices(
        "CODESEARCH_WORKER_METRICS_HOST", "dramatiq_prom_host"))
    worker_metrics_port: int = Field(default=9191, ge=1, le=65535, validation_alias=AliasChoices(
        "CODESEARCH_WORKER_METRICS_PORT", "dramatiq_prom_port"))
    worker_metrics_dir: Path | None = Field(default=None, validation_alias=AliasChoices(
        "CODESEARCH_WORKER_METRICS_DIR", "dramatiq_prom_db"))

    @property
    def allowed_root_paths(self) -> list[Path]:
        """The resolved directories repositories must be inside (the home directory by default)."""
        if self.allowed_roots is None:
            return [Path.home().resolve()]
        return [Path(p.strip()).expanduser().resolve() for p in self.allowed_roots.split(os.pathsep) if p.strip()]

    @property
    def metrics_dir(self) -> Path:
        """The worker group's prometheus_client multiprocess directory (cleared when a group starts)."""
        # Keyed by port: a second group on the host already needs its own port, and gets its own directory.
        return self.worker_metrics_dir or self.home / "worker-metrics" / str(self.worker_metrics_port)
    # A running job that processes no file for this long is failed by the reaper ("JobTimeout"). Lease
    # renewals do not count as progress, so a batch stuck on a hung embedder trips it. Must exceed the
    # slowest single file (a 1 MiB file is ~700 chunks: ~35 s with the local model) plus retry backoff.
    indexing_job_timeout_seconds: float = Field(
        default=1800, gt=0, validation_alias=_issue_env("INDEXING_JOB_TIMEOUT_SECONDS"))
    # Jobs beyond this many wait as `pending` with a message saying so; the reaper starts them as
    # slots free up (within one reaper interval, 5 s).
    max_concurrent_indexing_jobs: int = Field(
        default=4, ge=1, validation_alias=_issue_env("MAX_CONCURRENT_INDEXING_JOBS"))
    # Finished jobs (and their batch rows) older than this are deleted by the reaper.
    job_status_retention_days: float = Field(
        default=30, gt=0, validation_alias=_issue_env("JOB_STATUS_RETENTION_DAYS"))
    # A claimed batch is held this long without renewal. Each worker process renews its threads'
    # leases every 5 s (actors/rescue.py RESCUE_INTERVAL_S) and with every group of files written,
    # so this must stay well above 5 s; after a kill -9 the batch waits up to this long (+5 s) before
    # it is re-sent.
    batch_lease_seconds: float = Field(default=15, ge=6, validation_alias=_env("CODESEARCH_BATCH_LEASE_SECONDS"))
    # Watch mode (domain/watching.py). A watcher waits until the files have been quiet this long before
    # it sends their changes as one job: an editor's save (write, rename, chmod) is one change, and a
    # `git checkout` that writes files back to back is one job however many files it touches.
    watch_debounce_ms: int = Field(default=300, ge=10, le=60_000, validation_alias=_env("CODESEARCH_WATCH_DEBOUNCE_MS"))
    # A watch is owned by one worker process for this long without renewal; the owner renews it every
    # third of it. After a kill -9 another worker process takes the watch over within about this long
    # (+ a third), and first re-indexes what changed meanwhile, so nothing is lost, only later.
    watch_lease_seconds: float = Field(default=15, ge=1.5, validation_alias=_env("CODESEARCH_WATCH_LEASE_SECONDS"))
    # Repositories one worker process watches at most (one inotify watcher thread each).
    watch_max_per_process: int = Field(default=64, ge=1, validation_alias=_env("CODESEARCH_WATCH_MAX_PER_PROCESS"))
    # Claims of one batch (Dramatiq retries and reaper rescues together) before it fails its job.
    batch_max_attempts: int = Field(default=6, ge=1, validation_alias=_env("CODESEARCH_BATCH_MAX_ATTEMPTS"))

    @property
    def discovery_rules(self) -> Rules:
        """What discovery keeps, from these settings."""
        return Rules(max_file_bytes=self.max_file_bytes, max_line_chars=self.max_line_chars,
                     include=_globs(self.include_globs), exclude=_globs(self.exclude_globs))

    @property
    def model_inferences(self) -> int:
        """`worker_model_inferences`, with 0 resolved to this machine's cores / 2 (at least 1)."""
        if self.worker_model_inferences:
            return self.worker_model_inferences
        return max(1, affinity_cores() // 2)

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its data."""
        return self.home / "pg"


def affinity_cores() -> int:
    """Cores this process may be scheduled on (its CPU affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _globs(raw: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in raw.split(",") if g.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
