"""Validation of repository paths given by clients."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from domain.errors import InvalidInput

#: Kernel file systems: their "files" (e.g. /proc/self/environ) look regular but hold live process
#: state and secrets, so they are never indexed, even when an allowed root contains them.
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def validate_repo_path(raw: str, allowed_roots: Sequence[Path] | None = None) -> Path:
    """The resolved repository directory for a client-supplied path.

    With `allowed_roots` (resolved directories), the path must resolve, symlinks followed, inside one
    of them; that is checked before anything else, so a client learns nothing about paths outside.

    Raises:
        InvalidInput: empty, relative, containing '..', outside the allowed roots, not existing, or not
            a directory.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("repo_path is empty: give the absolute path of a repository directory")
    if "\x00" in raw:
        raise InvalidInput("repo_path contains a NUL byte")
    path = Path(raw)
    if not path.is_absolute():
        raise InvalidInput(f"repo_path {raw!r} is relative: give an absolute path such as /home/me/project")
    if ".." in path.parts:
        raise InvalidInput(f"repo_path {raw!r} contains '..': give the directory's own absolute path")
    if allowed_roots is not None and not is_inside_any(path, allowed_roots):
        raise InvalidInput(f"repo_path {raw!r} is outside the directories codesearch may index; "
                           "the operator can allow it with CODESEARCH_ALLOWED_ROOTS")
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise InvalidInput(f"repo_path {raw!r} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"repo_path {raw!r} cannot be read: {exc.strerror}") from None
    if is_inside_any(resolved, PSEUDO_FILESYSTEMS):
        raise InvalidInput(f"repo_path {raw!r} is in a kernel file system (/proc, /sys, /dev), which is never indexed")
    if not resolved.is_dir():
        raise InvalidInput(f"repo_path {raw!r} is not a directory")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise InvalidInput(f"repo_path {raw!r} is not readable by the codesearch process")
    return resolved


def is_inside_any(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path`, resolved as far as it exists (symlinks followed), is one of `roots` or below one."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    return any(resolved == root or root in resolved.parents for root in roots)
