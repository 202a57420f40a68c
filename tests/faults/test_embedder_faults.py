"""An Ollama that goes away: batches retry while it is down, and a job that gives up fails cleanly and
resumes without redoing what it finished. Also: re-indexing a changed tree, and what it embeds."""

from __future__ import annotations

from collections.abc import Iterator
import time
from pathlib import Path

import pytest

from domain.store import get_store
from tests.faults.ollama_fake import FakeOllama
from tests.support import (WorkerGroup, chunk_set, code_corpus, duplicates, final_job, reference_chunk_set,
                           start_job, wait_for, worker_ready)

FILES = 240


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The faults are timed by embedding requests: keep them many, as with 256-token chunks (workers
    and the in-process reference runs both read this)."""
    monkeypatch.setenv("CODESEARCH_CHUNK_MAX_TOKENS", "256")


@pytest.fixture
def worker(fresh_db: str, ollama: FakeOllama) -> Iterator[WorkerGroup]:
    group = WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_LEASE_SECONDS="8", CODESEARCH_BATCH_MAX_FILES="8",
                        **ollama.env())
    group.start()
    wait_for(lambda: worker_ready(group), 60, what="the worker to boot")
    yield group
    group.stop()


def _max_attempts(url: str, job_id: str) -> int:
    with get_store(url).transaction() as cur:
        cur.execute("SELECT max(attempts) AS n FROM indexing_batches WHERE job_id = %s", (job_id,))
        return int(cur.fetchone()["n"] or 0)  # type: ignore[index]


def _completed(url: str, job_id: str) -> dict[str, object]:
    final = wait_for(lambda: final_job(url, job_id), 120, interval_s=0.2, what="the job to finish")
    assert final["status"] == "completed", final
    return final


def test_batches_retry_while_ollama_is_down_and_the_job_completes_when_it_is_back(
        tmp_path: Path, fresh_db: str, ollama: FakeOllama, worker: WorkerGroup) -> None:
    repo = code_corpus(tmp_path / "repo", FILES)
    ollama.down_after = FILES // 4  # one request per file (one chunk each): down a quarter of the way in
    job_id = start_job(fresh_db, repo)
    wait_for(lambda: _max_attempts(fresh_db, job_id) >= 2, 60, what="a batch to be retried")
    assert final_job(fresh_db, job_id) is None
    ollama.start()
    _completed(fresh_db, job_id)
    chunks = chunk_set(fresh_db, repo)
    assert duplicates(chunks) == [] and chunks == reference_chunk_set(repo)


def test_ollama_down_for_good_fails_the_job_cleanly_and_a_restart_resumes_without_redoing_files(
        tmp_path: Path, fresh_db: str, ollama: FakeOllama, worker: WorkerGroup) -> None:
    repo = code_corpus(tmp_path / "repo", FILES)
    ollama.down_after = FILES // 4
    job_id = start_job(fresh_db, repo)
    failed = wait_for(lambda: final_job(fresh_db, job_id), 120, interval_s=0.2, what="the job to fail")
    assert failed["status"] == "failed", failed
    assert failed["error_type"] == "EmbedderUnavailable"
    assert f"cannot reach Ollama at {ollama.host}" in str(failed["error_message"])
    # Nothing half-written: every file that has chunks has exactly its clean-run chunks.
    reference, partial = reference_chunk_set(repo), chunk_set(fresh_db, repo)
    written = {c[0] for c in partial}
    assert written and partial == [c for c in reference if c[0] in written]

    ollama.start()
    before = len(ollama.embedded())
    resumed = start_job(fresh_db, repo)
    assert resumed != job_id
    _completed(fresh_db, resumed)
    again = ollama.embedded()[before:]
    assert again and not {t.split("\n", 1)[0] for t in again} & written  # finished files are not redone
    chunks = chunk_set(fresh_db, repo)
    assert duplicates(chunks) == [] and chunks == reference


def test_reindexing_an_edited_tree_equals_a_fresh_index_and_an_unchanged_one_embeds_nothing(
        tmp_path: Path, fresh_db: str, ollama: FakeOllama, worker: WorkerGroup) -> None:
    repo = code_corpus(tmp_path / "repo", 60)
    _completed(fresh_db, start_job(fresh_db, repo))
    first = len(ollama.embedded())
    assert first > 0
    unchanged = _completed(fresh_db, start_job(fresh_db, repo))
    assert len(ollama.embedded()) == first and unchanged["files_indexed"] == 0
    assert unchanged["batches_total"] == 0 and unchanged["files_skipped"] == unchanged["files_scanned"] == 60
    (repo / "pkg0/mod_0.py").write_text("def edited(x):\n    return x * 2\n")
    (repo / "pkg1/mod_1.py").unlink()
    (repo / "pkg_new/added.py").parent.mkdir()
    (repo / "pkg_new/added.py").write_text("def added():\n    return 'new'\n")
    edited = _completed(fresh_db, start_job(fresh_db, repo))
    assert edited["files_indexed"] == 2 and edited["files_skipped"] == 58
    assert edited["batches_total"] == 1  # the two changed files only (CODESEARCH_BATCH_MAX_FILES=8)
    assert {t.split("\n", 1)[0] for t in ollama.embedded()[first:]} == {"pkg0/mod_0.py", "pkg_new/added.py"}
    chunks = chunk_set(fresh_db, repo)
    assert duplicates(chunks) == [] and chunks == reference_chunk_set(repo)
    embedded = len(ollama.embedded())
    forced = _completed(fresh_db, start_job(fresh_db, repo, force=True))
    assert forced["files_indexed"] == 60 and len(ollama.embedded()) == embedded  # every vector is cached
    assert chunk_set(fresh_db, repo) == chunks


def test_a_missing_model_fails_the_job_at_once_without_retries(tmp_path: Path, fresh_db: str,
                                                                ollama: FakeOllama) -> None:
    group = WorkerGroup(fresh_db, 1, 2, **{**ollama.env(), "CODESEARCH_OLLAMA_MODEL": "no-such-model"})
    group.start()
    try:
        wait_for(lambda: worker_ready(group), 60, what="the worker to boot")
        started = time.monotonic()
        job_id = start_job(fresh_db, code_corpus(tmp_path / "repo", 8))
        failed = wait_for(lambda: final_job(fresh_db, job_id), 30, interval_s=0.1, what="the job to fail")
        took = time.monotonic() - started
        assert failed["status"] == "failed" and failed["error_type"] == "EmbedderModelMissing", failed
        assert "ollama pull no-such-model" in str(failed["error_message"])
        assert took < 5, f"a permanent error took {took:.1f} s to fail the job"
        with get_store(fresh_db).transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM dramatiq.queue WHERE (message->'options'->>'retries')::int > 0")
            assert cur.fetchone()["n"] == 0  # type: ignore[index]
        assert chunk_set(fresh_db, tmp_path / "repo") == []
    finally:
        group.stop()
