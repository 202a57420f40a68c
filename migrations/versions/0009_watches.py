"""Watched repositories, and jobs restricted to some paths.

`repository_watches` holds one row per repository a user asked to keep fresh (`codesearch watch`,
`watch: true`). A worker process owns a watch through a lease (`owner`, `lease_expires_at`), as
batches are owned: a live owner renews it, a dead one's lease runs out and another process takes
the watch over. A stopped watch keeps its row with the reason (`unwatch`, a vanished directory).

`indexing_jobs.paths` restricts a job to some root-relative files or directories (a watcher's
changes); NULL is the whole repository, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE indexing_jobs ADD COLUMN paths text[];

CREATE TABLE repository_watches (
    project_id text NOT NULL REFERENCES projects (id),
    repo_path text NOT NULL,
    repo_name text NOT NULL,
    status text NOT NULL DEFAULT 'watching' CHECK (status IN ('watching', 'stopped')),
    owner text,
    lease_expires_at timestamptz,
    requested_at timestamptz NOT NULL DEFAULT now(),
    owned_since timestamptz,
    last_change_at timestamptz,
    last_job_id uuid,
    up_to_date_at timestamptz,
    stopped_at timestamptz,
    stopped_reason text,
    PRIMARY KEY (project_id, repo_path)
);
CREATE INDEX repository_watches_claim_idx ON repository_watches (lease_expires_at) WHERE status = 'watching';
"""

DOWNGRADE = """
DROP TABLE IF EXISTS repository_watches;
ALTER TABLE indexing_jobs DROP COLUMN IF EXISTS paths;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
