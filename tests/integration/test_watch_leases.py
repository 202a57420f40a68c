"""Watch rows and watcher jobs in a real PostgreSQL: one owner per watch, takeover only after the lease,
and a watcher's paths joining a pending job but never a running one."""

from __future__ import annotations

from pathlib import Path

import psycopg2

from domain.store import get_store

PROJECT = "leases"


def _expire(url: str, repo_path: str) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE repository_watches SET lease_expires_at = now() - interval '1 second' WHERE repo_path = %s",
                    (repo_path,))
    conn.close()


def test_a_watch_has_one_owner_until_its_lease_runs_out(fresh_db: str, tmp_path: Path) -> None:
    store = get_store(fresh_db)
    store.watch_repository(PROJECT, str(tmp_path), "repo")
    assert [r["owner"] for r in store.claim_watches("host:1", 30, 10)] == ["host:1"]
    assert store.claim_watches("host:2", 30, 10) == []  # a live lease is not taken
    assert store.renew_watches("host:1", 30) == {(PROJECT, str(tmp_path))}
    assert store.renew_watches("host:2", 30) == set()
    _expire(fresh_db, str(tmp_path))
    assert [r["owner"] for r in store.claim_watches("host:2", 30, 10)] == ["host:2"]
    assert store.renew_watches("host:1", 30) == set()  # the old owner learns it lost the watch
    assert not store.record_watch(PROJECT, str(tmp_path), "host:1", changed=True)
    assert store.record_watch(PROJECT, str(tmp_path), "host:2", changed=True)


def test_unwatching_and_releasing_end_ownership_and_a_stopped_watch_is_never_claimed(fresh_db: str, tmp_path: Path) -> None:
    store = get_store(fresh_db)
    store.watch_repository(PROJECT, str(tmp_path), "repo")
    store.claim_watches("host:1", 30, 10)
    assert store.release_watches("host:1") == 1
    assert store.claim_watches("host:2", 30, 0) == []  # no room: nothing taken
    assert [r["owner"] for r in store.claim_watches("host:2", 30, 1)] == ["host:2"]
    stopped = store.unwatch_repository(PROJECT, str(tmp_path), "unwatched")
    assert stopped is not None and stopped["status"] == "stopped" and stopped["owner"] is None
    assert store.unwatch_repository(PROJECT, str(tmp_path), "unwatched") is None
    assert store.renew_watches("host:2", 30) == set() and store.claim_watches("host:3", 30, 10) == []
    again = store.watch_repository(PROJECT, str(tmp_path), "repo")
    assert again["status"] == "watching" and again["stopped_reason"] is None
    assert not store.stop_watch(PROJECT, str(tmp_path), "host:9", "not the owner")
    assert [r["owner"] for r in store.claim_watches("host:3", 30, 10)] == ["host:3"]
    assert store.stop_watch(PROJECT, str(tmp_path), "host:3", "the directory vanished")
    assert store.get_watch(PROJECT, str(tmp_path))["stopped_reason"] == "the directory vanished"  # type: ignore[index]


def test_a_watchers_paths_join_a_pending_job_and_a_whole_job_covers_them(fresh_db: str, tmp_path: Path) -> None:
    store = get_store(fresh_db)
    first, created = store.create_job(PROJECT, str(tmp_path), "repo", False, "watch", ["b.py", "a.py"])
    assert created and first["paths"] == ["b.py", "a.py"] and first["scoped_paths"] == 2
    joined, created = store.create_job(PROJECT, str(tmp_path), "repo", False, "watch", ["c.py", "a.py"])
    assert not created and joined["job_id"] == first["job_id"] and joined["paths"] == ["a.py", "b.py", "c.py"]
    whole, created = store.create_job(PROJECT, str(tmp_path), "repo", False, "mcp", None)
    assert not created and whole["paths"] is None  # the user's whole-repository job widens it
    still, _ = store.create_job(PROJECT, str(tmp_path), "repo", False, "watch", ["d.py"])
    assert still["paths"] is None and still["status"] == "pending"


def test_a_running_job_takes_no_more_paths(fresh_db: str, tmp_path: Path) -> None:
    store = get_store(fresh_db)
    job, _ = store.create_job(PROJECT, str(tmp_path), "repo", False, "watch", ["a.py"])
    assert store.start_job(job["job_id"], 4) is not None
    running, created = store.create_job(PROJECT, str(tmp_path), "repo", True, "watch", ["b.py"])
    assert not created and running["status"] == "running"
    assert running["paths"] == ["a.py"] and running["force_reindex"] is False
