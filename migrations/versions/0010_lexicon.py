"""The lexicon: document frequency per repository and lexeme, for BM25 (`domain/store/lexicon.py`).

Lexical search weighed terms by the planner's statistics of the most common lexemes and counted the
rarer ones through the GIN index on every search (10-40 ms of a first query). The store now keeps,
per repository, how many chunks hold each lexeme, and in the row of the empty lexeme how many chunks
it has and the sum of their lexeme counts. Indexing jobs bring it up to date when they complete;
this migration counts every chunk already stored, so existing repositories need no new job.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE lexicon (
    repository_id uuid NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    lexeme text NOT NULL,
    chunks bigint NOT NULL,
    lexemes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_id, lexeme)
);
COMMENT ON TABLE lexicon IS
    'Chunks of the repository holding each lexeme, as of its last counted chunk (repositories.lexicon_through); '
    'the empty lexeme''s row: the repository''s chunks, and in lexemes the sum of their lexeme counts.';
CREATE TABLE lexicon_changes (
    repository_id uuid NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    lexeme text NOT NULL,
    chunks bigint NOT NULL,
    lexemes bigint NOT NULL DEFAULT 0
);
CREATE INDEX lexicon_changes_repository_idx ON lexicon_changes (repository_id);
COMMENT ON TABLE lexicon_changes IS
    'Counts of counted chunks deleted since the lexicon''s last update (negative), for it to fold in.';
ALTER TABLE repositories ADD COLUMN lexicon_through bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN repositories.lexicon_through IS
    'The highest chunk id the lexicon has counted: later chunks are counted by the next update.';

INSERT INTO lexicon (repository_id, lexeme, chunks)
SELECT c.repository_id, u.lexeme, count(*) FROM chunks c, unnest(tsvector_to_array(c.lexemes)) AS u(lexeme)
GROUP BY c.repository_id, u.lexeme;
INSERT INTO lexicon (repository_id, lexeme, chunks, lexemes)
SELECT c.repository_id, '', count(*), sum(length(c.lexemes)) FROM chunks c GROUP BY c.repository_id;
UPDATE repositories r SET lexicon_through = m.through
FROM (SELECT repository_id, max(id) AS through FROM chunks GROUP BY repository_id) AS m
WHERE m.repository_id = r.id;
"""

DOWNGRADE = """
ALTER TABLE repositories DROP COLUMN IF EXISTS lexicon_through;
DROP TABLE IF EXISTS lexicon_changes;
DROP TABLE IF EXISTS lexicon;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
