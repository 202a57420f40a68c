"""Which project a request works in, and what each project holds.

Resolution order (first match wins): an explicit project_id; a `.codesearch.toml` naming a project at
or above one of the MCP client's workspace roots; when indexing, the repository's own (or an
enclosing) `.codesearch.toml`; CODESEARCH_DEFAULT_PROJECT. The result says which step decided.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from domain.discovery import discover
from domain.errors import InvalidInput
from domain.models import WatchInfo, parse_project_id
from domain.secrets import SecretPolicy
from domain.store import Store

CONFIG_FILE = ".codesearch.toml"
_MAX_CONFIG_BYTES = 64 * 1024
Source = Literal["argument", "client_root", "repository_config", "default"]


class ProjectResolution(BaseModel):
    """The project a tool used, and why."""

    project_id: str
    source: Source = Field(description="argument | client_root | repository_config | default")
    detail: str


def config_project(start: Path) -> tuple[str, Path] | None:
    """The project named by the nearest `.codesearch.toml` (key `project`) at or above `start`.

    Raises:
        InvalidInput: that file is not valid TOML or names an invalid project id.
    """
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILE
        try:
            if not candidate.is_file() or candidate.stat().st_size > _MAX_CONFIG_BYTES:
                continue
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{candidate} is not valid TOML: {exc}") from None
        name = data.get("project")
        if isinstance(name, str):
            return parse_project_id(name), candidate
    return None


def resolve(explicit: str | None, client_roots: Sequence[Path], repo_path: Path | None,
            default: str) -> ProjectResolution:
    """Apply the resolution order; `repo_path` only when indexing (an absolute, allowed path).

    Raises:
        InvalidInput: an invalid explicit id, or a `.codesearch.toml` that is not valid.
    """
    if explicit is not None and explicit.strip():
        return ProjectResolution(project_id=parse_project_id(explicit), source="argument",
                                 detail="project_id given in the request")
    for root in client_roots:
        found = config_project(root)
        if found is not None:
            return ProjectResolution(project_id=found[0], source="client_root",
                                     detail=f"{found[1]} (at or above the client root {root})")
    if repo_path is not None:
        found = config_project(repo_path)
        if found is not None:
            return ProjectResolution(project_id=found[0], source="repository_config", detail=str(found[1]))
    return ProjectResolution(project_id=default, source="default", detail="CODESEARCH_DEFAULT_PROJECT")


class ProjectInfo(BaseModel):
    project_id: str
    repositories: int
    files: int
    chunks: int
    last_indexed_at: datetime | None
    active_jobs: int


class ProjectList(BaseModel):
    projects: list[ProjectInfo]


class RepositoryInfo(BaseModel):
    name: str
    path: str
    files: int
    chunks: int
    embedding_model: str | None
    last_indexed_at: datetime | None
    git_commit: str | None = Field(description="HEAD commit when the repository is a git checkout.")
    changed_files: int | None = Field(
        description="Files added, modified or deleted on disk since they were indexed; null if unreadable.")
    watch: WatchInfo | None = Field(default=None, description=(
        "Its watch, when it is or was watched (status watching or stopped, up_to_date_at)."))


class RepositoryList(BaseModel):
    project_id: str
    repositories: list[RepositoryInfo]


def list_projects(store: Store) -> ProjectList:
    return ProjectList(projects=[ProjectInfo.model_validate(r) for r in store.project_summaries()])


def list_repositories(store: Store, project_id: str, secrets: SecretPolicy, max_file_bytes: int) -> RepositoryList:
    """The project's repositories with counts, git commit and how many files changed since indexing."""
    repos = []
    watched = {w["repo_path"]: WatchInfo.model_validate(w) for w in store.watches(parse_project_id(project_id))}
    for row in store.repository_summaries(project_id):
        root = Path(row["path"])
        repos.append(RepositoryInfo(**row, git_commit=git_commit(root), watch=watched.get(row["path"]),
                                    changed_files=_changed_files(store, str(row["id"]), root, secrets, max_file_bytes)))
    return RepositoryList(project_id=project_id, repositories=repos)


def _changed_files(store: Store, repository_id: str, root: Path, secrets: SecretPolicy, max_file_bytes: int) -> int | None:
    try:
        found = discover(root, max_file_bytes=max_file_bytes, secrets=secrets)
    except (InvalidInput, OSError):
        return None
    changes = found.changes(store.file_stamps(repository_id))
    return len(changes.changed) + len(changes.missing)


def git_commit(root: Path) -> str | None:
    """The commit HEAD points at, read from `.git` without running git; None if not a git checkout."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            git = (root / git.read_text().strip().removeprefix("gitdir:").strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        for base in (git, _common_dir(git)):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def _common_dir(git: Path) -> Path:
    try:
        return (git / (git / "commondir").read_text().strip()).resolve()
    except OSError:
        return git
