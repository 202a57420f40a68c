"""The database goes away under running workers: connections killed by pg_terminate_backend, and a
PostgreSQL server stopped and started again mid-job. Workers reconnect and the job completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from domain.database import migrate, start_embedded, stop_embedded
from domain.settings import Settings
from domain.store import get_store
from tests.support import (WorkerGroup, chunk_set, code_corpus, duplicates, final_job, reference_chunk_set,
                           start_job, wait_for, worker_ready)

FILES = 400
OBSERVER = "&application_name=cs-fault-observer"  # the test's own sessions, spared by the terminations


def _batches_done(url: str, job_id: str) -> int:
    return int((get_store(url).get_job(job_id) or {}).get("batches_done", 0))


def _terminate_other_sessions(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                           WHERE datname = current_database() AND pid <> pg_backend_pid()
                             AND application_name <> 'cs-fault-observer'""")
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def _assert_completed_like_a_clean_run(url: str, repo: Path, job_id: str, group: WorkerGroup) -> None:
    try:
        final = wait_for(lambda: final_job(url, job_id), 120, interval_s=0.2, what="the job to finish")
    except AssertionError:
        with get_store(url).transaction() as cur:
            cur.execute("SELECT batch_no, status, attempts, lease_owner, lease_expires_at, files_done "
                        "FROM indexing_batches WHERE job_id = %s AND status <> 'completed'", (job_id,))
            batches = cur.fetchall()
            cur.execute("SELECT state, count(*) FROM dramatiq.queue GROUP BY 1")
            queue = cur.fetchall()
        raise AssertionError(f"{get_store(url).get_job(job_id)}\n{batches}\n{queue}\n{group.output()[-6000:]}")
    assert final["status"] == "completed", (final, group.output()[-3000:])
    chunks = chunk_set(url, repo)
    assert duplicates(chunks) == [] and chunks == reference_chunk_set(repo)


def test_the_job_completes_after_its_workers_connections_are_terminated_twice(tmp_path: Path, fresh_db: str) -> None:
    observer = fresh_db + OBSERVER
    repo = code_corpus(tmp_path / "repo", FILES)
    group = WorkerGroup(fresh_db, 1, 4, CODESEARCH_BATCH_LEASE_SECONDS="8", CODESEARCH_BATCH_MAX_FILES="8")
    group.start()
    try:
        wait_for(lambda: worker_ready(group), 60, what="the worker to boot")
        job_id = start_job(observer, repo)
        for done in (2, 5):
            wait_for(lambda: _batches_done(observer, job_id) >= done, 60, interval_s=0.05, what=f"{done} batches")
            assert final_job(observer, job_id) is None
            # Between retries (backoff) a worker may hold no connection: wait for one to cut.
            wait_for(lambda: _terminate_other_sessions(observer) > 0, 30, interval_s=0.02,
                     what="a worker connection to terminate")
        _assert_completed_like_a_clean_run(observer, repo, job_id, group)
    finally:
        group.stop()


def _start_in_child(settings: Settings) -> None:
    """Start the stopped server again. From a child process: pgserver remembers, per process, the
    servers it started and would hand this one back as if it were still running."""
    code = "from domain.database import start_embedded; from domain.settings import Settings; start_embedded(Settings())"
    env = {**os.environ, "CODESEARCH_HOME": str(settings.home)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


@pytest.fixture
def own_server() -> Iterator[Settings]:
    """A PostgreSQL this test may stop: its own data directory, outside pytest's 0700 basetemp (as
    root, PostgreSQL runs as user pgserver and must be able to reach it)."""
    home = Path(tempfile.mkdtemp(prefix="cs-own-pg-"))
    os.chmod(home, 0o755)
    settings = Settings(CODESEARCH_HOME=home)
    try:
        migrate(start_embedded(settings))
        yield settings
    finally:
        stop_embedded(settings)
        shutil.rmtree(home, ignore_errors=True)


def test_workers_reconnect_and_the_job_completes_after_postgresql_restarts_mid_job(
        tmp_path: Path, own_server: Settings) -> None:
    url = start_embedded(own_server)  # attaches to the running server
    repo = code_corpus(tmp_path / "repo", FILES)
    group = WorkerGroup(url, 1, 4, CODESEARCH_BATCH_LEASE_SECONDS="8", CODESEARCH_BATCH_MAX_FILES="8")
    group.start()
    try:
        wait_for(lambda: worker_ready(group), 60, what="the worker to boot")
        job_id = start_job(url, repo)
        wait_for(lambda: _batches_done(url, job_id) >= 2, 60, interval_s=0.05, what="the job to be under way")
        assert stop_embedded(own_server)
        down_at = time.monotonic()
        get_store(url).close()  # the test's own pooled connections died with the server
        _start_in_child(own_server)
        print(f"PostgreSQL was down for {time.monotonic() - down_at:.1f} s")
        _assert_completed_like_a_clean_run(url, repo, job_id, group)
    finally:
        group.stop()
