"""Watches under failure: a killed owner's watch passes to another worker process, and changes made
while nobody watched are indexed when watching resumes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from domain import watching
from domain.store import get_store
from tests.support import WorkerGroup, follows, make_repo, wait_for, worker_ready

PROJECT = "watch-faults"


def _owner(url: str, repo: Path) -> str | None:
    info = watching.watch_of(get_store(url), PROJECT, str(repo.resolve()))
    return info.owner if info is not None and info.status == "watching" else None


def _pids(group: WorkerGroup) -> set[int]:
    import psutil

    assert group.proc is not None
    return {p.pid for p in psutil.Process(group.proc.pid).children(recursive=True)}


def test_another_worker_takes_over_a_watch_when_its_owner_is_killed(tmp_path: Path, fresh_db: str) -> None:
    repo = make_repo(tmp_path / "takeover", {"a.py": "def before_the_kill():\n    pass\n"})
    first, second = WorkerGroup(fresh_db, 1, 2), WorkerGroup(fresh_db, 1, 2)
    try:
        first.start()
        wait_for(lambda: worker_ready(first), 60, what="the first worker group to boot")
        watching.watch(get_store(fresh_db), str(repo), PROJECT)
        owner = wait_for(lambda: _owner(fresh_db, repo), 30, what="a worker to take the watch")
        assert int(owner.rsplit(":", 1)[1]) in _pids(first)
        follows(fresh_db, repo, {"a.py": "before_the_kill"})
        second.start()
        wait_for(lambda: worker_ready(second), 60, what="the second worker group to boot")
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)  # no shutdown: the lease is not released, it runs out
        (repo / "b.py").write_text("def after_the_kill():\n    pass\n")  # nobody watches right now
        new_owner = wait_for(lambda: (o := _owner(fresh_db, repo)) and o != owner and o, 30,
                             what="the second group to take the watch over")
        assert int(new_owner.rsplit(":", 1)[1]) in _pids(second)
        follows(fresh_db, repo, {"a.py": "before_the_kill", "b.py": "after_the_kill"})
        (repo / "a.py").write_text("def watched_by_the_new_owner():\n    pass\n")
        follows(fresh_db, repo, {"a.py": "watched_by_the_new_owner"})
    finally:
        first.stop()
        second.stop()


def test_changes_made_while_no_worker_ran_are_indexed_when_watching_resumes(tmp_path: Path, fresh_db: str) -> None:
    repo = make_repo(tmp_path / "offline", {"a.py": "def first_version():\n    pass\n",
                                            "old.py": "def removed_offline():\n    pass\n"})
    group = WorkerGroup(fresh_db, 1, 2)
    try:
        group.start()
        wait_for(lambda: worker_ready(group), 60, what="the worker group to boot")
        watching.watch(get_store(fresh_db), str(repo), PROJECT)
        follows(fresh_db, repo, {"a.py": "first_version", "old.py": "removed_offline"})
        group.stop()  # a clean stop releases the watch
        assert _owner(fresh_db, repo) is None
        (repo / "a.py").write_text("def second_version():\n    pass\n")
        (repo / "old.py").unlink()
        (repo / "new.py").write_text("def added_offline():\n    pass\n")
        group = WorkerGroup(fresh_db, 1, 2)
        group.start()
        now = follows(fresh_db, repo, {"a.py": "second_version", "old.py": None, "new.py": "added_offline"}, 60)
        assert sorted(now) == ["a.py", "new.py"]
    finally:
        group.stop()
