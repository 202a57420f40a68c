"""Chunks are embedded with their enclosing definitions' first lines: old vectors are re-made.

The text an embedder reads for a chunk (`indexing.embedded_texts`) now carries, after the path and
the symbol, the first line of each definition that encloses the chunk (a method's class header, a
window's function signature). Vectors of the old text still answer queries, but rank worse than
the new ones would, so every file is marked changed: the next indexing job of each repository
re-chunks and re-embeds it (the embedding cache is keyed by the exact text, so nothing old is
reused by mistake). The stored content and lexemes are unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
UPDATE files SET mtime_ns = -1, content_hash = '';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # The old text's vectors are gone; marking files changed again re-makes them with the code then run.
    op.execute(UPGRADE)
