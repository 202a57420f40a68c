"""Durable jobs: per-batch progress (resume where a lost lease stopped), jobs waiting for a slot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE indexing_batches
    ADD COLUMN files_done integer NOT NULL DEFAULT 0,
    ADD COLUMN progress_at timestamptz;
COMMENT ON COLUMN indexing_batches.files_done IS
    'Files of the batch already processed: a batch taken over after a lost lease resumes here.';
COMMENT ON COLUMN indexing_batches.progress_at IS
    'Last time a file of the batch was processed; the job timeout measures from it, not from lease renewals.';
COMMENT ON COLUMN indexing_batches.attempts IS
    'Claims so far (retries and rescues); past the limit the reaper fails the batch and its job.';

ALTER TABLE indexing_jobs ADD COLUMN deferred_at timestamptz;
COMMENT ON COLUMN indexing_jobs.deferred_at IS
    'Set while a pending job waits for a free slot (MAX_CONCURRENT_INDEXING_JOBS); the reaper re-sends it.';
CREATE INDEX indexing_jobs_finished_idx ON indexing_jobs (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
"""

DOWNGRADE = """
DROP INDEX IF EXISTS indexing_jobs_finished_idx;
ALTER TABLE indexing_jobs DROP COLUMN IF EXISTS deferred_at;
ALTER TABLE indexing_batches DROP COLUMN IF EXISTS files_done, DROP COLUMN IF EXISTS progress_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
