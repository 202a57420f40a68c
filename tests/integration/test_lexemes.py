"""The tsvector `lexical.document` builds ranks exactly as PostgreSQL's own `to_tsvector` would, for the
queries search ranks with: an OR of terms (`lexical.plan`'s `rank`)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from domain import lexical, search
from domain.pgbinary import tsvector_text
from domain.embedders import make_embedder
from domain.indexing import chunks_of
from domain.settings import Settings
from domain.store import Store
from tests.integration.test_indexing_pipeline import run_job
from tests.support import make_repo

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ["store", "chunk | file", "write | file | store", "job | batch | lease", "vector", "settings | path"]
PARSED = """setweight(to_tsvector('simple', %s), 'A') || setweight(to_tsvector('simple', %s), 'B')
            || to_tsvector('simple', %s)"""


def samples() -> list[tuple[str, str | None, str]]:
    """(path, symbol, content) of every chunk of a few of this project's own files."""
    out = []
    for path in ("domain/store/batches.py", "domain/indexing.py", "README.md"):
        text = (ROOT / path).read_text()
        out += [(path, c.symbol, c.content) for c in chunks_of(Settings(CODESEARCH_CHUNK_MAX_TOKENS=256), path, text)]
    return out


def test_built_lexemes_rank_every_query_as_the_database_parser_would(fresh_db: str) -> None:
    chunks = samples()
    assert len(chunks) > 50
    conn = psycopg2.connect(fresh_db)
    try:
        with conn.cursor() as cur:
            for path, symbol, content in chunks:
                built = tsvector_text(lexical.document(path, symbol, content))
                parts = (" ".join(lexical.terms(symbol or "")), " ".join(lexical.terms(path)),
                         " ".join(lexical.terms(content)))
                cur.execute(f"SELECT length(%s::tsvector) = length({PARSED}), "
                            f"array(SELECT ts_rank(%s::tsvector, q::tsquery, 1) FROM unnest(%s::text[]) q) "
                            f"= array(SELECT ts_rank({PARSED}, q::tsquery, 1) FROM unnest(%s::text[]) q)",
                            (built, *parts, built, QUERIES, *parts, QUERIES))
                same_length, same_ranks = cur.fetchone()
                assert same_length and same_ranks, (path, symbol)
    finally:
        conn.close()


def test_a_term_that_repeats_past_the_position_limit_keeps_as_many_positions_as_to_tsvector(fresh_db: str) -> None:
    content = "retry " * 400
    conn = psycopg2.connect(fresh_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT %s::tsvector::text = to_tsvector('simple', %s)::text",
                        (tsvector_text(lexical.document("", None, content)), " ".join(lexical.terms(content))))
            assert cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("term", ["o'neil", "back\\slash"])
def test_quoted_terms_are_single_lexemes_even_with_quotes_and_backslashes(fresh_db: str, term: str) -> None:
    conn = psycopg2.connect(fresh_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT (%s::tsquery)::text, array_length(tsvector_to_array(%s::tsvector), 1)",
                        (lexical.quoted(term), lexical.quoted(term)))
            text, count = cur.fetchone()
            assert count == 1 and text == lexical.quoted(term)
    finally:
        conn.close()


def test_non_ascii_and_quote_like_code_is_indexed_and_found_by_its_names(fresh_db: str, tmp_path: Path) -> None:
    settings = Settings(CODESEARCH_EMBEDDER="hashing")  # type: ignore[call-arg]
    embedder = make_embedder(settings)
    repo = make_repo(tmp_path / "repo", {
        "greet.py": "def grüße_an(name):\n    return f\"Grüße, {name}! It's \\\\ done\"\n",
        "other.py": "def unrelated():\n    return 'x'\n",
    })
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, repo).status == "completed"
    for query in ("grüße", "grüße_an", "grüßean"):
        hits = search.search(store, embedder, query, "p1", mode="lexical").results
        assert hits and hits[0].symbol == "grüße_an", query


def test_written_lexemes_are_what_the_binary_form_says_for_every_chunk(fresh_db: str, tmp_path: Path) -> None:
    """The rows COPY received in binary (lexemes unsorted, positions weighted) hold the tsvector the
    independent decoder reads from `lexical.document`, for every chunk of a few real files."""
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_CHUNK_MAX_TOKENS=256)  # type: ignore[call-arg]
    files = {path: (ROOT / path).read_text() for path in ("domain/store/batches.py", "domain/lexical.py", "README.md")}
    files["ünïcode.py"] = "def grüße_an(name):\n    return f\"Grüße, {name}! It's \\\\ done\"\n"
    repo = make_repo(tmp_path / "repo", files)
    store = Store(fresh_db)
    assert run_job(store, settings, make_embedder(settings), repo).status == "completed"
    with store.transaction() as cur:
        cur.execute("SELECT path, symbol, content, lexemes::text AS stored FROM chunks")
        rows = cur.fetchall()
        assert len(rows) > 50 and {r["path"] for r in rows} == set(files)
        for row in rows:
            expected = tsvector_text(lexical.document(row["path"], row["symbol"], row["content"]))
            cur.execute("SELECT %s::tsvector::text AS text", (expected,))
            assert row["stored"] == cur.fetchone()["text"], (row["path"], row["symbol"])
