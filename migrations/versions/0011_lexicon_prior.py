"""The lexicon prior: how many chunks of code at large hold each lexeme (`domain/store/lexicon.py`).

BM25 weighed query words by each project's own document frequencies alone, which in a project of a few
hundred chunks say little about which words are common in code. Search now blends them with these
counts (`domain.lexical.PRIOR_CHUNKS`). They come from domain/data/lexicon_prior.tsv.gz (built by
benchmarks/lexicon_prior.py); a rebuilt file needs a migration that loads it anew. Nothing is
re-indexed: the stored chunks and their lexemes are unchanged.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain import lexical

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE lexicon_prior (lexeme text PRIMARY KEY, chunks integer NOT NULL CHECK (chunks >= 0));
                  COMMENT ON TABLE lexicon_prior IS
                      'Chunks of the prior''s sources (benchmarks/lexicon_prior.py) holding each lexeme; '
                      'the empty lexeme''s row: their chunk count.'""")
    table = sa.table("lexicon_prior", sa.column("lexeme", sa.Text), sa.column("chunks", sa.Integer))
    op.bulk_insert(table, [{"lexeme": lexeme, "chunks": chunks} for lexeme, chunks in lexical.prior_counts()])


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS lexicon_prior")
