"""Rust methods are named by their type, no symbol holds type arguments, and "::" scopes find their
headers: Rust, Go and C++ files are re-made.

A Rust impl's methods were named by the impl, type arguments and all (`impl Iterator for
PeekNth<I>::next`, `impl GroupInner<K, I, F>::step`); merged chunks join their symbols with ", ", so
the arguments' commas split such a name in three, and a query for `PeekNth::next` named nothing. Now
they are `PeekNth::next`, the impl's own lines keep `impl Iterator for PeekNth`, and Go's methods of a
generic type drop its parameters (`List[K, V]` -> `List.Push`). And the embedded text of a chunk
whose scopes are written with "::" (Rust, C++: `geo::Shape::area`) now holds its enclosing
definitions' first lines, as "." scopes' always did. The qualified symbol is stored, ranked and
embedded, so the Rust, Go and C++ files are marked changed: the next indexing job of each repository
re-chunks them, and re-embeds the chunks whose embedded text changed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
UPDATE files SET mtime_ns = -1, content_hash = '' WHERE language IN ('rust', 'go', 'cpp');
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # The chunks are the new chunker's; marking the files changed again re-makes them with the code then run.
    op.execute(UPGRADE)
