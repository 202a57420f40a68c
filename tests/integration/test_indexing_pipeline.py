"""Planning and indexing batches in-process against a real PostgreSQL (no broker): what the actors run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domain import indexing, jobs, lexical, search
from domain.embedders import Embedder, make_embedder
from domain.errors import Conflict, EmbedderMismatch, InvalidInput, NotFound
from domain.settings import Settings
from domain.store import Store
from tests.support import SAMPLE_REPO, chunk_set, code_corpus, make_repo, reference_chunk_set


@pytest.fixture
def store(fresh_db: str):  # type: ignore[no-untyped-def]
    s = Store(fresh_db)
    yield s
    s.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=2)


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return make_embedder(settings)


def run_job(store: Store, settings: Settings, embedder: Embedder, repo: Path, project: str = "p1",
            force: bool = False, refresh: bool = True) -> jobs.JobStatus:
    """What the actors do for one job, in order, in this process (`refresh`: and after it)."""
    status, created = jobs.create_job(store, str(repo), project, force)
    assert created
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches is not None
    if not batches:
        store.aggregate_job(status.job_id)
    for n in batches:
        indexing.index_batch(store, settings, embedder, status.job_id, n)
        store.aggregate_job(status.job_id)
    final = jobs.get_job(store, status.job_id)
    if refresh and final.status == "completed":  # as the aggregating actor does
        indexing.refresh_statistics(store, store.get_job(status.job_id)["repository_id"], final.chunks_created)
    return final


def chunk_rows(store: Store) -> list[tuple[str, int, int, str]]:
    with store.transaction() as cur:
        cur.execute("SELECT path, start_line, end_line, content_hash FROM chunks ORDER BY 1, 2, 3")
        return [tuple(r.values()) for r in cur.fetchall()]  # type: ignore[misc]


def test_a_job_indexes_text_files_and_skips_ignored_binary_and_undecodable_ones(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    final = run_job(store, settings, embedder, repo)
    assert final.status == "completed" and final.progress_percentage == 100
    paths = {r[0] for r in chunk_rows(store)}
    assert paths == {"src/billing/invoice.py", "src/net/http_server.py", "web/app.ts", "docs/notes.md", ".gitignore"}
    assert final.files_indexed == len(paths)
    assert final.files_skipped == 1  # legacy/latin1.py: not UTF-8, skipped and counted
    assert final.files_scanned == final.files_indexed + final.files_skipped
    assert final.chunks_created == len(chunk_rows(store))


def test_reindexing_an_unchanged_repository_writes_nothing_and_edits_are_picked_up(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    run_job(store, settings, embedder, repo)
    before = chunk_rows(store)
    again = run_job(store, settings, embedder, repo)
    assert again.files_indexed == 0 and again.chunks_created == 0
    assert chunk_rows(store) == before
    (repo / "web/app.ts").write_text("export const answer = 42;\n")
    (repo / "docs/notes.md").unlink()
    (repo / "src/new.py").write_text("def brand_new():\n    return 1\n")
    third = run_job(store, settings, embedder, repo)
    assert third.files_indexed == 2
    paths = {r[0] for r in chunk_rows(store)}
    assert "docs/notes.md" not in paths and "src/new.py" in paths
    assert [r for r in chunk_rows(store) if r[0] == "web/app.ts"][0][3] != [r for r in before if r[0] == "web/app.ts"][0][3]


def batched_paths(store: Store, job_id: str) -> list[list[str]]:
    """The paths of each of a job's batches, in batch order."""
    with store.transaction() as cur:
        cur.execute("SELECT files FROM indexing_batches WHERE job_id = %s ORDER BY batch_no", (job_id,))
        return [[f[0] for f in r["files"]] for r in cur.fetchall()]


def test_an_unchanged_reindex_plans_no_batch_and_completes_with_every_file_skipped(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = code_corpus(tmp_path / "repo", 20)
    run_job(store, settings, embedder, repo)
    before = chunk_rows(store)
    again = run_job(store, settings, embedder, repo)
    assert again.status == "completed" and again.progress_percentage == 100
    assert again.batches_total == 0 and batched_paths(store, again.job_id) == []
    assert (again.files_scanned, again.files_skipped, again.files_indexed, again.chunks_created) == (20, 20, 0, 0)
    assert chunk_rows(store) == before


def test_one_edited_file_of_many_is_the_only_one_batched_and_the_index_equals_a_fresh_one(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = code_corpus(tmp_path / "repo", 20)
    run_job(store, settings, embedder, repo)
    edited = repo / "pkg3/mod_3.py"
    edited.write_text(edited.read_text() + "\ndef added_later(x):\n    return x\n")
    (repo / "pkg4/mod_4.py").unlink()
    again = run_job(store, settings, embedder, repo)
    assert batched_paths(store, again.job_id) == [["pkg3/mod_3.py"]]
    assert (again.files_scanned, again.files_indexed, again.files_skipped) == (19, 1, 18)
    assert again.status == "completed" and again.progress_percentage == 100
    assert (store.get_job(again.job_id) or {})["metadata"]["files_removed"] == 1
    chunks = chunk_set(store.url, repo)
    assert "pkg4/mod_4.py" not in {c[0] for c in chunks}
    assert chunks == reference_chunk_set(repo)


def test_progress_counts_the_unchanged_files_and_a_repeated_aggregation_changes_nothing(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = code_corpus(tmp_path / "repo", 20)
    run_job(store, settings, embedder, repo)
    for i in range(4):
        (repo / f"pkg{i}/mod_{i}.py").write_text(f"def rewritten_{i}():\n    return {i}\n")
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches == [0, 1]  # 4 changed files, CODESEARCH_BATCH_MAX_FILES=2
    indexing.index_batch(store, settings, embedder, status.job_id, 0)
    first = store.aggregate_job(status.job_id)
    assert first is not None and store.aggregate_job(status.job_id) == first
    assert first["progress_percentage"] == 90  # (16 unchanged + 2 done) of 20
    assert (first["files_skipped"], first["files_indexed"]) == (16, 2)


def test_force_reindex_batches_and_rewrites_every_file(
        store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = code_corpus(tmp_path / "repo", 20)
    run_job(store, settings, embedder, repo)
    forced = run_job(store, settings, embedder, repo, force=True)
    assert sorted(p for b in batched_paths(store, forced.job_id) for p in b) == sorted(
        f"pkg{i % 12}/mod_{i}.py" for i in range(20))
    assert (forced.files_scanned, forced.files_indexed, forced.files_skipped) == (20, 20, 0)


def test_a_redelivered_batch_leaves_the_same_rows(store: Store, settings: Settings, embedder: Embedder,
                                                  tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches
    indexing.index_batch(store, settings, embedder, status.job_id, batches[0])
    first = chunk_rows(store)
    with store.transaction() as cur:  # as if the worker died before recording the batch as done
        cur.execute("UPDATE indexing_batches SET status = 'running' WHERE job_id = %s AND batch_no = %s",
                    (status.job_id, batches[0]))
    indexing.index_batch(store, settings, embedder, status.job_id, batches[0])
    assert chunk_rows(store) == first and first


def test_a_cancelled_job_writes_no_more_chunks_and_cannot_complete(store: Store, settings: Settings,
                                                                   embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches and len(batches) > 1
    indexing.index_batch(store, settings, embedder, status.job_id, batches[0])
    written = chunk_rows(store)
    cancelled = jobs.cancel_job(store, status.job_id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    result = indexing.index_batch(store, settings, embedder, status.job_id, batches[1])
    assert result.status == "cancelled"
    assert store.aggregate_job(status.job_id) is None
    assert chunk_rows(store) == written
    assert jobs.get_job(store, status.job_id).status == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        jobs.cancel_job(store, status.job_id)


def test_progress_never_goes_down(store: Store, settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches
    seen = []
    for n in batches:
        indexing.index_batch(store, settings, embedder, status.job_id, n)
        row = store.aggregate_job(status.job_id)
        assert row is not None
        seen.append(row["progress_percentage"])
        if row["status"] != "running":
            break
        with store.transaction() as cur:  # as if this batch were redelivered: its files count as not done
            cur.execute("UPDATE indexing_batches SET status = 'running' WHERE job_id = %s AND batch_no = %s",
                        (status.job_id, n))
        again = store.aggregate_job(status.job_id)
        assert again is not None and again["progress_percentage"] == row["progress_percentage"]
        with store.transaction() as cur:
            cur.execute("UPDATE indexing_batches SET status = 'completed' WHERE job_id = %s AND batch_no = %s",
                        (status.job_id, n))
    assert seen == sorted(seen) and seen[-1] == 100


def test_starting_twice_returns_the_active_job(store: Store, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    first, created1 = jobs.create_job(store, str(repo), "p1", False)
    second, created2 = jobs.create_job(store, str(repo) + "/", "p1", False)
    assert created1 and not created2 and first.job_id == second.job_id
    other, created3 = jobs.create_job(store, str(repo), "p2", False)
    assert created3 and other.job_id != first.job_id


@pytest.mark.parametrize("bad, message", [
    ("relative/path", "relative"), ("/tmp/../etc", "'..'"), ("/definitely/not/here", "does not exist"),
    ("", "empty"),
])
def test_bad_repository_paths_are_refused_with_a_clear_message(store: Store, bad: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        jobs.create_job(store, bad, "p1", False)


def test_a_file_instead_of_a_directory_is_refused(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "file.py"
    f.write_text("x = 1\n")
    with pytest.raises(InvalidInput, match="not a directory"):
        jobs.create_job(store, str(f), "p1", False)


def test_unknown_and_malformed_job_ids_are_clear_errors(store: Store) -> None:
    with pytest.raises(InvalidInput, match="not a valid job id"):
        jobs.get_job(store, "job-42")
    with pytest.raises(NotFound, match="no indexing job"):
        jobs.get_job(store, "123e4567-e89b-12d3-a456-426614174000")


def test_search_stays_inside_its_project_and_honours_filters(store: Store, settings: Settings,
                                                            embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {**SAMPLE_REPO, "we%ird_dir/x.py": "def compute_total_with_tax(): pass\n"})
    run_job(store, settings, embedder, repo, project="alpha")
    other = make_repo(tmp_path / "other", {"lib/tax.py": "def compute_total_with_tax(x):\n    return x\n"})
    run_job(store, settings, embedder, other, project="beta")

    def hits(**kw):  # type: ignore[no-untyped-def]
        return search.search(store, embedder, "compute_total_with_tax", "alpha", **kw).results

    assert hits() and all(h.repository == "repo" for h in hits())
    assert {h.file_path for h in hits(file_type="md")} == {"docs/notes.md"}
    assert {h.file_path for h in hits(directory="src/billing")} == {"src/billing/invoice.py"}
    assert {h.file_path for h in hits(directory="we%ird_dir")} == {"we%ird_dir/x.py"}
    assert hits(directory="we_ird_dir") == []  # '_' is literal, not a wildcard
    assert hits(repository="other") == []
    assert {h.repository for h in search.search(store, embedder, "tax", "beta").results} == {"other"}


def test_search_rejects_bad_queries_and_limits(store: Store, embedder: Embedder) -> None:
    for query, limit, message in (("", 10, "empty"), ("   ", 10, "empty"), ("x", 0, "out of range"),
                                  ("x", 51, "out of range"), ("x" * 5000, 10, "limit is")):
        with pytest.raises(InvalidInput, match=message):
            search.search(store, embedder, query, "alpha", limit)
    with pytest.raises(InvalidInput, match="relative"):
        search.search(store, embedder, "x", "alpha", directory="/etc")


def test_searching_with_another_embedder_is_refused(store: Store, settings: Settings, embedder: Embedder,
                                                    tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SAMPLE_REPO)
    run_job(store, settings, embedder, repo, project="alpha")

    class Other:
        model_id, dim = "other:model", 256

        def embed(self, texts):  # type: ignore[no-untyped-def]
            return embedder.embed(texts)

    with pytest.raises(EmbedderMismatch, match="hashing"):
        search.search(store, Other(), "tax", "alpha")
    status, _ = jobs.create_job(store, str(repo), "alpha", False)
    with pytest.raises(EmbedderMismatch, match="force_reindex"):
        indexing.plan_job(store, settings, Other(), status.job_id)


def test_search_results_carry_context_lines_from_the_index(store: Store, settings: Settings,
                                                           embedder: Embedder, tmp_path: Path) -> None:
    body = "\n".join(f"line_{i} = {i}" for i in range(1, 241)) + "\n"
    repo = make_repo(tmp_path / "repo", {"big.py": body})
    run_job(store, settings, embedder, repo, project="ctx")
    result = search.search(store, embedder, "line_120", "ctx", limit=50).results
    middle = [h for h in result if h.start_line > 1 and h.end_line < 240]
    assert middle
    hit = middle[0]
    assert hit.context_before.split("\n")[-1] == f"line_{hit.start_line - 1} = {hit.start_line - 1}"
    assert hit.context_after.split("\n")[0] == f"line_{hit.end_line + 1} = {hit.end_line + 1}"
    assert os.path.basename(hit.repository_path) == "repo"


def test_chunk_text_with_copy_format_specials_is_stored_exactly(store: Store, settings: Settings,
                                                                 embedder: Embedder, tmp_path: Path) -> None:
    """Chunk rows go in by COPY: backslashes, tabs, carriage returns, `\\N` and `\\.` lines, quotes
    and non-ASCII text must come back byte for byte, in paths too."""
    awkward = ("def escapes():\n    return '\\\\N', '\\t', \"\\\\\\\\server\\\\share\"\n\n"
               "PATTERN = r'\\d+\\.\\d*'\t# a tab\r, a CR\n\\.\n"
               "def naïve_café(x):\n    return x  # ünïcödé \\\\ \\N\n")
    repo = make_repo(tmp_path / "repo", {"src/we\\ird name.py": awkward, "notes\tTAB.md": "# A\\B\n\n\\N\ttab\n"})
    final = run_job(store, settings, embedder, repo)
    assert final.status == "completed" and final.files_indexed == 2
    with store.transaction() as cur:
        cur.execute("""SELECT path, content, content_hash,
                              encode(sha256(convert_to(content, 'UTF8')), 'hex') AS stored_hash
                       FROM chunks ORDER BY path, start_line""")
        rows = cur.fetchall()
    assert {r["path"] for r in rows} == {"src/we\\ird name.py", "notes\tTAB.md"}
    assert all(r["stored_hash"] == r["content_hash"] for r in rows)
    for path, text in (("src/we\\ird name.py", awkward), ("notes\tTAB.md", "# A\\B\n\n\\N\ttab\n")):
        expected = [c.content for c in indexing.chunks_of(settings, path, text)]
        assert [r["content"] for r in rows if r["path"] == path] == expected


def test_a_batch_writes_its_files_in_groups_and_the_index_equals_a_fresh_one(
        store: Store, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 40 files of 12 small functions in one batch: several files a transaction, never all of them.
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=100)
    repo = code_corpus(tmp_path / "repo", 40)
    groups: list[int] = []
    write_files = store.write_files

    def counted(progress, repository_id, files, model, new_vectors):  # type: ignore[no-untyped-def]
        groups.append(len(files))
        return write_files(progress, repository_id, files, model, new_vectors)

    monkeypatch.setattr(store, "write_files", counted)
    status = run_job(store, settings, embedder, repo)
    assert status.status == "completed" and (status.files_indexed, status.chunks_created > 0) == (40, True)
    assert sum(groups) == 40 and 1 < len(groups) < 40 and max(groups) <= indexing.GROUP_FILES
    assert chunk_set(store.url, repo) == reference_chunk_set(repo)


def test_a_group_written_by_a_holder_that_lost_its_batch_writes_no_file_of_it(
        store: Store, embedder: Embedder, tmp_path: Path) -> None:
    from domain.store import ChunkRow, FileRow, Progress

    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=100)
    repo = code_corpus(tmp_path / "repo", 3)
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches == [0]
    assert store.claim_batch(status.job_id, 0, "holder", 30) is not None
    repo_id = str((store.get_job(status.job_id) or {})["repository_id"])
    vector = embedder.embed(["def f(): pass"])[0]
    files = [(FileRow(f"new_{i}.py", "python", 10, 1, f"{i:064x}"),
              [ChunkRow(1, 1, f"def f{i}(): pass", f"{i:064x}", vector)]) for i in range(3)]

    def progress(owner: str) -> Progress:
        return Progress(status.job_id, 0, owner, 30, 3, 3, 0, 3)

    assert store.write_files(progress("someone else"), repo_id, files, embedder.model_id, {}) is False
    with store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM files WHERE path LIKE 'new_%%'")
        assert cur.fetchone()["n"] == 0
    assert store.write_files(progress("holder"), repo_id, files, embedder.model_id, {}) is True
    with store.transaction() as cur:
        cur.execute("SELECT f.path, count(c.id) AS n FROM files f JOIN chunks c ON c.file_id = f.id "
                    "WHERE f.path LIKE 'new_%%' GROUP BY 1 ORDER BY 1")
        assert [(r["path"], r["n"]) for r in cur.fetchall()] == [("new_0.py", 1), ("new_1.py", 1), ("new_2.py", 1)]
        cur.execute("SELECT files_done FROM indexing_batches WHERE job_id = %s AND batch_no = 0", (status.job_id,))
        assert cur.fetchone()["files_done"] == 3


def test_a_vector_given_as_floats_as_text_or_in_binary_is_stored_alike(store: Store, embedder: Embedder,
                                                                       tmp_path: Path) -> None:
    """A group whose vectors are all floats or binary goes in by binary COPY; one holding a text form
    (Ollama's) by text COPY, with its binary vectors (cache hits) decoded. Both store the vector
    halfvec_send gives back as the binary form."""
    import numpy as np

    from domain.pgbinary import halfvecs
    from domain.store import ChunkRow, FileRow, Progress, encode_vector

    status, _ = jobs.create_job(store, str(code_corpus(tmp_path / "repo", 1)), "p1", False)
    assert indexing.plan_job(store, Settings(CODESEARCH_EMBEDDER="hashing"), embedder, status.job_id) == [0]  # type: ignore[call-arg]
    assert store.claim_batch(status.job_id, 0, "holder", 30) is not None
    repo_id = str((store.get_job(status.job_id) or {})["repository_id"])
    vector = [0.6, -0.8, 0.0, 1 / 3]
    binary = halfvecs(np.array([vector]))[0]
    groups = [{"floats.py": vector, "binary.py": binary}, {"text.py": encode_vector(vector), "cached.py": binary}]
    for group in groups:
        files = [(FileRow(path, "python", 10, 1, f"{n:064x}"),
                  [ChunkRow(1, 1, "x = 'tab\there'", f"{n:064x}", form, "x", "assignment",
                            lexical.document(path, "x", "x = 'tab\there'"))])
                 for n, (path, form) in enumerate(group.items())]
        assert store.write_files(Progress(status.job_id, 0, "holder", 30, 3, 3, 0, 3), repo_id, files, "test", {})
    with store.transaction() as cur:
        cur.execute("SELECT path, content, symbol, kind, lexemes::text AS lexemes, embedding::text AS text, "
                    "halfvec_send(embedding) AS sent FROM chunks WHERE embedding_model = 'test' ORDER BY path")
        rows = cur.fetchall()
    assert [r["path"] for r in rows] == ["binary.py", "cached.py", "floats.py", "text.py"]
    assert {(r["content"], r["symbol"], r["kind"]) for r in rows} == {("x = 'tab\there'", "x", "assignment")}
    assert {r["text"] for r in rows} == {"[0.60009766,-0.7998047,0,0.33325195]"}  # the nearest halves
    assert {bytes(r["sent"]) for r in rows} == {binary}
    lexemes = {r["path"]: r["lexemes"] for r in rows}  # text and binary rows: the same tsvector
    assert lexemes["text.py"] == "'here':1 'py':1B 'tab':1 'text':1B 'x':1A,2"
    assert lexemes["binary.py"] == "'binary':1B 'here':1 'py':1B 'tab':1 'x':1A,2"


def test_a_file_whose_name_is_not_utf8_is_skipped_and_the_job_completes(store: Store, settings: Settings,
                                                                         embedder: Embedder, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"good.py": "def good_function():\n    return 1\n"})
    with open(os.path.join(os.fsencode(repo), b"bad-\xff.py"), "w") as f:  # planning used to fail on it
        f.write("def bad_function():\n    return 2\n")
    status = run_job(store, settings, embedder, repo)
    assert status.status == "completed" and status.files_indexed == 1
    metadata = (store.get_job(status.job_id) or {})["metadata"]
    assert metadata["skipped_by_reason"] == {"undecodable_name": 1}
    hits = search.search(store, embedder, "good_function", "p1", mode="lexical").results
    assert hits and hits[0].file_path == "good.py"


def test_a_vector_the_store_cannot_hold_fails_its_write_and_leaves_the_store_usable(
        store: Store, embedder: Embedder, tmp_path: Path) -> None:
    """The row is refused while COPY streams it: nothing of the group is written, and the next write
    on the same pooled connections goes through."""
    from domain.store import ChunkRow, FileRow, Progress

    status, _ = jobs.create_job(store, str(code_corpus(tmp_path / "repo", 1)), "p1", False)
    assert indexing.plan_job(store, Settings(CODESEARCH_EMBEDDER="hashing"), embedder, status.job_id) == [0]  # type: ignore[call-arg]
    assert store.claim_batch(status.job_id, 0, "holder", 30) is not None
    repo_id = str((store.get_job(status.job_id) or {})["repository_id"])
    progress = Progress(status.job_id, 0, "holder", 30, 1, 1, 0, 2)

    def group(vector: list[float]) -> list[tuple[FileRow, list[ChunkRow]]]:
        return [(FileRow("v.py", "python", 10, 1, "0" * 64),
                 [ChunkRow(1, 1, "a = 1", "1" * 64, [0.6, 0.8]), ChunkRow(2, 2, "b = 2", "2" * 64, vector)])]

    with pytest.raises(ValueError, match="NaN or infinite"):
        store.write_files(progress, repo_id, group([float("nan"), 0.0]), "test", {})
    with store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM chunks WHERE embedding_model = 'test'")
        assert cur.fetchone()["n"] == 0
    assert store.write_files(progress, repo_id, group([0.0, 1.0]), "test", {})
    with store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM chunks WHERE embedding_model = 'test'")
        assert cur.fetchone()["n"] == 2
