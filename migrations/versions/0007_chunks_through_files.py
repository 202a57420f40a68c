"""Chunks reach their repository through their file only: the second foreign key is dropped.

`chunks.repository_id` stays (search filters on it without a join), but its foreign key to
`repositories` checked, for every chunk row written, what the row's file already guarantees: a chunk
is written with its file's repository, and deleting a repository deletes its files, whose deletion
deletes their chunks (ON DELETE CASCADE on `chunks.file_id`). The check cost ~4 us of PostgreSQL's
CPU a row, a lookup and a row lock on `repositories` (docs/benchmarks.md, B1).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE chunks DROP CONSTRAINT IF EXISTS chunks_repository_id_fkey;
COMMENT ON COLUMN chunks.repository_id IS
    'The repository of the chunk''s file (written with it; no foreign key: the file''s cascades delete the chunk).';
"""

DOWNGRADE = """
COMMENT ON COLUMN chunks.repository_id IS NULL;
ALTER TABLE chunks ADD CONSTRAINT chunks_repository_id_fkey
    FOREIGN KEY (repository_id) REFERENCES repositories(id) ON DELETE CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
