"""Search: the ranking queries, the vector index and hit details."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.extras
import psycopg2.pool

from domain import lexical
from domain.lexical import QueryTerm
from domain.store.base import Connections, Row, _dicts
from domain.store.chunks import encode_vector

#: Lexical candidates scored exactly by BM25F, per requested result (`lexical_search`): 2 against 4 left
#: the dev questions unchanged and took lexical p95 46 -> 34 ms at 112k chunks of 1,024 tokens.
SHORTLIST_PER_RESULT = 2
# The planner's row count of `chunks` (kept by ANALYZE and VACUUM; 0 before either ran).
_CHUNKS_ESTIMATE = "(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'chunks'::regclass)"
#: What fusion needs of a ranked chunk; the rest (`_HIT_COLUMNS`) is read for the results only.
_RANK_COLUMNS = "c.id, c.file_id, c.path, c.symbol, c.kind, c.start_line, c.end_line"
_HIT_COLUMNS = """c.id, c.file_id, c.path, r.name AS repository, r.root_path AS repository_path, c.language,
    c.symbol, c.kind, c.start_line, c.end_line, c.content, f.indexed_at"""
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
def _presence(count: int) -> str:
    """SQL of a candidate's (`hit`) cheap score: each query word's IDF times 3 when the symbol holds
    one of its forms, plus 1 when the chunk does (parameters of `_presence_params`)."""
    return " + ".join(f"%(idf{n})s * ((hit.lexemes @@ %(named{n})s::tsquery)::int * 3 + "
                      f"(hit.lexemes @@ %(any{n})s::tsquery)::int)" for n in range(count)) or "0"


def _presence_params(terms: Sequence[QueryTerm]) -> dict[str, object]:
    out: dict[str, object] = {}
    for n, t in enumerate(terms):
        out |= {f"idf{n}": t.idf, f"any{n}": lexical.tsquery_any(t.lexemes),
                f"named{n}": " | ".join(lexical.quoted(x) + ":A" for x in t.lexemes)}
    return out


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
        """Refresh the planner's statistics of `chunks`."""
        with self.transaction() as cur:
            cur.execute("ANALYZE chunks")

    def flush_lexeme_index(self) -> int:
        """Move the GIN lexeme index's pending list (recent inserts, kept aside for fast writes) into
        the index; returns the pending pages merged."""
        row = self._one("SELECT gin_clean_pending_list('chunks_lexemes_idx'::regclass) AS pages")
        return int(row["pages"]) if row else 0

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

    def lexical_search(self, repositories: Sequence[str], match: str, terms: Sequence[QueryTerm], limit: int,
                       filters: SearchFilters, cap: int, average_length: float) -> list[Row]:
        """Chunks matching the `match` tsquery (at most `cap` of them), ordered by BM25F over `terms`,
        as ranking rows (`_RANK_COLUMNS`, `score`).

        A term's frequency in a chunk is read from the chunk's tsvector (`lexical.document` gives a
        lexeme one position an occurrence, weighted A in the symbol, B in the path, D in the body),
        summed over the term's lexemes (its forms) and weighted by field (`lexical.FIELD_WEIGHTS`).
        The length is the chunk's count of distinct lexemes against `average_length`
        (`term_statistics`). `cap` bounds the work when the candidate estimate of `lexical.plan` is off.

        Reading every lexeme of every candidate is the cost (116k lexemes of 2,000 candidates: 57 of a
        71 ms query at 321k chunks), so the candidates are first ordered by which query words they hold
        at all, in the symbol or anywhere, by IDF (`_presence`: a lookup in each sorted tsvector), and
        only the SHORTLIST_PER_RESULT x `limit` best are scored exactly.
        """
        a, b, d = lexical.FIELD_WEIGHTS
        pairs = [(t.key, lexeme, t.idf) for t in terms for lexeme in t.lexemes]
        with self.reading(rows_as_dicts=False) as cur:  # SET LOCAL holds for this execute's statements
            # The planner prices an OR of many rare lexemes (a word's forms) at the sum of its guesses
            # for each and chose a sequential scan of every chunk: 1.2 s at 321k chunks, not 10 ms.
            cur.execute(
            f"""SET LOCAL enable_seqscan = off;
                WITH q AS (SELECT * FROM unnest(%(keys)s::text[], %(lexemes)s::text[], %(idf)s::float8[])
                           AS q(key, lexeme, idf)),
                hit AS (SELECT c.id, c.lexemes FROM chunks c
                        WHERE c.lexemes @@ %(match)s::tsquery AND {_FILTERS} LIMIT %(cap)s),
                short AS (SELECT hit.id, hit.lexemes FROM hit ORDER BY {_presence(len(terms))} DESC, hit.id
                          LIMIT %(shortlist)s),
                freq AS (
                    SELECT short.id, q.key, q.idf, length(short.lexemes) AS len,
                           sum(%(a)s * cardinality(array_positions(u.weights, 'A'))
                               + %(b)s * cardinality(array_positions(u.weights, 'B'))
                               + %(d)s * cardinality(array_positions(u.weights, 'D'))) AS tf
                    FROM short CROSS JOIN LATERAL unnest(short.lexemes) AS u(lexeme, positions, weights)
                    JOIN q ON q.lexeme = u.lexeme
                    GROUP BY short.id, q.key, q.idf, len),
                ranked AS (
                    SELECT freq.id, sum(freq.idf * freq.tf * (%(k1)s + 1)
                                        / (freq.tf + %(k1)s * (1 - %(bl)s + %(bl)s * freq.len / %(avg)s))) AS score
                    FROM freq GROUP BY freq.id ORDER BY score DESC, freq.id LIMIT %(limit)s)
                SELECT {_RANK_COLUMNS}, ranked.score FROM ranked JOIN chunks c ON c.id = ranked.id
                ORDER BY ranked.score DESC, c.id""",
            {"match": match, "keys": [p[0] for p in pairs], "lexemes": [p[1] for p in pairs],
             "idf": [p[2] for p in pairs], "a": a, "b": b, "d": d, "k1": lexical.BM25_K1,
             "bl": lexical.BM25_B, "avg": max(average_length, 1.0), "limit": limit, "cap": cap,
             "shortlist": max(limit, SHORTLIST_PER_RESULT * limit), **_presence_params(terms),
             **filters.params(repositories)})
            return _dicts(cur)

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

    def first_windows(self, definitions: Sequence[tuple[int, str]]) -> dict[tuple[int, str], Row]:
        """The first chunk (lowest start line) of each (file id, symbol), as ranking rows."""
        rows = self._all(
            f"""SELECT DISTINCT ON (c.file_id, c.symbol) {_RANK_COLUMNS}
                FROM chunks c JOIN unnest(%s::bigint[], %s::text[]) AS d(file_id, symbol)
                  ON c.file_id = d.file_id AND c.symbol = d.symbol
                ORDER BY c.file_id, c.symbol, c.start_line""",
            ([d[0] for d in definitions], [d[1] for d in definitions]), reading=True)
        return {(r["file_id"], r["symbol"]): r for r in rows}

    def hit_details(self, ids: Sequence[int], spans: Sequence[tuple[int, int, int]]) -> tuple[dict[int, Row], list[Row]]:
        """The columns of the chunks a search returns (`_HIT_COLUMNS` by id), and the chunks overlapping
        each (file_id, first_line, last_line) span, for context lines: after fusion, so that content
        is read for the results and not for every candidate of every ranking. A chunk re-indexed
        away in between is missing from the result, which the caller skips."""
        if not ids:
            return {}, []
        with self.reading(rows_as_dicts=False) as cur:
            cur.execute(f"SELECT {_HIT_COLUMNS} FROM chunks c JOIN repositories r ON r.id = c.repository_id "
                        "JOIN files f ON f.id = c.file_id WHERE c.id = ANY(%s)", (list(ids),))
            details = {row["id"]: row for row in _dicts(cur)}
            cur.execute(
                """SELECT DISTINCT c.file_id, c.start_line, c.end_line, c.content
                   FROM chunks c JOIN unnest(%s::bigint[], %s::int[], %s::int[]) AS s(file_id, lo, hi)
                     ON c.file_id = s.file_id AND c.start_line <= s.hi AND c.end_line >= s.lo""",
                ([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans]),
            )
            return details, _dicts(cur)
