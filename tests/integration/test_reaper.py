"""The reaper's steps and the job-level guarantees around it, in-process against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain import indexing, jobs, reaper
from domain.embedders import HashingEmbedder
from domain.settings import Settings
from domain.store import Store
from tests.support import code_corpus


@pytest.fixture
def store(fresh_db: str):  # type: ignore[no-untyped-def]
    s = Store(fresh_db)
    yield s
    s.close()


SETTINGS = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=4, CODESEARCH_BATCH_MAX_ATTEMPTS=2)
EMBEDDER = HashingEmbedder()


class Sent:
    """The messages a reaper round would send."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []
        self.jobs: list[str] = []

    def reap(self, store: Store, settings: Settings = SETTINGS) -> reaper.ReapReport:
        with store.reaper_lock() as mine:
            assert mine
            return reaper.reap(store, settings, lambda j, b: self.batches.append((j, b)), self.jobs.append)


def _planned(store: Store, repo: Path, settings: Settings = SETTINGS) -> str:
    status, _ = jobs.create_job(store, str(repo), "p", False)
    assert indexing.plan_job(store, settings, EMBEDDER, status.job_id)
    return status.job_id


def _sql(store: Store, sql: str, *params: Any) -> list[dict[str, Any]]:
    with store.transaction() as cur:
        cur.execute(sql, params)
        return [dict(r) for r in cur.fetchall()] if cur.description else []


def test_an_expired_lease_goes_back_to_pending_and_is_resent(store: Store, tmp_path: Path) -> None:
    job_id = _planned(store, code_corpus(tmp_path / "r", 8))
    assert store.claim_batch(job_id, 0, "gone:1:1", 15)
    sent = Sent()
    assert sent.reap(store).released == [] and sent.batches == []  # the lease is still valid
    _sql(store, "UPDATE indexing_batches SET lease_expires_at = now() - interval '1 s' WHERE batch_no = 0")
    assert sent.reap(store).released == [(job_id, 0)] and sent.batches == [(job_id, 0)]
    result = indexing.index_batch(store, SETTINGS, EMBEDDER, job_id, 0)
    assert result.status == "completed"


def test_a_batch_that_keeps_losing_its_worker_fails_the_job_with_a_clear_error(store: Store, tmp_path: Path) -> None:
    job_id = _planned(store, code_corpus(tmp_path / "r", 8))
    for attempt in (1, 2):
        assert store.claim_batch(job_id, 0, f"gone:{attempt}:1", 15)
        _sql(store, "UPDATE indexing_batches SET lease_expires_at = now() - interval '1 s' WHERE batch_no = 0")
        report = Sent().reap(store)
    assert report.exhausted == [job_id]
    job = store.get_job(job_id)
    assert job is not None and job["status"] == "failed" and job["error_type"] == "BatchAttemptsExhausted"
    assert "batch 0 was claimed 2 times" in job["error_message"] and "gone:2:1" in job["error_message"]


def test_a_job_whose_last_aggregate_message_was_lost_is_completed_by_the_reaper(store: Store, tmp_path: Path) -> None:
    job_id = _planned(store, code_corpus(tmp_path / "r", 8))
    for batch_no in (0, 1):
        indexing.index_batch(store, SETTINGS, EMBEDDER, job_id, batch_no)  # no aggregate_job: "lost"
    assert jobs.get_job(store, job_id).status == "running"
    assert Sent().reap(store).aggregated == [job_id]
    assert jobs.get_job(store, job_id).status == "completed"


def test_a_job_without_progress_for_the_timeout_fails_and_one_with_progress_does_not(
        store: Store, tmp_path: Path) -> None:
    stalled = _planned(store, code_corpus(tmp_path / "a", 8))
    busy = _planned(store, code_corpus(tmp_path / "b", 8))
    _sql(store, "UPDATE indexing_jobs SET started_at = now() - interval '1 hour'")
    indexing.index_batch(store, SETTINGS, EMBEDDER, busy, 0)  # progress just now
    settings = Settings(CODESEARCH_EMBEDDER="hashing", INDEXING_JOB_TIMEOUT_SECONDS=600)
    store.heartbeat_worker("host:1", "host", 1)  # a worker that just started: the job waited for workers
    assert Sent().reap(store, settings).timed_out == []
    _sql(store, "UPDATE worker_heartbeats SET started_at = now() - interval '1 hour'")
    report = Sent().reap(store, settings)  # a worker was up the whole time: the job stalled
    assert report.timed_out == [stalled]
    job = store.get_job(stalled)
    assert job is not None and job["error_type"] == "JobTimeout" and "no progress for 600" in job["error_message"]
    assert jobs.get_job(store, busy).status == "running"


def test_jobs_beyond_the_concurrency_limit_wait_with_a_message_and_start_when_a_slot_frees(
        store: Store, tmp_path: Path) -> None:
    settings = Settings(CODESEARCH_EMBEDDER="hashing", MAX_CONCURRENT_INDEXING_JOBS=1)
    first = _planned(store, code_corpus(tmp_path / "a", 4), settings)
    second, _ = jobs.create_job(store, str(code_corpus(tmp_path / "b", 4)), "p", False)
    assert indexing.plan_job(store, settings, EMBEDDER, second.job_id) is None
    waiting = jobs.get_job(store, second.job_id)
    assert waiting.status == "pending" and "MAX_CONCURRENT_INDEXING_JOBS=1" in str(waiting.progress_message)
    sent = Sent()
    sent.reap(store, settings)
    assert sent.jobs == []  # no free slot yet
    indexing.index_batch(store, settings, EMBEDDER, first, 0)
    store.aggregate_job(first)
    sent.reap(store, settings)
    assert sent.jobs == [second.job_id]
    assert indexing.plan_job(store, settings, EMBEDDER, second.job_id) == [0]


def test_finished_jobs_and_messages_past_retention_are_pruned(store: Store, tmp_path: Path) -> None:
    old = _planned(store, code_corpus(tmp_path / "a", 4))
    recent = _planned(store, code_corpus(tmp_path / "b", 4))
    for job_id in (old, recent):
        indexing.index_batch(store, SETTINGS, EMBEDDER, job_id, 0)
        store.aggregate_job(job_id)
    _sql(store, "UPDATE indexing_jobs SET completed_at = now() - interval '31 days' WHERE id = %s", old)
    _sql(store, "INSERT INTO dramatiq.queue (message_id, queue_name, state, mtime, message) VALUES "
                "(gen_random_uuid(), 'codesearch', 'done', (now() AT TIME ZONE 'UTC') - interval '2 hours', '{}'), "
                "(gen_random_uuid(), 'codesearch', 'done', now() AT TIME ZONE 'UTC', '{}')")
    report = Sent().reap(store, Settings(CODESEARCH_EMBEDDER="hashing", JOB_STATUS_RETENTION_DAYS=30))
    assert (report.pruned_jobs, report.pruned_messages) == (1, 1)
    assert store.get_job(old) is None and store.get_job(recent) is not None


def test_a_batch_resumed_after_a_release_does_not_redo_or_miscount_its_files(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexing, "GROUP_FILES", 1)  # a batch stops between groups: here each file is one
    job_id = _planned(store, code_corpus(tmp_path / "r", 4))
    calls = iter([False, False, True])  # stop before the third file, as a SIGTERM would
    first = indexing.index_batch(store, SETTINGS, EMBEDDER, job_id, 0, should_stop=lambda: next(calls))
    assert first.status == "released" and first.files_indexed == 2
    second = indexing.index_batch(store, SETTINGS, EMBEDDER, job_id, 0, owner="other:1:1")
    assert second.status == "completed"
    assert (second.files_indexed, second.files_skipped) == (4, 0)


def test_a_second_start_with_force_upgrades_a_pending_job_but_not_a_running_one(store: Store, tmp_path: Path) -> None:
    repo = code_corpus(tmp_path / "r", 4)
    status, _ = jobs.create_job(store, str(repo), "p", False)
    joined, created = jobs.create_job(store, str(repo), "p", True)
    assert not created and joined.job_id == status.job_id and joined.force_reindex
    _sql(store, "UPDATE indexing_jobs SET status = 'running', force_reindex = false")
    running, _ = jobs.create_job(store, str(repo), "p", True)
    assert running.job_id == status.job_id and not running.force_reindex


def test_issue_settings_accept_bare_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXING_JOB_TIMEOUT_SECONDS", "42")
    monkeypatch.setenv("CODESEARCH_MAX_CONCURRENT_INDEXING_JOBS", "3")
    monkeypatch.setenv("JOB_STATUS_RETENTION_DAYS", "7")
    settings = Settings()
    assert (settings.indexing_job_timeout_seconds, settings.max_concurrent_indexing_jobs,
            settings.job_status_retention_days) == (42, 3, 7)


def test_a_second_process_does_not_get_the_reaper_lock(store: Store, fresh_db: str) -> None:
    other = Store(fresh_db)
    try:
        with store.reaper_lock() as mine, other.reaper_lock() as theirs:
            assert mine and not theirs
        with other.reaper_lock() as theirs:
            assert theirs
    finally:
        other.close()


def test_lease_renewal_extends_only_leases_their_owner_still_holds(store: Store, tmp_path: Path) -> None:
    job_id = _planned(store, code_corpus(tmp_path / "r", 8))
    assert store.claim_batch(job_id, 0, "host:1:1", 1)
    assert store.renew_leases([(job_id, 0, "host:1:1"), (job_id, 1, "host:1:1")], 600) == 1
    assert store.renew_leases([(job_id, 0, "host:1:2")], 600) == 0 and store.renew_leases([], 600) == 0
    (row,) = _sql(store, "SELECT lease_expires_at > now() + interval '590 s' AS extended FROM indexing_batches "
                         "WHERE batch_no = 0")
    assert row["extended"]


def _listening(store: Store) -> Any:
    """A connection that listens to the queue's enqueue notifications, as a worker's consumer does."""
    import psycopg2

    conn = psycopg2.connect(store.url)
    conn.autocommit = True
    conn.cursor().execute('LISTEN "dramatiq.codesearch.enqueue"')
    return conn


def _notified(conn: Any, timeout_s: float = 5.0) -> list[str]:
    """The payloads delivered to `conn` within timeout_s (polled; a notification is sent at commit)."""
    import select
    import time

    deadline = time.monotonic() + timeout_s
    while not conn.notifies and time.monotonic() < deadline:
        select.select([conn], [], [], 0.1)
        conn.poll()
    return [n.payload for n in conn.notifies]


def _queued_message(store: Store, age_s: float) -> str:
    row = _sql(store, "INSERT INTO dramatiq.queue (message_id, queue_name, state, mtime, message) VALUES "
                      "(gen_random_uuid(), 'codesearch', 'queued', (now() AT TIME ZONE 'UTC') - make_interval(secs => %s), "
                      "'{\"marker\": \"lost\"}') RETURNING message_id::text AS id", age_s)
    return str(row[0]["id"])


def test_a_message_whose_consume_died_with_its_worker_is_renotified_when_that_death_is_seen(
        store: Store, tmp_path: Path) -> None:
    # A worker killed inside a consume: its UPDATE rolled back, the message is `queued` again, and the
    # others already dropped their NOTIFY of it. Before, only the 30 s stranded rule found it again.
    _queued_message(store, 6)
    listener = _listening(store)
    try:
        quiet = Sent().reap(store)  # no worker died: a message queued for 6 s is not re-notified
        assert quiet.renotified == 0 and _notified(listener, 0.5) == []
        job_id = _planned(store, code_corpus(tmp_path / "r", 8))
        assert store.claim_batch(job_id, 0, "gone:1:1", 15)
        _sql(store, "UPDATE indexing_batches SET lease_expires_at = now() - interval '1 s' WHERE batch_no = 0")
        report = Sent().reap(store)
        assert report.released == [(job_id, 0)] and report.renotified >= 1
        assert any('"lost"' in payload for payload in _notified(listener))
    finally:
        listener.close()


def test_a_stale_heartbeat_is_a_dead_worker_seen_once_and_its_lost_messages_are_renotified(store: Store) -> None:
    store.heartbeat_worker("alive:1:1", "h", 1)
    store.heartbeat_worker("dead:2:2", "h", 2)
    _sql(store, "UPDATE worker_heartbeats SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = 'dead:2:2'")
    _queued_message(store, 1)
    listener = _listening(store)
    try:
        report = Sent().reap(store)
        assert report.dead_workers == ["dead:2:2"] and report.renotified == 1
        assert any('"lost"' in payload for payload in _notified(listener))
        assert [w["worker_id"] for w in store.live_workers(60)] == ["alive:1:1"]
        assert Sent().reap(store).dead_workers == []  # seen once
    finally:
        listener.close()
