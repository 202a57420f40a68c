from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from domain.discovery import DiscoveredFile, discover, language_for, read_text
from domain.errors import InvalidInput
from tests.support import make_repo

MAX = 1024 * 1024


def write(root: Path, relpath: str, content: str | bytes = "x = 1\n") -> Path:
    make_repo(root, {relpath: content})
    return root / relpath


def paths(root: Path, max_file_bytes: int = MAX) -> list[str]:
    return [f.path for f in discover(root, max_file_bytes=max_file_bytes).files]


def test_paths_are_relative_posix_and_sorted_with_size_and_mtime(tmp_path: Path) -> None:
    for rel in ["b.py", "a/z.py", "a/b/c.py", "A.md"]:
        write(tmp_path, rel)
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["A.md", "a/b/c.py", "a/z.py", "b.py"]
    st = (tmp_path / "a/b/c.py").stat()
    assert result.files[1] == DiscoveredFile("a/b/c.py", st.st_size, st.st_mtime_ns)
    assert result.skipped == {}


def test_root_gitignore_ignores_files_and_directories_anywhere(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\nout/\n/only_top.txt\n")
    for rel in ["app.log", "src/deep/app.log", "out/gen.py", "src/out/gen.py", "only_top.txt", "src/only_top.txt", "keep.py"]:
        write(tmp_path, rel)
    assert paths(tmp_path) == [".gitignore", "keep.py", "src/only_top.txt"]


def test_nested_gitignore_is_relative_to_its_directory_and_can_negate(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.gen.py\n")
    write(tmp_path, "pkg/.gitignore", "!keep.gen.py\n/local.py\n")
    for rel in ["a.gen.py", "keep.gen.py", "local.py", "pkg/a.gen.py", "pkg/keep.gen.py", "pkg/local.py", "pkg/sub/local.py"]:
        write(tmp_path, rel)
    assert paths(tmp_path) == [
        ".gitignore", "local.py", "pkg/.gitignore", "pkg/keep.gen.py", "pkg/sub/local.py",
    ]


def test_negation_inside_an_ignored_directory_does_not_reinclude(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "vendor/\n!vendor/keep.py\n")
    write(tmp_path, "vendor/keep.py")
    assert paths(tmp_path) == [".gitignore"]


def test_git_info_exclude_is_honoured_below_gitignore(tmp_path: Path) -> None:
    write(tmp_path, ".git/info/exclude", "secret.py\n*.tmp\n")
    write(tmp_path, ".gitignore", "!wanted.tmp\n")
    for rel in ["secret.py", "x.tmp", "wanted.tmp", "ok.py"]:
        write(tmp_path, rel)
    assert paths(tmp_path) == [".gitignore", "ok.py", "wanted.tmp"]


def test_built_in_directories_and_binary_and_lock_names_are_ignored(tmp_path: Path) -> None:
    for rel in ["node_modules/m/index.js", ".git/config", "sub/__pycache__/m.py", "build/x.py",
                "pkg.egg-info/PKG-INFO", "env/pyvenv.cfg", "logo.png", "package-lock.json",
                "Cargo.lock", "ok.py", "env2/a.py"]:
        write(tmp_path, rel)
    write(tmp_path, "myenv/env/a.py")  # an `env` without pyvenv.cfg is ordinary source
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["env2/a.py", "myenv/env/a.py", "ok.py"]
    assert result.skipped == {"ignored": 9}


def test_content_with_nul_bytes_is_binary_even_with_a_text_extension(tmp_path: Path) -> None:
    write(tmp_path, "data.txt", b"header\x00\x01\x02binary")
    write(tmp_path, "noise.dat", bytes(range(128, 256)) * 4)
    write(tmp_path, "zh.py", "# 中文注释：计算总和\nprint('héllo')\n")
    write(tmp_path, "utf16.txt", "hi there\n".encode("utf-16"))
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["utf16.txt", "zh.py"]
    assert result.skipped == {"binary": 2}


def test_files_over_the_size_limit_are_too_large(tmp_path: Path) -> None:
    write(tmp_path, "big.py", "x" * 101)
    write(tmp_path, "edge.py", "x" * 100)
    result = discover(tmp_path, max_file_bytes=100)
    assert [f.path for f in result.files] == ["edge.py"]
    assert result.skipped == {"too_large": 1}


def test_symlink_to_a_file_outside_the_root_is_skipped_and_counted(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", write(tmp_path, "outside/secret.py")
    write(root, "ok.py")
    (root / "leak.py").symlink_to(outside)
    (root / "leakdir").symlink_to(outside.parent, target_is_directory=True)
    result = discover(root, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["ok.py"]
    assert result.skipped == {"symlink_outside": 2}


def test_names_that_are_not_utf8_are_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    write(tmp_path, "ok.py")
    write(tmp_path, "grüße.py")  # UTF-8 beyond ASCII is fine
    root = os.fsencode(tmp_path)
    with open(os.path.join(root, b"latin1-\xe9.py"), "w") as f:
        f.write("x = 1\n")
    os.mkdir(os.path.join(root, b"dir-\xff"))
    with open(os.path.join(root, b"dir-\xff", b"inner.py"), "w") as f:
        f.write("y = 2\n")
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["grüße.py", "ok.py"]
    assert result.skipped == {"undecodable_name": 2}


def test_symlinks_inside_the_root_are_not_followed(tmp_path: Path) -> None:
    write(tmp_path, "pkg/mod.py")
    (tmp_path / "alias.py").symlink_to(tmp_path / "pkg/mod.py")
    (tmp_path / "pkg/loop").symlink_to(tmp_path, target_is_directory=True)
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["pkg/mod.py"]
    assert result.skipped == {"ignored": 2}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_is_special_and_never_opened(tmp_path: Path) -> None:
    write(tmp_path, "ok.py")
    os.mkfifo(tmp_path / "pipe.py")  # opening it for reading would block forever
    result = discover(tmp_path, max_file_bytes=MAX)
    assert [f.path for f in result.files] == ["ok.py"]
    assert result.skipped == {"special": 1}
    assert read_text(tmp_path, "pipe.py", max_file_bytes=MAX) is None


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_files_and_directories_are_counted(tmp_path: Path) -> None:
    write(tmp_path, "locked.py").chmod(0)
    write(tmp_path, "closed/a.py")
    (tmp_path / "closed").chmod(0)
    try:
        result = discover(tmp_path, max_file_bytes=MAX)
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert result.files == []
    assert result.skipped == {"unreadable": 2}


def test_a_file_with_its_indexed_size_and_mtime_is_kept_without_sniffing_its_content(tmp_path: Path) -> None:
    nul = write(tmp_path, "indexed.py", b"x = 1\0\n")  # binary if sniffed
    st = nul.stat()
    found = discover(tmp_path, max_file_bytes=MAX, known={"indexed.py": (st.st_size, st.st_mtime_ns)})
    assert [f.path for f in found.files] == ["indexed.py"]
    stale = discover(tmp_path, max_file_bytes=MAX, known={"indexed.py": (st.st_size, st.st_mtime_ns + 1)})
    assert stale.files == [] and stale.skipped == {"binary": 1}


def test_changes_name_new_and_edited_files_count_unchanged_ones_and_list_missing_paths(tmp_path: Path) -> None:
    for rel in ["same.py", "edited.py", "new.py"]:
        write(tmp_path, rel)
    found = discover(tmp_path, max_file_bytes=MAX)
    stamp = {f.path: (f.size, f.mtime_ns) for f in found.files}
    changes = found.changes({"same.py": stamp["same.py"], "edited.py": (0, 0), "gone.py": (1, 1)})
    assert [f.path for f in changes.changed] == ["edited.py", "new.py"]
    assert (changes.unchanged, changes.missing) == (1, ["gone.py"])


def test_discover_rejects_a_root_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        discover(write(tmp_path, "f.py"), max_file_bytes=MAX)


def test_read_text_decodes_utf8_and_utf16_and_drops_the_bom(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "\ufeffname = 'ünï'\n".encode())
    write(tmp_path, "b.txt", "wide text\n".encode("utf-16"))
    assert read_text(tmp_path, "a.py", max_file_bytes=MAX) == "name = 'ünï'\n"
    assert read_text(tmp_path, "b.txt", max_file_bytes=MAX) == "wide text\n"


def test_read_text_returns_none_for_latin1_binary_nul_and_too_large(tmp_path: Path) -> None:
    write(tmp_path, "latin.txt", "café crème\n".encode("latin-1"))
    write(tmp_path, "nul.txt", b"a" * 9000 + b"\x00")
    write(tmp_path, "big.txt", "x" * 11)
    for rel in ["latin.txt", "nul.txt", "big.txt", "missing.txt"]:
        assert read_text(tmp_path, rel, max_file_bytes=10_000 if rel != "big.txt" else 10) is None


def test_read_text_refuses_paths_that_escape_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", write(tmp_path, "secret.py", "TOKEN = 1\n")
    write(root, "ok.py")
    (root / "leak.py").symlink_to(outside)
    for rel in ["../secret.py", str(outside), "leak.py", "ok.py\x00"]:
        assert read_text(root, rel, max_file_bytes=MAX) is None
    assert read_text(root, "ok.py", max_file_bytes=MAX) == "x = 1\n"


@pytest.mark.parametrize(
    ("path", "first_line", "language"),
    [
        ("src/app.py", "", "python"),
        ("web/App.tsx", "", "tsx"),
        ("web/index.ts", "", "typescript"),
        ("lib/x.mjs", "", "javascript"),
        ("main.go", "", "go"),
        ("src/lib.rs", "", "rust"),
        ("a/B.java", "", "java"),
        ("x.h", "", "c"),
        ("x.cpp", "", "cpp"),
        ("P.cs", "", "csharp"),
        ("README.md", "", "markdown"),
        ("ci.yml", "", "yaml"),
        ("pyproject.toml", "", "toml"),
        ("Dockerfile", "", "dockerfile"),
        ("docker/Dockerfile.dev", "", "dockerfile"),
        ("Makefile", "", "makefile"),
        ("run.sh", "", "bash"),
        ("bin/tool", "#!/usr/bin/env python3", "python"),
        ("bin/tool", "#!/usr/bin/python3.11 -u", "python"),
        ("bin/deploy", "#!/bin/bash -e", "bash"),
        ("bin/cli", "#!/usr/bin/env -S node --no-warnings", "javascript"),
        ("script.py", "#!/bin/bash", "python"),
        ("LICENSE", "", "text"),
        (".bashrc", "", "text"),
        ("notes.weird", "", "text"),
    ],
)
def test_language_comes_from_the_extension_or_the_shebang(path: str, first_line: str, language: str) -> None:
    assert language_for(path, first_line) == language
