"""Races around one job: cancelling mid-job, ten simultaneous starts, and a batch that finishes while
the reaper decides its lease expired."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2

from domain import indexing, jobs
from domain.embedders import HashingEmbedder
from domain.settings import Settings
from domain.store import Store, get_store
from tests.support import (WorkerGroup, chunk_set, code_corpus, duplicates, final_job, reference_chunk_set,
                           start_job, wait_for, worker_ready)


def _max_chunk_id(url: str) -> int:
    with get_store(url).transaction() as cur:
        cur.execute("SELECT coalesce(max(id), 0) AS n FROM chunks")
        return int(cur.fetchone()["n"])  # type: ignore[index]


def _queue_drained(url: str) -> bool:
    with get_store(url).transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM dramatiq.queue WHERE state IN ('queued', 'consumed')")
        return int(cur.fetchone()["n"]) == 0  # type: ignore[index]


def test_cancel_mid_job_stops_within_5_s_and_writes_no_chunk_afterwards(tmp_path: Path, fresh_db: str) -> None:
    repo = code_corpus(tmp_path / "repo", 600)
    group = WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_MAX_FILES="8")
    group.start()
    try:
        wait_for(lambda: worker_ready(group), 60, what="the worker to boot")
        job_id = start_job(fresh_db, repo)
        store = get_store(fresh_db)
        wait_for(lambda: int((store.get_job(job_id) or {}).get("batches_done", 0)) >= 2, 60, interval_s=0.05,
                 what="the job to be under way")
        cancelled = jobs.cancel_job(store, job_id)
        last_chunk = _max_chunk_id(fresh_db)  # every write that raced the cancel committed before it
        assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None

        def batches_stopped() -> bool:
            with store.transaction() as cur:
                cur.execute("SELECT count(*) AS n FROM indexing_batches WHERE job_id = %s "
                            "AND status IN ('pending', 'running')", (job_id,))
                return int(cur.fetchone()["n"]) == 0  # type: ignore[index]

        wait_for(batches_stopped, 5, interval_s=0.05, what="every batch to stop")
        wait_for(lambda: _queue_drained(fresh_db), 60, what="the workers to drain their messages")
        assert _max_chunk_id(fresh_db) == last_chunk
        assert jobs.get_job(store, job_id).status == "cancelled"
        partial, reference = chunk_set(fresh_db, repo), reference_chunk_set(repo)
        written = {c[0] for c in partial}
        assert duplicates(partial) == [] and partial == [c for c in reference if c[0] in written]
    finally:
        group.stop()


def test_ten_concurrent_starts_create_one_job_and_every_caller_gets_its_id(tmp_path: Path, fresh_db: str) -> None:
    repo = code_corpus(tmp_path / "repo", 40)
    barrier, ids, errors = threading.Barrier(10), [], []

    def start() -> None:
        try:
            barrier.wait(10)
            ids.append(start_job(fresh_db, repo))
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)

    group = WorkerGroup(fresh_db, 1, 4)
    group.start()
    try:
        threads = [threading.Thread(target=start) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [] and len(ids) == 10 and len(set(ids)) == 1
        with get_store(fresh_db).transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM indexing_jobs")
            assert cur.fetchone()["n"] == 1  # type: ignore[index]
            cur.execute("SELECT count(*) AS n FROM dramatiq.queue WHERE message->>'actor_name' = 'plan_job'")
            assert cur.fetchone()["n"] == 1  # type: ignore[index]
        final = wait_for(lambda: final_job(fresh_db, ids[0]), 90, interval_s=0.2, what="the job to finish")
        assert final["status"] == "completed"
        chunks = chunk_set(fresh_db, repo)
        assert duplicates(chunks) == [] and chunks == reference_chunk_set(repo)
    finally:
        group.stop()


# --- the rescue race, with real concurrent database sessions ------------------------------------

SETTINGS = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=5)


def _planned_job(store: Store, repo: Path) -> str:
    status, _ = jobs.create_job(store, str(repo), "race", False)
    assert indexing.plan_job(store, SETTINGS, HashingEmbedder(), status.job_id)
    return status.job_id


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def _waiting_sessions(url: str) -> int:
    with get_store(url).transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        return int(cur.fetchone()["n"])  # type: ignore[index]


def _race(url: str, job_id: str, first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run `first` then `second` while batch 0's row is locked, so both decide on the same old row
    version; release the lock once both are queued on it (first in line wins the row first)."""
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM indexing_batches WHERE job_id = %s AND batch_no = 0 FOR UPDATE", (job_id,))
            t1, out1 = _in_thread(first)
            wait_for(lambda: _waiting_sessions(url) >= 1, 10, interval_s=0.02, what="the first side to wait")
            t2, out2 = _in_thread(second)
            wait_for(lambda: _waiting_sessions(url) >= 2, 10, interval_s=0.02, what="the second side to wait")
        holder.commit()
    finally:
        holder.close()
    t1.join(10)
    t2.join(10)
    return out1[0], out2[0]


def _batch(store: Store, job_id: str) -> dict[str, Any]:
    with store.transaction() as cur:
        cur.execute("SELECT status, lease_owner, attempts FROM indexing_batches WHERE job_id = %s AND batch_no = 0",
                    (job_id,))
        return dict(cur.fetchone())  # type: ignore[arg-type]


def _expire(store: Store, job_id: str) -> None:
    with store.transaction() as cur:
        cur.execute("UPDATE indexing_batches SET lease_expires_at = now() - interval '1 second' "
                    "WHERE job_id = %s AND batch_no = 0", (job_id,))


def test_a_batch_that_finishes_while_the_reaper_expires_its_lease_stays_done(tmp_path: Path, fresh_db: str) -> None:
    store = Store(fresh_db)
    try:
        job_id = _planned_job(store, code_corpus(tmp_path / "repo", 10))
        assert store.claim_batch(job_id, 0, "host:1:1", 15)
        _expire(store, job_id)  # the lease ran out just as the holder finishes
        totals = {"files_indexed": 5, "files_skipped": 0, "chunks_created": 5}
        finished, (released, exhausted) = _race(
            fresh_db, job_id, lambda: Store(fresh_db).finish_batch(job_id, 0, "host:1:1", totals),
            lambda: Store(fresh_db).expire_leases(max_attempts=5))
        assert finished is True and released == [] and exhausted == []
        assert _batch(store, job_id)["status"] == "completed"
    finally:
        store.close()


def test_a_holder_that_finishes_after_the_reaper_took_its_batch_back_changes_nothing(
        tmp_path: Path, fresh_db: str) -> None:
    store = Store(fresh_db)
    try:
        job_id = _planned_job(store, code_corpus(tmp_path / "repo", 10))
        assert store.claim_batch(job_id, 0, "host:1:1", 15)
        _expire(store, job_id)
        totals = {"files_indexed": 5, "files_skipped": 0, "chunks_created": 5}
        (released, _), finished = _race(
            fresh_db, job_id, lambda: Store(fresh_db).expire_leases(max_attempts=5),
            lambda: Store(fresh_db).finish_batch(job_id, 0, "host:1:1", totals))
        assert released == [(job_id, 0)] and finished is False
        assert _batch(store, job_id) == {"status": "pending", "lease_owner": None, "attempts": 1}
        result = indexing.index_batch(store, SETTINGS, HashingEmbedder(), job_id, 0, owner="host:2:1")
        assert result.status == "completed" and _batch(store, job_id)["lease_owner"] == "host:2:1"
    finally:
        store.close()
