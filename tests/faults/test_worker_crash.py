"""Killing and stopping workers for real: a job whose worker dies or shuts down mid-batch still
completes, with exactly the chunks of a clean run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from domain.store import get_store
from tests.faults.ollama_fake import FakeOllama
from tests.support import (WorkerGroup, chunk_set, code_corpus, duplicates, final_job, reference_chunk_set,
                           start_job, wait_for, worker_ready)

FILES = 600


def _under_way(url: str, job_id: str, batches: int = 2) -> bool:
    return int((get_store(url).get_job(job_id) or {}).get("batches_done", 0)) >= batches


def _running_batches(url: str) -> int:
    with get_store(url).transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM indexing_batches WHERE status = 'running'")
        return int(cur.fetchone()["n"])  # type: ignore[index]


def _assert_same_as_clean_run(url: str, repo: Path, job_id: str, files: int = FILES) -> None:
    final = final_job(url, job_id)
    assert final is not None and final["status"] == "completed", final
    assert final["files_scanned"] == files and final["progress_percentage"] == 100
    chunks = chunk_set(url, repo)
    assert duplicates(chunks) == []
    assert chunks == reference_chunk_set(repo)


def test_a_job_completes_within_30_s_after_one_of_two_workers_is_killed(tmp_path: Path, fresh_db: str) -> None:
    repo = code_corpus(tmp_path / "crash", FILES)
    # The 8 s lease of the other fault tests: recovery is lease + reaper interval (~13 s here, ~20 s
    # with the default 15 s lease); a CI run once took 34.8 s with the default, over the 30 s bound.
    doomed, survivor = (WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="8", CODESEARCH_BATCH_LEASE_SECONDS="8"),
                        WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="8", CODESEARCH_BATCH_LEASE_SECONDS="8"))
    try:
        doomed.start()
        survivor.start()
        wait_for(lambda: worker_ready(doomed) and worker_ready(survivor), 60, what="both worker groups to boot")
        job_id = start_job(fresh_db, repo)
        wait_for(lambda: _under_way(fresh_db, job_id), 60, what="the job to be under way")
        assert doomed.proc is not None
        os.killpg(doomed.proc.pid, signal.SIGKILL)  # no shutdown, no ack: its messages stay consumed
        killed_at = time.monotonic()
        wait_for(lambda: final_job(fresh_db, job_id), 60, interval_s=0.2, what="the job to finish")
        took = time.monotonic() - killed_at
        print(f"completed {took:.1f} s after the kill")
        assert took <= 30, f"completed {took:.1f} s after the kill"
        _assert_same_as_clean_run(fresh_db, repo, job_id)
    finally:
        doomed.stop()
        survivor.stop()


def test_a_job_completes_when_its_only_worker_is_killed_and_a_new_one_starts(tmp_path: Path, fresh_db: str) -> None:
    repo = code_corpus(tmp_path / "crash", FILES)
    first = WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="8")
    second = WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_LEASE_SECONDS="8", CODESEARCH_BATCH_MAX_FILES="8")
    try:
        first.start()
        wait_for(lambda: worker_ready(first), 60, what="the worker to boot")
        job_id = start_job(fresh_db, repo)
        wait_for(lambda: _under_way(fresh_db, job_id) and _running_batches(fresh_db) > 0, 60,
                 interval_s=0.02, what="a batch to be running")
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)
        assert final_job(fresh_db, job_id) is None
        second.start()
        wait_for(lambda: final_job(fresh_db, job_id), 90, interval_s=0.2, what="the job to finish")
        _assert_same_as_clean_run(fresh_db, repo, job_id)
    finally:
        first.stop()
        second.stop()


def _batches_held_by(url: str, group: WorkerGroup) -> list[tuple[int, str]]:
    """(batch_no, lease_owner) of running batches leased by the worker processes of `group`."""
    assert group.proc is not None
    pids = {str(p.pid) for p in psutil.Process(group.proc.pid).children(recursive=True)}
    with get_store(url).transaction() as cur:
        cur.execute("SELECT batch_no, lease_owner FROM indexing_batches WHERE status = 'running'")
        return [(r["batch_no"], r["lease_owner"]) for r in cur.fetchall() if r["lease_owner"].split(":")[1] in pids]


def test_sigterm_finishes_the_current_file_releases_the_lease_and_another_worker_continues(
        tmp_path: Path, fresh_db: str) -> None:
    # The batches the stopping worker holds must still be mid-way when its stop flag is set (a Dramatiq
    # worker process looks for SIGTERM once a second). Lengthened by corpus size alone, a batch of 600
    # files still finished before the flag: the hashing embedder chunks and embeds them in about a
    # second. An Ollama stand-in that takes 0.25 s a request makes each batch of ~19 groups last ~5 s
    # or more on any machine.
    repo = code_corpus(tmp_path / "stop", 2 * FILES)
    ollama = FakeOllama()
    ollama.latency_s = 0.25
    ollama.start()
    groups = (WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="600", **ollama.env()),
              WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="600", **ollama.env()))
    stopping, staying = groups
    try:
        for group in groups:
            group.start()
        wait_for(lambda: all(worker_ready(g) for g in groups), 60, what="both workers to boot")
        job_id = start_job(fresh_db, repo)

        def holder() -> tuple[WorkerGroup, list[tuple[int, str]]] | None:
            # The batches go to whichever worker locks their messages first: one worker may take them
            # all (a CI run waited 60 s for the other one). The one holding a batch is stopped.
            return next(((g, held) for g in groups if (held := _batches_held_by(fresh_db, g))), None)

        found = wait_for(holder, 60, interval_s=0.02, what="a worker to hold a batch")
        stopping, held = found
        staying = groups[1] if stopping is groups[0] else groups[0]
        stopped_at = time.monotonic()
        stopping.stop()  # one SIGTERM to the main process: a graceful shutdown
        assert stopping.proc is not None and stopping.proc.returncode == 0, stopping.output()[-2000:]
        shutdown_s = time.monotonic() - stopped_at
        wait_for(lambda: final_job(fresh_db, job_id), 60, interval_s=0.2, what="the job to finish")
        print(f"graceful shutdown took {shutdown_s:.1f} s")
        assert shutdown_s < 15  # well below finishing whole batches or waiting for a lease to expire
        _assert_same_as_clean_run(fresh_db, repo, job_id, files=2 * FILES)
        with get_store(fresh_db).transaction() as cur:
            cur.execute("SELECT batch_no, attempts, lease_owner FROM indexing_batches WHERE job_id = %s "
                        "AND batch_no = ANY(%s)", (job_id, [b for b, _ in held]))
            handed_over = [r for r in cur.fetchall() if r["attempts"] >= 2]
        # At least one batch the stopped worker held was released mid-way and finished by the other one.
        assert handed_over and all(r["lease_owner"] not in dict(held).values() for r in handed_over)
    finally:
        stopping.stop()
        staying.stop()
        ollama.stop()
