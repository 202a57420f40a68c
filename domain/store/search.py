"""Search: the ranking queries, the vector index, lexeme statistics and hit details."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.extras
import psycopg2.pool

from domain.store.base import Connections, Row, _dicts
from domain.store.chunks import encode_vector

# How long the lexeme statistics of `term_shares` are reused.
TERM_STATS_TTL_S = 60.0
# The planner's row count of `chunks` (kept by ANALYZE and VACUUM; 0 before either ran).
_CHUNKS_ESTIMATE = "(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass)"
#: What fusion needs of a ranked chunk; the rest (`_HIT_COLUMNS`) is read for the results only.
_RANK_COLUMNS = "c.id, c.file_id, c.symbol, c.start_line, c.end_line"
_HIT_COLUMNS = """c.id, c.file_id, c.path, r.name AS repository, r.root_path AS repository_path, c.language,
    c.symbol, c.kind, c.start_line, c.end_line, c.content"""
# LIKE wildcards in user input are escaped by SearchFilters.params, so they match literally.
_FILTERS = """c.repository_id = ANY(%(repositories)s::uuid[])
    AND (%(suffix)s::text IS NULL OR lower(c.path) LIKE '%%' || %(suffix)s ESCAPE '\\')
    AND (%(dir)s::text IS NULL OR c.path LIKE %(dir)s || '%%' ESCAPE '\\')
    AND (%(language)s::text IS NULL OR c.language = %(language)s)"""


@dataclass(frozen=True)
class SearchFilters:
    """Validated filters of a search: file suffix (".py"), directory prefix ("src/"), repository, language.

    The repository filter is applied by `search_scope`; the ranking queries get the ids it returns."""

    suffix: str | None = None
    directory: str | None = None
    repository: str | None = None
    language: str | None = None

    def params(self, repositories: Sequence[str]) -> dict[str, object]:
        return {"repositories": list(repositories), "suffix": _like_literal(self.suffix),
                "dir": _like_literal(self.directory), "language": self.language}
def _vector_index_name(model: str) -> str:
    return "chunks_embedding_hnsw_" + hashlib.sha1(model.encode()).hexdigest()[:12]

def _like_literal(text: str | None) -> str | None:
    """User text for a LIKE pattern, with its wildcards and escape character made literal."""
    if text is None:
        return None
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SearchQueries(Connections):
    """The queries of a search."""

    # --- search ---------------------------------------------------------------------------------

    def search_scope(self, project_id: str, repository: str | None) -> list[Row]:
        """The repositories a search covers (the project's, or the one `repository` names by name or
        root path), with their ids and embedders.

        The ranking queries take these ids as constants rather than joining `repositories`: the
        planner then estimates each repository's share of `chunks` from the column statistics. With
        a join it assumed the average share, and once other projects shared the table it intersected
        every lexical and definition lookup with all of the project's entries of the repository
        index: 15-17 ms of a 20 ms lookup at 321k chunks (docs/benchmarks.md, 2026-12-01)."""
        return self._all(
            """SELECT id::text AS id, name, root_path, embedding_model, embedding_dim FROM repositories
               WHERE project_id = %(project)s
                 AND (%(repo)s::text IS NULL OR name = %(repo)s OR root_path = %(repo)s)
               ORDER BY root_path""",
            {"project": project_id, "repo": repository}, reading=True,
        )

    def estimated_chunks(self) -> float:
        """The planner's row estimate of `chunks` (0 before any VACUUM or ANALYZE)."""
        row = self._one(f"SELECT {_CHUNKS_ESTIMATE} AS n")
        return float(row["n"]) if row else 0.0

    def analyze_chunks(self) -> None:
        """Refresh the statistics of `chunks` (the planner's, and the lexeme shares of `term_shares`)."""
        with self.transaction() as cur:
            cur.execute("ANALYZE chunks")
        self._term_stats = None

    def count_chunks(self, model: str) -> int:
        row = self._one("SELECT count(*) AS n FROM chunks WHERE embedding_model = %s", (model,))
        return int(row["n"]) if row else 0

    def has_vector_index(self, model: str) -> bool:
        row = self._one("SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                        (_vector_index_name(model),))
        return bool(row and row["valid"])

    def ensure_vector_index(self, model: str, dim: int) -> bool:
        """Build the HNSW cosine index over one embedder's vectors, without blocking writers.

        Vectors are stored untyped so that several embedders can share the table; the index is on
        the expression `embedding::halfvec(dim)` for that embedder's rows, which is what
        `semantic_search` orders by. CREATE INDEX CONCURRENTLY lets indexing go on meanwhile; a
        session advisory lock makes one process build it; an invalid leftover of a crashed build is
        dropped first. Returns whether this call built it.
        """
        name = _vector_index_name(model)
        conn = psycopg2.connect(self.url)
        conn.autocommit = True  # CONCURRENTLY cannot run inside a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(hashtext('codesearch.vector-index'))")
                if not cur.fetchone()[0]:
                    return False
                cur.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,))
                found = cur.fetchone()
                if found and found[0]:
                    return False
                if found:
                    cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                cur.execute(
                    f"CREATE INDEX CONCURRENTLY {name} ON chunks "
                    f"USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops) WHERE embedding_model = %s",
                    (model,),
                )
                return True
        finally:
            conn.close()

    def semantic_search(self, repositories: Sequence[str], model: str, vector: Sequence[float], limit: int,
                        filters: SearchFilters) -> list[Row]:
        """Nearest chunks by cosine distance among `repositories` (ids, `search_scope`) and one embedder, as ranking
        rows (`_RANK_COLUMNS`, `distance`, `score`); `hit_details` reads the rest for the rows kept.

        Uses the embedder's HNSW index when the planner prefers it, with iterative scans so that a
        filtered query still finds `limit` rows when they exist. No content is carried through the
        sort: an exact search over 20,100 chunks took 31.2 ms when it carried every row's columns,
        22.9 ms without.
        """
        dim = len(vector)
        distance = f"(c.embedding::halfvec({dim})) <=> %(q)s::halfvec({dim})"
        with self.reading(rows_as_dicts=False) as cur:  # SET LOCAL holds for this execute's statements
            cur.execute(
                f"""SET LOCAL hnsw.iterative_scan = relaxed_order;
                    SELECT set_config('hnsw.ef_search', %(ef)s, true);
                    SELECT {_RANK_COLUMNS}, nearest.distance, 1 - nearest.distance AS score
                    FROM (SELECT c.id, {distance} AS distance
                          FROM chunks c
                          WHERE c.embedding_model = %(model)s AND {_FILTERS}
                          ORDER BY {distance} LIMIT %(limit)s) AS nearest
                    JOIN chunks c ON c.id = nearest.id
                    ORDER BY nearest.distance, c.id""",
                {"q": encode_vector(vector), "model": model, "limit": limit,
                 "ef": str(min(1000, max(40, 2 * limit))),
                 **filters.params(repositories)},
            )
            return _dicts(cur)

    def lexical_search(self, repositories: Sequence[str], match: str, rank: str, limit: int,
                       filters: SearchFilters, cap: int) -> list[Row]:
        """Chunks matching the `match` tsquery (at most `cap` of them), ordered by ts_rank under `rank`,
        as ranking rows (`_RANK_COLUMNS`, `score`).

        ts_rank weighs the symbol over the path over the body and normalises by length. `cap` bounds
        the work when the statistics `term_shares` relies on are missing or stale.
        """
        return self._all(
            f"""SELECT {_RANK_COLUMNS}, ranked.score
                FROM (SELECT hit.id, ts_rank(hit.lexemes, %(rank)s::tsquery, 1) AS score
                      FROM (SELECT c.id, c.lexemes FROM chunks c
                            WHERE c.lexemes @@ %(match)s::tsquery AND {_FILTERS}
                            LIMIT %(cap)s) AS hit
                      ORDER BY score DESC, hit.id LIMIT %(limit)s) AS ranked
                JOIN chunks c ON c.id = ranked.id
                ORDER BY ranked.score DESC, c.id""",
            {"match": match, "rank": rank, "limit": limit, "cap": cap, **filters.params(repositories)},
            reading=True,
        )

    def definitions(self, repositories: Sequence[str], names: Sequence[str], limit: int, filters: SearchFilters,
                    cap: int) -> list[Row]:
        """Chunks of `repositories` whose symbol ends with one of `names` (lowercased, underscores
        dropped), through the symbol-suffix index, as ranking rows; the caller keeps those that really
        define a name ("Server.serve", not "observe").

        Of at most `cap` suffix matches, the `limit` with the shortest symbols are returned: an exact
        name is the shortest symbol that ends with it. The matches are gathered first (MATERIALIZED)
        so that the planner cannot walk the primary key in order hoping to meet them early: it
        misjudges how many symbols end with a name, and that walk took 473 ms at 421k chunks."""
        key = "reverse(lower(replace(c.symbol, '_', '')))"
        ends = " OR ".join(f"{key} LIKE %(name{n})s" for n in range(len(names)))
        return self._all(
            f"""WITH found AS MATERIALIZED (
                    SELECT {_RANK_COLUMNS} FROM chunks c
                    WHERE c.symbol IS NOT NULL AND ({ends}) AND {_FILTERS} LIMIT %(cap)s)
                SELECT found.*, NULL::real AS score FROM found
                ORDER BY length(found.symbol), found.id LIMIT %(limit)s""",
            {**{f"name{n}": f"{_like_literal(name[::-1])}%" for n, name in enumerate(names)},
             "limit": limit, "cap": cap, **filters.params(repositories)},
            reading=True,
        ) if names and repositories else []

    def term_shares(self, terms: Sequence[str]) -> tuple[dict[str, float], float, float]:
        """PostgreSQL's own statistics of the lexeme column (kept by ANALYZE and autovacuum): the share
        of chunks holding each of `terms` that is among the most common lexemes, the smallest share
        it lists (every unlisted term is rarer), and the number of chunks. Before any ANALYZE: ({}, 0, 0).

        The whole list (at most 1,000 lexemes) is read at most once a TERM_STATS_TTL_S: statistics
        only change when the table is analysed, and reading them cost ~1.5 ms of every search. Missing
        statistics are not kept: a first ANALYZE is then used as soon as it is there."""
        now = time.monotonic()
        cached = self._term_stats
        if cached is None or now - cached[0] > TERM_STATS_TTL_S or not cached[1]:
            row = self._one(
                f"""SELECT {_CHUNKS_ESTIMATE} AS chunks,
                          s.most_common_elem_freqs[array_length(s.most_common_elem_freqs, 1) - 2] AS least,
                          (SELECT coalesce(jsonb_object_agg(u.term, u.share), '{{}}')
                           FROM unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                                AS u(term, share) WHERE u.term IS NOT NULL) AS shares
                   FROM (SELECT 1) AS one
                   LEFT JOIN pg_stats s ON s.tablename = 'chunks' AND s.attname = 'lexemes'
                    AND s.schemaname = (SELECT relnamespace::regnamespace::text FROM pg_class
                                        WHERE oid = 'chunks'::regclass)""")
            assert row is not None
            shares = {k: float(v) for k, v in (row["shares"] or {}).items()}
            cached = self._term_stats = (now, shares, float(row["least"] or 0.0), float(row["chunks"]))
        _, shares, least, chunks = cached
        return {t: shares[t] for t in terms if t in shares}, least, chunks

    def hit_details(self, ids: Sequence[int], spans: Sequence[tuple[int, int, int]]) -> tuple[dict[int, Row], list[Row]]:
        """The columns of the chunks a search returns (`_HIT_COLUMNS` by id), and the chunks overlapping
        each (file_id, first_line, last_line) span, for context lines: after fusion, so that content
        is read for the results and not for every candidate of every ranking. A chunk re-indexed
        away in between is missing from the result, which the caller skips."""
        if not ids:
            return {}, []
        with self.reading(rows_as_dicts=False) as cur:
            cur.execute(f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN repositories r ON r.id = c.repository_id "
                        "WHERE c.id = ANY(%s)", (list(ids),))
            details = {row["id"]: row for row in _dicts(cur)}
            cur.execute(
                """SELECT DISTINCT c.file_id, c.start_line, c.end_line, c.content
                   FROM chunks c JOIN unnest(%s::bigint[], %s::int[], %s::int[]) AS s(file_id, lo, hi)
                     ON c.file_id = s.file_id AND c.start_line <= s.hi AND c.end_line >= s.lo""",
                ([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans]),
            )
            return details, _dicts(cur)
