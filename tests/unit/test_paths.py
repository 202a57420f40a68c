"""Repository paths from clients: inside the allowed roots, never kernel file systems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domain.errors import InvalidInput
from domain.paths import validate_repo_path


def test_a_path_inside_an_allowed_root_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    assert validate_repo_path(str(tmp_path / "repo"), [tmp_path.resolve()]) == (tmp_path / "repo").resolve()


def test_a_symlink_from_inside_an_allowed_root_to_outside_is_refused(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "escape")
    with pytest.raises(InvalidInput, match="outside the directories"):
        validate_repo_path(str(tmp_path / "escape"), [tmp_path.resolve()])


def test_whether_a_path_outside_the_roots_exists_is_not_revealed(tmp_path: Path) -> None:
    messages = set()
    for raw in ("/etc", "/no/such/directory"):
        with pytest.raises(InvalidInput) as caught:
            validate_repo_path(raw, [tmp_path.resolve()])
        messages.add(str(caught.value).replace(repr(raw), "PATH"))
    assert len(messages) == 1


@pytest.mark.parametrize("raw", ["/proc/self", "/proc", "/sys/kernel", "/dev"])
def test_kernel_file_systems_are_never_indexed_even_under_an_allowed_root(raw: str) -> None:
    with pytest.raises(InvalidInput, match="kernel file system"):
        validate_repo_path(raw, [Path("/")])
