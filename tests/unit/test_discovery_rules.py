"""Ignore rules beyond .gitignore: .codesearchignore, settings' globs, minified/generated files."""

from __future__ import annotations

from pathlib import Path

from domain.discovery import Rules, discover
from domain.settings import Settings
from tests.support import make_repo

MINIFIED = "var a=1;" * 400 + "\n"


def _paths(root: Path, rules: Rules) -> tuple[list[str], dict[str, int]]:
    found = discover(root, max_file_bytes=rules.max_file_bytes, rules=rules)
    return [f.path for f in found.files], found.skipped


def test_codesearchignore_files_are_honoured_at_the_root_and_below(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {
        ".codesearchignore": "fixtures/\n*.snap\n", "src/a.py": "x = 1\n", "fixtures/big.py": "y = 2\n",
        "src/t.snap": "snapshot\n", "src/gen/.codesearchignore": "*.py\n!keep.py\n", "src/gen/out.py": "z\n",
        "src/gen/keep.py": "k\n",
    })
    paths, skipped = _paths(root, Rules(max_file_bytes=10_000))
    assert paths == [".codesearchignore", "src/a.py", "src/gen/.codesearchignore", "src/gen/keep.py"]
    assert skipped == {"ignored": 3}


def test_codesearchignore_can_re_include_what_gitignore_ignores_in_the_same_directory(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {".gitignore": "*.gen.py\n", ".codesearchignore": "!api.gen.py\n",
                                "api.gen.py": "a\n", "other.gen.py": "b\n"})
    paths, _ = _paths(root, Rules(max_file_bytes=10_000))
    assert "api.gen.py" in paths and "other.gen.py" not in paths


def test_exclude_and_include_globs_from_settings_skip_files_as_excluded(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"src/a.py": "a\n", "src/a_test.py": "t\n", "docs/x.md": "d\n", "web/b.ts": "b\n"})
    rules = Settings(CODESEARCH_INCLUDE="src/, web/", CODESEARCH_EXCLUDE="*_test.py").discovery_rules
    paths, skipped = _paths(root, rules)
    assert paths == ["src/a.py", "web/b.ts"] and skipped == {"excluded": 2}


def test_minified_and_generated_files_are_skipped_with_their_own_reason(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"app.js": "function f() {\n  return 1;\n}\n", "bundle.js": MINIFIED,
                                "vendor/lib.min.js": "x\n", "data.json": '{"k": "' + "v" * 2000 + '"}\n'})
    paths, skipped = _paths(root, Rules(max_file_bytes=100_000, max_line_chars=1000))
    assert paths == ["app.js"] and skipped == {"generated": 3}
    relaxed, _ = _paths(root, Rules(max_file_bytes=100_000, max_line_chars=10_000))
    assert "bundle.js" in relaxed
