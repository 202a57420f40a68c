"""Watch mode with real file-system events: a temporary repository is edited on disk while a real
`dramatiq actors` worker group watches it, and the index follows."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain import watching
from domain.errors import InvalidInput, NotFound
from domain.store import Store, get_store
from tests.support import WorkerGroup, follows, indexed, make_repo, wait_for, worker_ready

PROJECT = "watch"


@pytest.fixture(scope="module")
def group(module_db: str) -> Iterator[WorkerGroup]:
    workers = WorkerGroup(module_db, 1, 4, CODESEARCH_WATCH_DEBOUNCE_MS="150")
    workers.start()
    wait_for(lambda: worker_ready(workers), 60, what="the worker group to boot")
    yield workers
    workers.stop()


@pytest.fixture
def store(module_db: str, group: WorkerGroup) -> Store:
    return get_store(module_db)


def watched_repo(store: Store, root: Path, files: dict[str, str | bytes]) -> Path:
    """A repository, watched, its first (whole-repository) job done and the index caught up."""
    repo = make_repo(root, files)
    watching.watch(store, str(repo), PROJECT)
    wait_for(lambda: _caught_up(store, repo), 60, what="the watch's first job to complete")
    return repo


def _caught_up(store: Store, repo: Path) -> bool:
    info = watching.watch_of(store, PROJECT, str(repo.resolve()))
    return info is not None and info.up_to_date_at is not None


def watch_jobs(store: Store, repo: Path) -> list[dict[str, object]]:
    return [j for j in store.list_jobs(PROJECT, None, 500) if j["repo_path"] == str(repo.resolve())]


def test_an_edited_file_is_indexed_with_its_new_content_and_not_its_old(tmp_path: Path, module_db: str,
                                                                         store: Store) -> None:
    repo = watched_repo(store, tmp_path / "edit", {"src/a.py": "def old_name_here():\n    return 1\n"})
    assert "old_name_here" in indexed(module_db, repo)["src/a.py"]
    (repo / "src/a.py").write_text("def brand_new_name():\n    return 2\n")
    now = follows(module_db, repo, {"src/a.py": "brand_new_name"})
    assert "old_name_here" not in now["src/a.py"]
    jobs = watch_jobs(store, repo)
    assert jobs[0]["paths"] == ["src/a.py"] and jobs[0]["connection_id"] == "watch"
    assert jobs[-1]["paths"] is None  # the first job of a watch looks at the whole repository


def test_created_deleted_and_renamed_files_and_directories_follow_the_disk(tmp_path: Path, module_db: str,
                                                                           store: Store) -> None:
    repo = watched_repo(store, tmp_path / "moves", {
        "keep.py": "def keep_me():\n    pass\n", "gone.py": "def delete_me():\n    pass\n",
        "pkg/mod.py": "def in_a_package():\n    pass\n", "pkg/sub/deep.py": "def deep_down():\n    pass\n"})
    (repo / "new.py").write_text("def created_later():\n    pass\n")
    (repo / "gone.py").unlink()
    follows(module_db, repo, {"new.py": "created_later", "gone.py": None})
    (repo / "keep.py").rename(repo / "kept.py")
    (repo / "pkg").rename(repo / "lib")  # a directory: its files move without events of their own
    now = follows(module_db, repo, {"kept.py": "keep_me", "keep.py": None, "lib/mod.py": "in_a_package",
                                    "lib/sub/deep.py": "deep_down", "pkg/mod.py": None, "pkg/sub/deep.py": None})
    assert sorted(now) == ["kept.py", "lib/mod.py", "lib/sub/deep.py", "new.py"]
    shutil.rmtree(repo / "lib")
    assert sorted(follows(module_db, repo, {"lib/mod.py": None, "lib/sub/deep.py": None})) == ["kept.py", "new.py"]


def test_a_gitignore_change_drops_the_files_it_names_and_brings_them_back(tmp_path: Path, module_db: str,
                                                                          store: Store) -> None:
    repo = watched_repo(store, tmp_path / "ignores", {
        "app.py": "def application():\n    pass\n", "gen/out.py": "def generated_thing():\n    pass\n",
        "gen/more/x.py": "def more_generated():\n    pass\n"})
    (repo / ".gitignore").write_text("gen/\n")
    follows(module_db, repo, {"gen/out.py": None, "gen/more/x.py": None, "app.py": "application"})
    (repo / ".gitignore").write_text("# nothing ignored\n")
    follows(module_db, repo, {"gen/out.py": "generated_thing", "gen/more/x.py": "more_generated"})
    (repo / "gen/.gitignore").write_text("more/\n")  # a nested ignore file: only its directory is looked at
    follows(module_db, repo, {"gen/more/x.py": None, "gen/out.py": "generated_thing"})
    assert watch_jobs(store, repo)[0]["paths"] == ["gen"]


def test_changes_the_ignore_rules_skip_send_no_job(tmp_path: Path, module_db: str, store: Store) -> None:
    repo = watched_repo(store, tmp_path / "skips", {".gitignore": "build/\n", "main.py": "def main_entry():\n    pass\n"})
    before = len(watch_jobs(store, repo))
    (repo / "node_modules/lib").mkdir(parents=True)
    (repo / "node_modules/lib/index.js").write_text("function dependency() {}\n")
    (repo / "build").mkdir()
    (repo / "build/out.py").write_text("def build_output():\n    pass\n")
    (repo / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (repo / ".git").mkdir()
    (repo / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (repo / "main.py").write_text("def main_entry_changed():\n    pass\n")  # the one change that counts
    now = follows(module_db, repo, {"main.py": "main_entry_changed"})
    wait_for(lambda: _caught_up(store, repo) and watch_jobs(store, repo)[0]["status"] == "completed", 30,
             what="the job to complete")
    assert sorted(now) == [".gitignore", "main.py"]
    jobs = watch_jobs(store, repo)
    assert len(jobs) == before + 1 and jobs[0]["paths"] == ["main.py"], [j["paths"] for j in jobs]


def test_a_burst_of_three_hundred_files_is_indexed_by_at_most_two_jobs(tmp_path: Path, module_db: str,
                                                                        store: Store) -> None:
    repo = watched_repo(store, tmp_path / "burst", {"README.md": "# burst\n"})
    before = len(watch_jobs(store, repo))
    for i in range(300):  # as a branch switch writes them: back to back
        path = repo / f"pkg{i % 10}" / f"m{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"def burst_function_{i}():\n    return {i}\n")
    wait_for(lambda: len(indexed(module_db, repo)) == 301, 60, interval_s=0.2, what="all 300 files indexed")
    jobs = watch_jobs(store, repo)[: len(watch_jobs(store, repo)) - before]
    assert 1 <= len(jobs) <= 2, [(j["status"], len(j["paths"] or [])) for j in jobs]


def test_a_vanished_directory_stops_its_watch_with_the_reason(tmp_path: Path, module_db: str, store: Store) -> None:
    repo = watched_repo(store, tmp_path / "vanish", {"a.py": "def soon_gone():\n    pass\n"})
    shutil.rmtree(repo)
    info = wait_for(lambda: (w := watching.watch_of(store, PROJECT, str(repo))) is not None
                    and w.status == "stopped" and w, 30, what="the watch to stop")
    assert info.stopped_reason is not None and "no longer exists" in info.stopped_reason
    assert info.owner is None


def test_unwatching_stops_the_watcher_and_the_index_stays(tmp_path: Path, module_db: str, store: Store) -> None:
    repo = watched_repo(store, tmp_path / "unwatch", {"a.py": "def still_indexed():\n    pass\n"})
    stopped = watching.unwatch(store, str(repo), PROJECT)
    assert stopped.status == "stopped" and stopped.stopped_reason == "unwatched"
    (repo / "b.py").write_text("def never_seen():\n    pass\n")
    # Watching again restarts with a whole-repository job, which finds what changed while unwatched.
    watching.watch(store, str(repo), PROJECT)
    now = follows(module_db, repo, {"b.py": "never_seen", "a.py": "still_indexed"})
    assert sorted(now) == ["a.py", "b.py"]


def test_bad_watch_requests_are_refused_and_change_nothing(tmp_path: Path, store: Store) -> None:
    (tmp_path / "file.py").write_text("x = 1\n")
    with pytest.raises(InvalidInput, match="not a directory"):
        watching.watch(store, str(tmp_path / "file.py"), PROJECT)
    with pytest.raises(InvalidInput, match="does not exist"):
        watching.watch(store, str(tmp_path / "missing"), PROJECT)
    with pytest.raises(InvalidInput, match="outside the directories"):
        watching.watch(store, "/etc", PROJECT, [tmp_path])
    with pytest.raises(InvalidInput, match="relative"):
        watching.watch(store, "relative/dir", PROJECT)
    with pytest.raises(InvalidInput, match="project_id"):
        watching.watch(store, str(tmp_path), "bad project!")
    with pytest.raises(NotFound, match="is not watched"):
        watching.unwatch(store, str(tmp_path / f"never-{uuid.uuid4().hex[:6]}"), PROJECT)
    assert [w for w in watching.watches(store, PROJECT) if w.repo_path.startswith(str(tmp_path))] == []
    assert os.listdir(tmp_path) == ["file.py"]
