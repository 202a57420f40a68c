"""Projects: how a tool picks one (and says why), what each holds, and that they never mix."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp import types

from tests.acceptance.mcp_support import call, wait_final
from tests.support import make_repo

pytestmark = pytest.mark.usefixtures("workers")
FILES = {"src/orders.py": "def place_order(cart):\n    return sum(item.price for item in cart)\n",
         "README.md": "# Shop\n"}


def server() -> Any:
    from mcp_entry.server import build_server

    return build_server()


def pid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def roots_of(*paths: Path) -> Any:
    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=p.as_uri()) for p in paths])  # type: ignore[arg-type]
    return list_roots


async def index(client: mcp.Client, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    started = await call(client, "start_indexing_background", args)
    final = await wait_final(client, started["job_id"])
    assert final["status"] == "completed", final
    return started, final


def test_the_same_repository_in_two_projects_is_searched_separately(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shared_repo", FILES)
    first, second = pid("iso-a"), pid("iso-b")

    async def body() -> None:
        async with mcp.Client(server()) as client:
            await index(client, {"repo_path": str(repo), "project_id": first})
            (repo / "src" / "refunds.py").write_text("def refund_payment(order):\n    return -order.total\n")
            await index(client, {"repo_path": str(repo), "project_id": second})
            in_first = await call(client, "search_code", {"query": "refund_payment", "project_id": first, "limit": 50})
            in_second = await call(client, "search_code", {"query": "refund_payment", "project_id": second})
            assert all(h["file_path"] != "src/refunds.py" for h in in_first["results"])
            assert in_second["results"][0]["file_path"] == "src/refunds.py"
            nowhere = await call(client, "search_code", {"query": "place_order", "project_id": pid("empty")})
            assert nowhere["results"] == []
            repos = {p: (await call(client, "list_repositories", {"project_id": p}))["repositories"]
                     for p in (first, second)}
            assert [r["files"] for r in repos[first]] == [2] and [r["files"] for r in repos[second]] == [3]
            assert repos[first][0]["changed_files"] == 1 and repos[second][0]["changed_files"] == 0
            listed = {p["project_id"]: p for p in (await call(client, "list_projects", {}))["projects"]}
            assert listed[first]["files"] == 2 and listed[second]["files"] == 3
            assert listed[first]["chunks"] >= 2 and listed[first]["last_indexed_at"]
    anyio.run(body)


def test_the_project_comes_from_the_argument_the_client_roots_the_repository_or_the_default(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    from_roots, from_repo = pid("roots"), pid("repo")
    make_repo(workspace, {".codesearch.toml": f'project = "{from_roots}"\n'})
    repo = make_repo(workspace / "service" / "api", {**FILES, ".codesearch.toml": f'project = "{from_repo}"\n'})
    plain = make_repo(tmp_path / "plain", FILES)

    async def body() -> None:
        # Roots exist in handshake-era protocol versions (what clients speak today), not in 2026-07-28.
        async with mcp.Client(server(), mode="legacy", list_roots_callback=roots_of(workspace / "service")) as client:
            started, _ = await index(client, {"repo_path": str(repo)})
            assert started["project_id"] == from_roots
            assert started["project_resolution"]["source"] == "client_root"
            assert str(workspace / ".codesearch.toml") in started["project_resolution"]["detail"]
            found = await call(client, "search_code", {"query": "place_order"})
            assert found["project_id"] == from_roots and found["results"]
            assert found["project_resolution"]["source"] == "client_root"
            explicit, _ = await index(client, {"repo_path": str(plain), "project_id": pid("explicit")})
            assert explicit["project_resolution"]["source"] == "argument"
        async with mcp.Client(server()) as client:  # no roots capability
            started, _ = await index(client, {"repo_path": str(repo)})
            assert (started["project_id"], started["project_resolution"]["source"]) == (from_repo, "repository_config")
            fallback = await call(client, "search_code", {"query": "place_order"})
            assert (fallback["project_id"], fallback["project_resolution"]["source"]) == ("default", "default")
    anyio.run(body)


def test_git_commit_is_read_from_the_checkout(tmp_path: Path) -> None:
    from domain.projects import git_commit

    repo = make_repo(tmp_path / "g", {".git/HEAD": "ref: refs/heads/main\n",
                                      ".git/packed-refs": "# pack-refs\n" + "ab" * 20 + " refs/heads/main\n"})
    assert git_commit(repo) == "ab" * 20
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "refs" / "heads" / "main").write_text("cd" * 20 + "\n")
    assert git_commit(repo) == "cd" * 20
    assert git_commit(tmp_path) is None
