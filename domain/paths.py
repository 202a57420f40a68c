"""Validation of repository paths given by clients."""

from __future__ import annotations

import os
from pathlib import Path

from domain.errors import InvalidInput


def validate_repo_path(raw: str) -> Path:
    """The resolved repository directory for a client-supplied path.

    Raises:
        InvalidInput: empty, relative, containing '..', not existing, or not a directory.
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
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise InvalidInput(f"repo_path {raw!r} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"repo_path {raw!r} cannot be read: {exc.strerror}") from None
    if not resolved.is_dir():
        raise InvalidInput(f"repo_path {raw!r} is not a directory")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise InvalidInput(f"repo_path {raw!r} is not readable by the codesearch process")
    return resolved
