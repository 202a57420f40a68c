"""Watch mode through the real MCP client and the command line: the tools start and stop watches, and
say when a watched repository was last brought up to date."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest

from mcp_entry.cli import main
from tests.acceptance.mcp_support import call, error_of, wait_final
from tests.support import make_repo

pytestmark = pytest.mark.usefixtures("workers")


def server() -> Any:
    from mcp_entry.server import build_server

    return build_server()


async def _until(client: mcp.Client, job_id: str, ok: Any, timeout_s: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout_s):
        while not ok(status := await call(client, "get_indexing_status", {"job_id": job_id})):
            await anyio.sleep(0.1)
    return status


def test_a_repository_indexed_with_watch_stays_fresh_and_says_when_it_was_brought_up_to_date(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "live", {"app.py": "def first_handler():\n    pass\n"})
    pid = f"w-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with mcp.Client(server()) as client:
            started = await call(client, "start_indexing_background",
                                 {"repo_path": str(repo), "project_id": pid, "watch": True})
            assert started["watch"]["status"] == "watching" and "Watching" in started["message"]
            await wait_final(client, started["job_id"])
            status = await _until(client, started["job_id"], lambda s: s["watch"]["up_to_date_at"])
            assert status["watch"]["owner"] and status["requested_by"] == "mcp"
            (repo / "app.py").write_text("def second_handler():\n    pass\n")
            with anyio.fail_after(30):  # the old content matches "handler" too: wait for the new one
                while "second_handler" not in (found := await call(client, "search_code", {
                        "query": "second_handler", "project_id": pid, "mode": "lexical"}))["results"][0]["content"]:
                    await anyio.sleep(0.1)
            hit = found["results"][0]
            assert hit["file_path"] == "app.py" and len(found["results"]) == 1 and hit["indexed_at"]
            repos = await call(client, "list_repositories", {"project_id": pid})
            assert [r["watch"]["status"] for r in repos["repositories"]] == ["watching"]
            listed = await call(client, "list_indexing_jobs", {"project_id": pid})
            assert [w["repo_path"] for w in listed["watches"]] == [str(repo)]
            assert {j["requested_by"] for j in listed["jobs"]} == {"mcp", "watch"}
            stopped = await call(client, "start_indexing_background",
                                 {"repo_path": str(repo), "project_id": pid, "watch": False})
            assert stopped["watch"]["status"] == "stopped" and stopped["watch"]["stopped_reason"] == "unwatched"
            await wait_final(client, stopped["job_id"])
    anyio.run(body)


def test_watch_requests_with_bad_paths_fail_clearly_and_the_server_keeps_serving(tmp_path: Path) -> None:
    (tmp_path / "file.py").write_text("x = 1\n")

    async def body() -> None:
        async with mcp.Client(server()) as client:
            for path, message in ((str(tmp_path / "file.py"), "not a directory"), ("/etc", "outside the directories"),
                                  (str(tmp_path / "missing"), "does not exist")):
                text = await error_of(client, "start_indexing_background", {"repo_path": path, "watch": True})
                assert message in text, text
            assert "watch" in await error_of(client, "start_indexing_background",
                                             {"repo_path": str(tmp_path), "watch": "sometimes"})
            listed = await call(client, "list_indexing_jobs", {})
            assert not [w for w in listed["watches"] if w["repo_path"].startswith(str(tmp_path))]
    anyio.run(body)


def test_the_watch_and_unwatch_commands_report_in_json_and_refuse_bad_paths(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "cli", {"a.py": "x = 1\n"})
    project = f"c-{uuid.uuid4().hex[:8]}"
    assert main(["watch", str(repo), "--project", project, "--json"]) == 0
    watched = json.loads(capsys.readouterr().out)["watches"]
    assert [(w["repo_path"], w["status"]) for w in watched] == [(str(repo), "watching")]
    assert main(["jobs", "--project", project, "--json"]) == 0
    assert [w["repo_path"] for w in json.loads(capsys.readouterr().out)["watches"]] == [str(repo)]
    assert main(["unwatch", str(repo), "--project", project, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["watches"][0]["stopped_reason"] == "unwatched"
    assert main(["unwatch", str(repo), "--project", project, "--json"]) == 1
    assert "is not watched" in json.loads(capsys.readouterr().out)["error"]
    assert main(["watch", str(repo / "a.py"), "--json"]) == 1
    assert "not a directory" in json.loads(capsys.readouterr().out)["error"]
