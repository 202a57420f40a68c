"""Everything codesearch stores: pgvector, the dramatiq-pg queue, the index, and indexing jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import dramatiq_pg
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = "('pending', 'running')"
JOB_STATUSES = "('pending', 'running', 'completed', 'failed', 'cancelled')"

SCHEMA = f"""
CREATE TABLE projects (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    root_path text NOT NULL,
    name text NOT NULL,
    embedding_model text,
    embedding_dim integer,
    last_indexed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, root_path)
);
COMMENT ON COLUMN repositories.embedding_model IS
    'Embedder that produced every vector of this repository; searching with another one is refused.';

CREATE TABLE files (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id uuid NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    path text NOT NULL,
    language text NOT NULL,
    size_bytes bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    content_hash text NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, path)
);
COMMENT ON COLUMN files.content_hash IS
    'sha256 of the decoded text; decides whether a file whose size or mtime moved really changed.';

CREATE TABLE chunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id bigint NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    repository_id uuid NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    path text NOT NULL,
    language text NOT NULL,
    symbol text,
    kind text,
    start_line integer NOT NULL CHECK (start_line >= 1),
    end_line integer NOT NULL,
    content text NOT NULL,
    content_hash text NOT NULL,
    embedding halfvec NOT NULL,
    embedding_model text NOT NULL,
    CHECK (end_line >= start_line)
);
CREATE INDEX chunks_file_idx ON chunks (file_id, start_line);
CREATE INDEX chunks_repository_path_idx ON chunks (repository_id, path text_pattern_ops);
COMMENT ON COLUMN chunks.embedding IS
    'Unit vector from repositories.embedding_model, stored as halfvec: exact scans are ~6x faster than on vector.';

CREATE TABLE indexing_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repository_id uuid REFERENCES repositories(id) ON DELETE SET NULL,
    repo_path text NOT NULL,
    repo_name text NOT NULL,
    project_id text NOT NULL,
    force_reindex boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN {JOB_STATUSES}),
    progress_percentage real NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    progress_message text,
    files_scanned integer,
    files_indexed integer NOT NULL DEFAULT 0,
    files_skipped integer NOT NULL DEFAULT 0,
    chunks_created integer NOT NULL DEFAULT 0,
    batches_total integer,
    batches_done integer NOT NULL DEFAULT 0,
    error_message text,
    error_type text,
    error_traceback text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    worker_task_id text,
    connection_id text
);
CREATE INDEX indexing_jobs_active_idx ON indexing_jobs (created_at) WHERE status IN {ACTIVE};
CREATE UNIQUE INDEX indexing_jobs_one_active_per_repo ON indexing_jobs (project_id, repo_path)
    WHERE status IN {ACTIVE};
CREATE INDEX indexing_jobs_project_created_idx ON indexing_jobs (project_id, created_at DESC);
COMMENT ON TABLE indexing_jobs IS 'One row per indexing request; the aggregator rolls batch results into it.';
COMMENT ON COLUMN indexing_jobs.status IS 'pending -> running -> completed | failed | cancelled (docs/job-states.md).';
COMMENT ON COLUMN indexing_jobs.progress_percentage IS 'Share of discovered files processed; never decreases.';
COMMENT ON COLUMN indexing_jobs.files_scanned IS 'Files discovery found to index; NULL until discovery is done.';
COMMENT ON COLUMN indexing_jobs.files_indexed IS 'Files whose chunks are written (changed or new).';
COMMENT ON COLUMN indexing_jobs.files_skipped IS 'Files left as they were: unchanged, undecodable or unreadable.';
COMMENT ON COLUMN indexing_jobs.chunks_created IS 'Chunks written by this job.';
COMMENT ON COLUMN indexing_jobs.error_traceback IS 'For operators only; never sent to MCP clients.';
COMMENT ON COLUMN indexing_jobs.worker_task_id IS 'Dramatiq message id of the job''s planning message.';
COMMENT ON COLUMN indexing_jobs.connection_id IS 'Caller that started the job (MCP session or CLI), for auditing.';
COMMENT ON COLUMN indexing_jobs.metadata IS 'Free-form facts about the job: skipped files by reason, embedder, settings.';

CREATE TABLE indexing_batches (
    job_id uuid NOT NULL REFERENCES indexing_jobs(id) ON DELETE CASCADE,
    batch_no integer NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN {JOB_STATUSES}),
    files jsonb NOT NULL,
    file_count integer NOT NULL,
    byte_count bigint NOT NULL,
    files_indexed integer NOT NULL DEFAULT 0,
    files_skipped integer NOT NULL DEFAULT 0,
    chunks_created integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    error_type text,
    error_message text,
    error_traceback text,
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (job_id, batch_no)
);
CREATE INDEX indexing_batches_active_idx ON indexing_batches (job_id) WHERE status IN {ACTIVE};
COMMENT ON TABLE indexing_batches IS 'One row per file batch of a job; its result is what the aggregator sums.';
COMMENT ON COLUMN indexing_batches.files IS 'The batch''s files as [path, size, mtime_ns] triples.';
"""

DROP = """
DROP TABLE IF EXISTS indexing_batches;
DROP TABLE IF EXISTS indexing_jobs;
DROP TABLE IF EXISTS chunks;
DROP TABLE IF EXISTS files;
DROP TABLE IF EXISTS repositories;
DROP TABLE IF EXISTS projects;
DROP SCHEMA IF EXISTS dramatiq CASCADE;
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    bind = op.get_bind()
    exists = bind.exec_driver_sql("SELECT to_regclass('dramatiq.queue')").scalar()
    if exists is None:
        # dramatiq-pg's own DDL; it is not idempotent (CREATE TYPE), hence the check above.
        op.execute(dramatiq_pg.generate_init_sql())
    op.execute(SCHEMA)


def downgrade() -> None:
    # The vector extension stays: other schemas in the same database may use it.
    op.execute(DROP)
