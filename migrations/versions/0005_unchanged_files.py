"""Incremental planning: files planning found unchanged are counted on the job, not put in batches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE indexing_jobs ADD COLUMN files_unchanged integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN indexing_jobs.files_unchanged IS
    'Files planning found unchanged (same size and mtime as stored) and put in no batch; aggregation adds '
    'them to files_skipped and to the progress, which it otherwise recomputes from the batch rows.';
"""

DOWNGRADE = """
ALTER TABLE indexing_jobs DROP COLUMN IF EXISTS files_unchanged;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
