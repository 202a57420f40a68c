"""Lexical search, batch leases, worker heartbeats and the embedding cache.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE chunks ADD COLUMN lexemes tsvector NOT NULL DEFAULT ''::tsvector;
CREATE INDEX chunks_lexemes_idx ON chunks USING gin (lexemes);
-- Existing chunks are line windows without lexemes: make the next job re-chunk every file.
UPDATE files SET mtime_ns = -1, content_hash = '';
COMMENT ON COLUMN chunks.lexemes IS
    'simple-config tsvector: path segments and symbol (weight A), identifiers and their split parts (D).';

ALTER TABLE indexing_batches
    ADD COLUMN lease_owner text,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX indexing_batches_lease_idx ON indexing_batches (lease_expires_at) WHERE status = 'running';
COMMENT ON COLUMN indexing_batches.lease_owner IS 'Worker (host:pid:thread) holding the batch while it runs.';
COMMENT ON COLUMN indexing_batches.lease_expires_at IS 'The reaper returns a running batch to pending after this.';

CREATE TABLE worker_heartbeats (
    worker_id text PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE worker_heartbeats IS 'One row per live worker process, renewed every few seconds.';

CREATE TABLE embedding_cache (
    model text NOT NULL,
    text_hash text NOT NULL,
    embedding halfvec NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_hash)
);
COMMENT ON TABLE embedding_cache IS 'Vectors by (embedder, sha256 of embedded text): unchanged text is never embedded twice.';
"""

DOWNGRADE = """
DROP TABLE IF EXISTS embedding_cache;
DROP TABLE IF EXISTS worker_heartbeats;
DROP INDEX IF EXISTS indexing_batches_lease_idx;
ALTER TABLE indexing_batches DROP COLUMN IF EXISTS lease_owner, DROP COLUMN IF EXISTS heartbeat_at,
    DROP COLUMN IF EXISTS lease_expires_at;
DROP INDEX IF EXISTS chunks_lexemes_idx;
ALTER TABLE chunks DROP COLUMN IF EXISTS lexemes;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
