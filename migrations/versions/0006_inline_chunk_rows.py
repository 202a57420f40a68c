"""Chunk rows stay inline up to a full page: vectors are never moved to the TOAST table.

With the default threshold (~2 kB) a chunk row holding a 768-d halfvec (1.5 kB) had its vector moved
out of line, and an exact semantic scan read it back from the TOAST table row by row: 16.4 ms against
4.7 ms inline over 7,894 rows. Inserts get ~5-12% cheaper too (no compression of `content`); the
heap grows by the compression it no longer gets (docs/benchmarks.md, 2026-11-30).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE chunks SET (toast_tuple_target = 8160);
"""

DOWNGRADE = """
ALTER TABLE chunks RESET (toast_tuple_target);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
