"""What a watcher makes of file-system events, and the scope of a job limited to some paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from watchfiles import Change

from domain.discovery import Scope, discover
from domain.errors import InvalidInput
from domain.watching import changed_paths

ROOT = "/repo"


def test_events_become_root_relative_paths_without_built_in_ignored_directories() -> None:
    events = {(Change.modified, "/repo/src/a.py"), (Change.added, "/repo/.git/index"),
              (Change.added, "/repo/node_modules/x/index.js"), (Change.deleted, "/repo/pkg"),
              (Change.modified, "/elsewhere/b.py"), (Change.added, "/repo/lib/x.egg-info/PKG-INFO")}
    assert changed_paths(ROOT, events) == {"src/a.py", "pkg"}


def test_an_ignore_file_stands_for_its_directory_and_the_roots_for_everything() -> None:
    assert changed_paths(ROOT, {(Change.modified, "/repo/gen/.gitignore")}) == {"gen"}
    assert changed_paths(ROOT, {(Change.modified, "/repo/a/b/.codesearchignore")}) == {"a/b"}
    assert changed_paths(ROOT, {(Change.modified, "/repo/.gitignore")}) is None
    assert changed_paths(ROOT, {(Change.modified, "/repo/.git/info/exclude")}) is None
    assert changed_paths(ROOT, {(Change.deleted, "/repo")}) is None


def test_a_scope_covers_its_paths_and_everything_below_them() -> None:
    scope = Scope.of(["src/a.py", "pkg/", "deep/er/dir"])
    assert scope.paths == {"src/a.py", "pkg", "deep/er/dir"}
    assert scope.ancestors == {"src/", "deep/", "deep/er/"}
    assert scope.covers("pkg/x.py") and scope.covers("deep/er/dir/y/z.py") and scope.covers("src/a.py")
    assert not scope.covers("src/b.py") and not scope.covers("pkgx/a.py") and not scope.covers("deep/er/other.py")


@pytest.mark.parametrize("bad", ["/abs/path", "", "a/../b", "./a", "..", "a//b"])
def test_a_scope_refuses_paths_that_are_not_plain_and_relative(bad: str) -> None:
    with pytest.raises(InvalidInput, match="relative to the repository root"):
        Scope.of([bad])


def test_discovery_in_a_scope_visits_only_its_paths_and_keeps_the_ignore_files_above_them(tmp_path: Path) -> None:
    for rel, text in {".gitignore": "*.log\nsecret_dir/\n", "src/a.py": "a = 1\n", "src/b.py": "b = 1\n",
                      "src/debug.log": "x\n", "pkg/sub/c.py": "c = 1\n", "pkg/d.py": "d = 1\n",
                      "secret_dir/e.py": "e = 1\n", "other/f.py": "f = 1\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = discover(tmp_path, max_file_bytes=10_000,
                     scope=Scope.of(["src/a.py", "src/debug.log", "pkg", "secret_dir/e.py", "missing.py"]))
    assert [f.path for f in found.files] == ["pkg/d.py", "pkg/sub/c.py", "src/a.py"]
    assert found.skipped == {"ignored": 2}  # debug.log by its pattern, secret_dir/ by its directory
    whole = discover(tmp_path, max_file_bytes=10_000)
    assert len(whole.files) == 6  # .gitignore, a, b, c, d and f
