"""A long definition's first chunk starts at its head: old chunks are re-made.

A definition too long for one chunk is cut at its statements; its head (doc comment and signature)
used to be a piece of its own, which the chunker then merged into the code above it, so that the
chunk of a definition's signature was mostly another definition's (Go's bodies, one statement_list
deep, were cut only there). Now the first chunk of such a definition starts at its head and holds
the first lines of its body (`chunking._Builder._statements`). Every file is marked changed: the
next indexing job of each repository re-chunks it; chunks whose text did not change reuse their
cached vectors.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
UPDATE files SET mtime_ns = -1, content_hash = '';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # The chunks are the new chunker's; marking files changed again re-makes them with the code then run.
    op.execute(UPGRADE)
