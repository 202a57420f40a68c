"""Hybrid, semantic and lexical search against the embedded PostgreSQL, on repositories indexed for real."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

import actors
from domain import indexing, jobs, lexical, search
from domain.embedders import Embedder, make_embedder
from domain.errors import InvalidInput
from domain.settings import Settings
from domain.store import Store
from tests.integration.test_indexing_pipeline import run_job
from tests.support import WorkerGroup, enqueue_on, make_repo, wait_for

DEFINITION = '''\
def parseHttpDate(value):
    """Turn an RFC 1123 date header into a timestamp."""
    day, month, year = value.split()
    return (int(year), month, int(day))
'''


def caller(n: int) -> str:
    # Each caller mentions the name more often than the definition does.
    return (f"from dates import parseHttpDate\n\n\ndef handler_{n}(request):\n"
            f"    first = parseHttpDate(request.headers['date'])\n"
            f"    second = parseHttpDate(request.headers['expires'])\n"
            f"    return parseHttpDate(request.headers['modified']), first, second\n")


@pytest.fixture
def settings() -> Settings:
    return Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=50)


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return make_embedder(settings)


@pytest.fixture
def indexed(fresh_db: str, settings: Settings, embedder: Embedder, tmp_path: Path) -> Store:
    files: dict[str, str | bytes] = {"src/dates.py": DEFINITION}
    files |= {f"src/handlers/h{n}.py": caller(n) for n in range(8)}
    files |= {
        "server/main.go": "package main\n\nfunc parseConfig(path string) string {\n\treturn path\n}\n",
        "a_b/notes.py": "def underscore_dir():\n    return 'literal underscore'\n",
        "axb/notes.py": "def other_dir():\n    return 'literal underscore'\n",
        "100%/done.py": "def percent_dir():\n    return 'literal underscore'\n",
        "docs/guide.md": "# Dates\n\nparseHttpDate turns a date header into a timestamp.\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, repo).status == "completed"
    return store


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize("query", ["parseHttpDate", "parse_http_date", "where is parseHttpDate defined"])
def test_an_identifier_query_ranks_its_definition_first(indexed: Store, embedder: Embedder, mode: str,
                                                         query: str) -> None:
    response = search.search(indexed, embedder, query, "p1", limit=5, mode=mode)
    top = response.results[0]
    assert (top.file_path, top.symbol) == ("src/dates.py", "parseHttpDate"), [
        (h.file_path, h.symbol, h.score) for h in response.results]
    assert top.score > 0.5 and all(h.score < top.score for h in response.results[1:])
    assert response.mode == mode
    scores = [h.score for h in response.results]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


def test_semantic_mode_ranks_by_embedding_only(indexed: Store, embedder: Embedder) -> None:
    response = search.search(indexed, embedder, "parseHttpDate", "p1", limit=5, mode="semantic")
    assert response.results and all(h.semantic_score is not None and h.lexical_score is None
                                    for h in response.results)
    assert response.embedding_ms is not None and response.embedding_ms <= response.latency_ms


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
def test_each_filter_narrows_the_results(indexed: Store, embedder: Embedder, mode: str) -> None:
    query = "parse date config literal underscore"

    def run(**filters: str) -> list[search.SearchHit]:
        return search.search(indexed, embedder, query, "p1", limit=20, mode=mode, **filters).results  # type: ignore[arg-type]

    everything = run()
    assert {h.language for h in everything} >= {"python", "go"}
    go = run(language="go")
    assert go and {h.language for h in go} == {"go"}
    assert {h.file_path for h in run(language="golang")} == {h.file_path for h in go}
    markdown = run(file_type="md")
    assert markdown and {h.file_path for h in markdown} == {"docs/guide.md"}
    handlers = run(directory="src/handlers")
    assert handlers and all(h.file_path.startswith("src/handlers/") for h in handlers)
    assert {h.repository for h in run(repository="repo")} == {"repo"}
    assert run(repository="no-such-repo") == []


def test_like_wildcards_in_a_directory_filter_are_literal(indexed: Store, embedder: Embedder) -> None:
    def paths(directory: str) -> set[str]:
        return {h.file_path for h in search.search(indexed, embedder, "literal underscore", "p1", limit=20,
                                                   mode="lexical", directory=directory).results}

    assert paths("a_b") == {"a_b/notes.py"}  # not axb/
    assert paths("100%") == {"100%/done.py"}
    assert paths("a%") == set()


@pytest.mark.parametrize("bad", [{"mode": "fuzzy"}, {"language": "klingon"}, {"directory": "../etc"},
                                 {"file_type": "a b"}])
def test_bad_modes_and_filters_are_clear_errors(indexed: Store, embedder: Embedder, bad: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as error:
        search.search(indexed, embedder, "dates", "p1", **bad)  # type: ignore[arg-type]
    assert list(bad.values())[0] in str(error.value)


def test_a_query_without_terms_finds_nothing_lexically_but_still_semantically(indexed: Store,
                                                                            embedder: Embedder) -> None:
    assert search.search(indexed, embedder, "?!", "p1", mode="lexical").results == []
    assert search.search(indexed, embedder, "?!", "p1", mode="hybrid").results  # the semantic side answers


def recount(store: Store, repository_id: str) -> dict[str, tuple[int, int]]:
    """The lexicon of a repository counted afresh from its chunks, as `lexicon` rows hold it."""
    with store.transaction() as cur:
        cur.execute("""SELECT u.lexeme, count(*) AS chunks, 0 AS lexemes FROM chunks c,
                              unnest(tsvector_to_array(c.lexemes)) AS u(lexeme)
                       WHERE c.repository_id = %s GROUP BY u.lexeme
                       UNION ALL SELECT '', count(*), sum(length(lexemes)) FROM chunks WHERE repository_id = %s""",
                    (repository_id, repository_id))
        return {r["lexeme"]: (int(r["chunks"]), int(r["lexemes"])) for r in cur.fetchall() if r["chunks"]}


def stored_lexicon(store: Store, repository_id: str) -> dict[str, tuple[int, int]]:
    with store.transaction() as cur:
        cur.execute("SELECT lexeme, chunks, lexemes FROM lexicon WHERE repository_id = %s", (repository_id,))
        return {r["lexeme"]: (int(r["chunks"]), int(r["lexemes"])) for r in cur.fetchall()}


def test_the_lexicon_holds_each_lexemes_chunk_count_after_a_job(indexed: Store) -> None:
    repos = [r["id"] for r in indexed.search_scope("p1", None)]
    assert stored_lexicon(indexed, repos[0]) == recount(indexed, repos[0])
    stats = indexed.term_statistics(repos, ["parsehttpdate", "nosuchterm"])
    with indexed.transaction() as cur:
        cur.execute("SELECT count(*) AS n, avg(length(lexemes)) AS mean, "
                    "count(*) FILTER (WHERE lexemes @@ 'parsehttpdate') AS named FROM chunks")
        counts = cur.fetchone()
    assert stats.chunks == counts["n"] and stats.average_lexemes == pytest.approx(float(counts["mean"]))
    assert stats.frequencies == {"parsehttpdate": counts["named"], "nosuchterm": 0}


def test_changed_deleted_and_forced_files_keep_the_lexicon_exact(indexed: Store, settings: Settings,
                                                                embedder: Embedder) -> None:
    """A re-indexed file's old chunks and a deleted file's chunks are taken out of the counts; a
    forced job counts the repository afresh."""
    repo = Path(indexed.list_jobs("p1", None, 1)[0]["repo_path"])
    repository_id = indexed.search_scope("p1", None)[0]["id"]
    (repo / "src" / "dates.py").write_text(DEFINITION.replace("timestamp", "moment in time"))
    (repo / "src" / "handlers" / "h0.py").unlink()
    (repo / "src" / "handlers" / "h9.py").write_text(caller(9))
    assert run_job(indexed, settings, embedder, repo).status == "completed"
    assert stored_lexicon(indexed, repository_id) == recount(indexed, repository_id)
    assert "moment" in stored_lexicon(indexed, repository_id) and "timestamp" in recount(indexed, repository_id)
    assert run_job(indexed, settings, embedder, repo, force=True).status == "completed"
    assert stored_lexicon(indexed, repository_id) == recount(indexed, repository_id)
    with indexed.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM lexicon_changes")
        assert cur.fetchone()["n"] == 0


def test_a_chunk_written_and_replaced_between_two_updates_is_never_counted(indexed: Store, settings: Settings,
                                                                           embedder: Embedder) -> None:
    """Two jobs before one update (as when the update after the first failed): the first job's
    chunks of the file are gone before anything counted them."""
    repo = Path(indexed.list_jobs("p1", None, 1)[0]["repo_path"])
    repository_id = indexed.search_scope("p1", None)[0]["id"]
    for text in ("def first_version():\n    return 1\n", "def second_version():\n    return 2\n"):
        (repo / "src" / "late.py").write_text(text)
        status, _ = jobs.create_job(indexed, str(repo), "p1", False)
        for n in indexing.plan_job(indexed, settings, embedder, status.job_id) or []:
            indexing.index_batch(indexed, settings, embedder, status.job_id, n)
            indexed.aggregate_job(status.job_id)
    assert "secondversion" not in stored_lexicon(indexed, repository_id)
    assert indexed.update_lexicon(repository_id) == 1
    assert stored_lexicon(indexed, repository_id) == recount(indexed, repository_id)
    assert "firstversion" not in stored_lexicon(indexed, repository_id)


def test_a_job_that_wrote_a_share_of_the_chunks_analyses_them(indexed: Store, embedder: Embedder,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranking queries' plans rest on the planner's statistics: a job that wrote enough of the
    chunks refreshes them at once instead of leaving it to autovacuum (a minute or more later)."""
    written = indexed.count_chunks(embedder.model_id)
    repository_id = indexed.search_scope("p1", None)[0]["id"]
    monkeypatch.setattr(indexing, "ANALYZE_MIN_CHUNKS", written + 1)
    assert not indexing.refresh_statistics(indexed, repository_id, written)
    monkeypatch.setattr(indexing, "ANALYZE_MIN_CHUNKS", 1)
    assert indexing.refresh_statistics(indexed, repository_id, written)
    assert indexed.estimated_chunks() == written
    assert not indexing.refresh_statistics(indexed, repository_id, written // 20)  # under a tenth of the table


@pytest.mark.parametrize("query", ["parseHttpDate", "where is parse_http_date defined"])
def test_a_definition_ranks_first_even_when_its_name_is_too_common_to_select_candidates(
        indexed: Store, settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    """With a budget of one chunk the lexical ranking sees at most two arbitrary chunks that use the
    name; the definition is found by its symbol and still comes first. Re-indexing the definition's
    file moves its chunk behind the callers' in the table, where those two chunks are not taken."""
    repo = Path(indexed.list_jobs("p1", None, 1)[0]["repo_path"])
    (repo / "src" / "dates.py").write_text("# dates\n" + DEFINITION)
    assert run_job(indexed, settings, embedder, repo).status == "completed"
    with indexed.transaction() as cur:
        cur.execute("ANALYZE chunks")
    monkeypatch.setattr(lexical, "CANDIDATE_BUDGET", 1)
    for mode in ("lexical", "hybrid"):
        hits = search.search(indexed, embedder, query, "p1", mode=mode).results
        assert hits[0].symbol == "parseHttpDate" and hits[0].file_path == "src/dates.py", (mode, hits[0])
    assert len(search.search(indexed, embedder, "request headers", "p1", mode="lexical").results) <= 2


def test_a_definition_is_found_among_more_symbols_ending_with_its_name_than_a_ranking_holds(
        fresh_db: str, settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Sixty functions end with `parse_config`; the definition of `parse_config` itself is written last
    (the highest chunk id). The definition lookup keeps the shortest symbols of all suffix matches,
    so it is found although a ranking holds fifty candidates and the lexical one sees only two."""
    lookalikes: dict[str, str | bytes] = {f"src/v{n}.py": f"def variant{n}_parse_config(path):\n    return path + {n}\n"
                                          for n in range(60)}
    repo = make_repo(tmp_path / "repo", lookalikes)
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, repo).status == "completed"
    (repo / "src" / "config.py").write_text("def parse_config(path):\n    return open(path).read()\n")
    assert run_job(store, settings, embedder, repo).status == "completed"
    monkeypatch.setattr(lexical, "CANDIDATE_BUDGET", 1)
    for mode in ("lexical", "hybrid"):
        hits = search.search(store, embedder, "parse_config", "p1", mode=mode).results
        assert hits[0].symbol == "parse_config" and hits[0].file_path == "src/config.py", (mode, hits[0])


def test_a_completed_job_builds_the_hnsw_index_in_the_background_and_filtered_queries_fill_limit(
        fresh_db: str, tmp_path: Path) -> None:
    """Past CODESEARCH_HNSW_MIN_CHUNKS a worker builds the index after the job; a selective filter on that
    approximate index still returns `limit` rows (iterative scans)."""
    settings = Settings(CODESEARCH_EMBEDDER="hashing")
    embedder = make_embedder(settings)
    files: dict[str, str | bytes] = {
        f"py/m{n}.py": "\n\n".join(f"def work_{n}_{k}(x):\n    return x * {k}" for k in range(6)) + "\n"
        for n in range(60)
    }
    files |= {f"go/g{n}.go": f"package g\n\nfunc Handle{n}(x int) int {{\n\treturn x + {n}\n}}\n" for n in range(12)}
    repo = make_repo(tmp_path / "repo", files)
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:  # make the planner take the index even on a small table
        cur.execute("SELECT current_database()")
        cur.execute(f'ALTER DATABASE "{cur.fetchone()[0]}" SET enable_seqscan = off')
    conn.close()
    store = Store(fresh_db)
    workers = WorkerGroup(fresh_db, processes=1, threads=2, CODESEARCH_HNSW_MIN_CHUNKS="50")
    workers.start()
    try:
        status, _ = jobs.create_job(store, str(repo), "p1", False)
        enqueue_on(fresh_db, actors.plan_job.message(status.job_id))
        try:
            wait_for(lambda: store.has_vector_index(embedder.model_id), timeout_s=120,
                     what="the HNSW index built after the job")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; job {store.get_job(status.job_id)}; workers:\n{workers.output()[-3000:]}")
    finally:
        workers.stop()
    assert jobs.get_job(store, status.job_id).status == "completed"
    with store.transaction() as cur:
        cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cur.execute("EXPLAIN SELECT id FROM chunks WHERE embedding_model = 'hashing:v2' "
                    "ORDER BY (embedding::halfvec(256)) <=> (SELECT embedding::halfvec(256) FROM chunks LIMIT 1) "
                    "LIMIT 10")
        plan = "\n".join(r["QUERY PLAN"] for r in cur.fetchall())
    assert "chunks_embedding_hnsw_" in plan, plan
    hits = search.search(store, embedder, "multiply the input", "p1", limit=10, mode="semantic",
                         language="go").results
    assert len(hits) == 10 and {h.language for h in hits} == {"go"}
    assert not store.ensure_vector_index(embedder.model_id, embedder.dim)  # built once, not again


@pytest.fixture
def prose(fresh_db: str, settings: Settings, embedder: Embedder, tmp_path: Path) -> Store:
    """A repository where BM25 must tell a rare word from a common one, and forms of a word apart."""
    common = "".join(f"def helper_{n}(value):\n    return value + {n}\n\n\n" for n in range(30))
    files: dict[str, str | bytes] = {
        "lib/common.py": common,
        "lib/wrap.py": "def fold_text(words, width):\n    wrapped = []\n    return wrapped\n",
        "lib/cache.py": "def evict(value):\n    # drop the oldest cached value\n    return value\n",
        "lib/mixed.py": "def mixed(value):\n    return value\n",
    }
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, make_repo(tmp_path / "prose", files)).status == "completed"
    return store


def test_bm25_ranks_a_chunk_with_the_rare_word_above_chunks_with_the_common_one(prose: Store,
                                                                                 embedder: Embedder) -> None:
    # "value" is in nearly every chunk, "cached" in one: that one must come first, though it does
    # not hold every query word (OR semantics) and the common word is in the others' symbols' bodies.
    hits = search.search(prose, embedder, "cached value", "p1", limit=5, mode="lexical").results
    assert hits[0].file_path == "lib/cache.py", [(h.file_path, h.lexical_score) for h in hits]
    assert len(hits) > 1  # chunks holding only "value" still rank (not an AND)
    assert all(h.lexical_score is not None and h.lexical_score > 0 for h in hits)


def test_a_natural_language_word_matches_its_other_forms(prose: Store, embedder: Embedder) -> None:
    hits = search.search(prose, embedder, "wrapping", "p1", limit=5, mode="lexical").results
    assert [h.file_path for h in hits] == ["lib/wrap.py"]  # "wrapped" in the body
    assert search.search(prose, embedder, "wrapping", "p1", limit=5, mode="lexical").results == hits
    old = search.STEMMING
    search.STEMMING = False
    try:
        assert search.search(prose, embedder, "wrapping", "p1", limit=5, mode="lexical").results == []
    finally:
        search.STEMMING = old


def test_term_statistics_count_chunks_holding_each_lexeme(prose: Store) -> None:
    repos = [r["id"] for r in prose.search_scope("p1", None)]
    counts = prose.term_statistics(repos, ["cached", "value", "nosuchlexeme"]).frequencies
    assert counts["cached"] == 1 and counts["nosuchlexeme"] == 0 and counts["value"] >= 3


def test_term_statistics_carry_the_lexicon_priors_counts(prose: Store) -> None:
    """The prior (migration 0011) is read with the project's own counts, from the same database."""
    repos = [r["id"] for r in prose.search_scope("p1", None)]
    stats = prose.term_statistics(repos, ["self", "return", "nosuchlexeme"])
    expected = dict(lexical.prior_counts())
    assert stats.prior_chunks == expected[""]
    assert stats.prior == {"self": expected["self"], "return": expected["return"]}


def test_refreshing_statistics_after_a_job_empties_the_lexeme_index_pending_list(
        fresh_db: str, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    """A job leaves its lexemes in the GIN pending list; searches right after it would otherwise read
    the pending entries one by one."""
    store = Store(fresh_db)
    repo = make_repo(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n"})
    assert run_job(store, settings, embedder, repo, refresh=False).status == "completed"
    with store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM lexicon")
        assert cur.fetchone()["n"] == 0  # nothing counted before the refresh either
    indexing.refresh_statistics(store, None, chunks_created=1)  # too few chunks to analyse, enough to flush
    assert store.flush_lexeme_index() == 0


def test_document_frequencies_are_counted_within_the_searched_project(prose: Store, settings: Settings,
                                                                      embedder: Embedder, tmp_path: Path) -> None:
    other = {f"x/cache_{n}.py": f"def cached_{n}():\n    return 'cached value'\n" for n in range(5)}
    assert run_job(prose, settings, embedder, make_repo(tmp_path / "other", other), project="p2").status == "completed"
    mine = [r["id"] for r in prose.search_scope("p1", None)]
    theirs = [r["id"] for r in prose.search_scope("p2", None)]
    assert prose.term_statistics(mine, ["cached"]).frequencies == {"cached": 1}
    assert prose.term_statistics(theirs, ["cached"]).frequencies["cached"] >= 5
    both = prose.term_statistics(mine + theirs, ["cached"])
    assert both.frequencies["cached"] == 1 + prose.term_statistics(theirs, ["cached"]).frequencies["cached"]
    assert both.chunks == prose.count_chunks(embedder.model_id)


def test_a_word_searched_for_before_it_was_indexed_is_found_once_it_is(indexed: Store, settings: Settings,
                                                                       embedder: Embedder, tmp_path: Path) -> None:
    # What watch mode makes common: search for what you just wrote, before its job has run.
    assert not search.search(indexed, embedder, "zzqfreshlywrittenname", "p1", mode="lexical").results
    (tmp_path / "repo" / "src" / "fresh.py").write_text("def zzqfreshlywrittenname():\n    return 1\n")
    assert run_job(indexed, settings, embedder, tmp_path / "repo").status == "completed"
    hits = search.search(indexed, embedder, "zzqfreshlywrittenname", "p1", mode="lexical").results
    assert [h.file_path for h in hits[:1]] == ["src/fresh.py"]



def test_a_hit_in_a_later_window_of_a_long_function_is_shown_at_the_functions_first_window(
        fresh_db: str, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    """Where a reader starts: the signature and docstring, not the middle of the body."""
    body = "".join(f"    x = step(x + {i})\n" for i in range(200))
    source = f'def outer(x):\n    """Fold x through step many times."""\n{body}    zebra_marker = x\n    return zebra_marker\n'
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, make_repo(tmp_path / "long", {"fold.py": source})).status == "completed"
    with store.transaction() as cur:
        cur.execute("SELECT start_line, end_line, symbol FROM chunks ORDER BY start_line")
        chunks = [(r["start_line"], r["end_line"], r["symbol"]) for r in cur.fetchall()]
    assert len(chunks) > 2 and {c[2] for c in chunks} == {"outer"}, chunks
    marker = source.split("\n").index("    zebra_marker = x") + 1
    assert not chunks[0][0] <= marker <= chunks[0][1]  # the word is in a later window
    for mode in ("lexical", "hybrid"):
        hits = search.search(store, embedder, "zebra_marker", "p1", limit=3, mode=mode).results
        assert (hits[0].start_line, hits[0].symbol) == (1, "outer"), [(h.start_line, h.symbol) for h in hits]
        assert [h.start_line for h in hits].count(1) == 1  # the windows are one result


RUST_TOOLS = """pub trait Tools: Iterator {
    /// Alternate between the elements of two iterators.
    fn interleave<J>(self, other: J) -> Interleave<Self, J> where Self: Sized {
        interleave(self, other)
    }

    /// Alternate between two iterators until either one runs out.
    fn interleave_shortest<J>(self, other: J) -> InterleaveShortest<Self, J> where Self: Sized {
        interleave_shortest(self, other)
    }
}

/// The adaptor that interleaves.
pub struct Interleave<I, J> {
    a: I,
    b: J,
}

pub fn interleave<I, J>(a: I, b: J) -> Interleave<I, J> {
    Interleave { a, b }
}

impl<I: Iterator, J: Iterator<Item = I::Item>> Iterator for Interleave<I, J> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.a.next().or_else(|| self.b.next())
    }
}
"""
PYTHON_CONSOLE = '''class Console:
    def print(self, *objects):
        """Write objects to the terminal."""
        return self.write(objects)

    def write(self, objects):
        return len(objects)


def print(*objects):
    """Print with the global console."""
    return Console().print(*objects)
'''


def rust_user(n: int) -> str:
    # Each user says "Tools" and "interleave" more often than the definitions do.
    return (f"use crate::Tools;\n\npub fn user_{n}(a: A, b: B) {{\n    let x = Tools::interleave(a, b);\n"
            f"    let y = Tools::interleave(b, a);\n    interleave(x, y)\n}}\n")


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize("query, expected", [
    ("Tools::interleave", ("src/lib.rs", "Tools::interleave")),
    ("where is Tools.interleave", ("src/lib.rs", "Tools::interleave")),
    ("Interleave::next", ("src/lib.rs", "Interleave::next")),
    ("Console.print", ("console.py", "Console.print")),
])
def test_a_qualified_name_ranks_its_own_definition_first_not_every_namesake(
        fresh_db: str, embedder: Embedder, tmp_path: Path, mode: str, query: str, expected: tuple[str, str]) -> None:
    """`Tools::interleave` means the trait's method, not the function or struct of the same name;
    neither part looks like code (no underscore, no inner capital), the "::" or "." says it is."""
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_CHUNK_MAX_TOKENS=32)
    store = Store(fresh_db)
    files: dict[str, str | bytes] = {"src/lib.rs": RUST_TOOLS, "console.py": PYTHON_CONSOLE}
    repo = make_repo(tmp_path / "tools", files | {f"src/user{n}.rs": rust_user(n) for n in range(6)})
    assert run_job(store, settings, embedder, repo).status == "completed"
    hits = search.search(store, embedder, query, "p1", limit=5, mode=mode).results
    assert (hits[0].file_path, hits[0].symbol) == expected, [(h.file_path, h.symbol) for h in hits]


def test_a_qualified_name_without_a_chunk_of_its_own_finds_what_defines_its_qualifier(
        fresh_db: str, embedder: Embedder, tmp_path: Path) -> None:
    """A small impl is one chunk: `Interleave::next` has no symbol, the impl that holds it does (and
    the struct it is for); the function `interleave` and the trait's `Tools::interleave` do not."""
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_CHUNK_MAX_TOKENS=64)
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, make_repo(tmp_path / "small", {"src/lib.rs": RUST_TOOLS})).status == "completed"
    with store.transaction() as cur:
        cur.execute("SELECT symbol FROM chunks")
        assert "Interleave::next" not in {r["symbol"] for r in cur.fetchall()}
    for mode in ("hybrid", "lexical"):
        hits = search.search(store, embedder, "Interleave::next", "p1", limit=5, mode=mode).results
        assert hits[0].symbol in ("impl Iterator for Interleave", "Interleave"), [h.symbol for h in hits]


def test_a_qualified_name_with_a_chunk_of_its_own_outranks_its_parts_named_alone(
        fresh_db: str, embedder: Embedder, tmp_path: Path) -> None:
    """`GroupInner.step` means the method: not the type `GroupInner` (camel-cased, a name by itself,
    and a better-named chunk), nor the function `step`, though each is defined next to it."""
    source = ("class GroupInner:\n    \"\"\"Holds the grouping state of the lazy grouping engine.\"\"\"\n\n"
              "    def step(self):\n        self.count = self.count + 1\n        return self.items[self.count]\n\n"
              "    def reset(self):\n        self.count = 0\n        self.items = list(self.source)\n\n\n"
              "def step(inner):\n    \"\"\"Advance an GroupInner by one step.\"\"\"\n    return inner.step()\n")
    files: dict[str, str | bytes] = {"group.py": source}
    files |= {f"use{n}.py": f"from group import GroupInner, step\n\n\ndef use_{n}():\n    return step(GroupInner())\n" for n in range(4)}
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_CHUNK_MAX_TOKENS=32)
    store = Store(fresh_db)
    assert run_job(store, settings, embedder, make_repo(tmp_path / "inner", files)).status == "completed"
    for mode in ("hybrid", "lexical"):
        hits = search.search(store, embedder, "GroupInner.step", "p1", limit=5, mode=mode).results
        assert hits[0].symbol == "GroupInner.step", [(h.symbol, h.score) for h in hits]
