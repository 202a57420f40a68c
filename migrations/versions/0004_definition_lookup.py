"""Definition lookup: find the chunks whose symbol names an identifier, without scanning.

Lexical search ranks a bounded set of candidates chosen by term rarity; a name used in thousands of
chunks is then no candidate of its own, yet its definition must still come first. This index answers
"which chunks define X" by the end of the symbol (qualified names end with the plain one), compared
as search compares names: lowercased, underscores dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE INDEX chunks_symbol_suffix_idx ON chunks (reverse(lower(replace(symbol, '_', ''))) text_pattern_ops)
    WHERE symbol IS NOT NULL;
"""

DOWNGRADE = """
DROP INDEX IF EXISTS chunks_symbol_suffix_idx;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
