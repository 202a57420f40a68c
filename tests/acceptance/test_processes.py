"""The product as separate processes: MCP over stdio and streamable HTTP, server restarts, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
from mcp.client.stdio import StdioServerParameters

from domain.store import Store
from tests.acceptance.mcp_support import call, wait_final
from tests.support import ROOT, SAMPLE_REPO, child_env, free_port, make_repo, wait_for

pytestmark = pytest.mark.usefixtures("workers")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_entry", *args], cwd=ROOT, env=env or child_env(
        os.environ["DATABASE_URL"]), capture_output=True, text=True, timeout=timeout)


def test_a_stdio_client_indexes_and_searches_through_codesearch_serve(tmp_path: Path, shared_db: str) -> None:
    repo = make_repo(tmp_path / "stdio_repo", SAMPLE_REPO)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_entry", "serve"], cwd=str(ROOT),
                                   env=child_env(shared_db))

    async def body() -> None:
        async with mcp.Client(params) as client:
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": "stdio"})
            assert (await wait_final(client, started["job_id"]))["status"] == "completed"
            found = await call(client, "search_code", {"query": "parseHttpDate", "project_id": "stdio"})
            assert found["results"][0]["file_path"] == "web/app.ts"
    anyio.run(body)


class HttpServer:
    def __init__(self, database_url: str, *args: str, host: str = "127.0.0.1", **env: str) -> None:
        self.port, self.host = free_port(), host
        self.url = f"http://{host}:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_entry", "serve", "--transport", "http", "--port", str(self.port),
             "--host", host, *args],
            cwd=ROOT, env=child_env(database_url, **env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._listening, 60, what="the HTTP server to listen")

    def _listening(self) -> bool:
        import socket

        assert self.proc.poll() is None, "the server exited"
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_a_job_survives_the_mcp_server_being_killed_and_restarted(tmp_path: Path, shared_db: str) -> None:
    repo = make_repo(tmp_path / "restart_repo", {f"m{i}/f_{i}.py": f"def handler_{i}(event):\n    return {i}\n"
                                                  for i in range(300)})

    async def start(url: str) -> dict[str, Any]:
        async with mcp.Client(url) as client:
            return await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": "restart"})

    async def finish(url: str, job_id: str) -> dict[str, Any]:
        async with mcp.Client(url) as client:
            first = await call(client, "get_indexing_status", {"job_id": job_id})
            assert first["job_id"] == job_id and first["status"] in {"pending", "running", "completed"}
            return await wait_final(client, job_id)

    first = HttpServer(shared_db)
    started = anyio.run(start, first.url)
    first.kill()
    second = HttpServer(shared_db)
    try:
        final = anyio.run(finish, second.url, started["job_id"])
    finally:
        second.kill()
    assert final["status"] == "completed" and final["files_indexed"] == 300


def test_the_cli_indexes_reports_and_searches_with_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "cli_repo", SAMPLE_REPO)
    done = cli("index", str(repo), "--project", "cli", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed" and job["files_indexed"] == 5
    for key in ("job_id", "progress_percentage", "files_scanned", "chunks_created", "error_message", "created_at"):
        assert key in job
    status = json.loads(cli("status", job["job_id"], "--json").stdout)
    assert status["job_id"] == job["job_id"] and status["status"] == "completed"
    listed = json.loads(cli("jobs", "--project", "cli", "--json").stdout)
    assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
    found = cli("search", "invoice total with tax", "--project", "cli", "--file-type", "py", "--json")
    results = json.loads(found.stdout)["results"]
    assert results and all(r["file_path"].endswith(".py") for r in results)
    assert {"file_path", "start_line", "end_line", "score"} <= set(results[0])
    refused = cli("cancel", job["job_id"], "--json")
    assert refused.returncode == 1 and "already completed" in json.loads(refused.stdout)["error"]
    bad = cli("status", "nope", "--json")
    assert bad.returncode == 1 and "not a valid job id" in json.loads(bad.stdout)["error"]


def test_index_wait_says_plainly_when_no_worker_is_consuming(tmp_path: Path, fresh_db: str) -> None:
    repo = make_repo(tmp_path / "lonely", SAMPLE_REPO)
    store = Store(fresh_db)
    with subprocess.Popen([sys.executable, "-m", "mcp_entry", "index", str(repo), "--wait"], cwd=ROOT,
                          env=child_env(fresh_db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            job_ids = wait_for(lambda: store.list_jobs(None, None, 5), 30, what="the job row")
            assert proc.stderr is not None
            seen = ""
            while "No worker has picked this job up" not in seen:  # ends: the CLI exits if it never warns
                line = proc.stderr.readline()
                assert line, f"CLI ended without the warning: {seen}"
                seen += line
            store.cancel_job(job_ids[0]["job_id"])
            assert proc.wait(30) == 3
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()


def test_db_commands_detect_and_stop_an_orphaned_embedded_server() -> None:
    # Not under tmp_path: PostgreSQL runs as the `pgserver` user when we are root, and pytest keeps
    # its basetemp 0700 (and re-applies that whenever a pytest run starts).
    home = Path(tempfile.mkdtemp(prefix="cs-orphan-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CODESEARCH_HOME"] = str(home)
    code = ("import time\nfrom domain.database import start_embedded\nfrom domain.settings import Settings\n"
            "print(start_embedded(Settings()), flush=True)\ntime.sleep(600)")
    try:
        with subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              text=True) as owner:
            assert owner.stdout is not None and "postgresql://" in owner.stdout.readline()
            owner.kill()  # the owner dies without any cleanup
        status = cli("db", "status", env=env)
        assert status.returncode == 0 and "running" in status.stdout and "orphaned" in status.stdout
        assert "stopped" in cli("db", "stop", env=env).stdout
        after = cli("db", "status", env=env)
        assert after.returncode == 3 and "not running" in after.stdout
        assert "not running" in cli("db", "stop", env=env).stdout
    finally:
        cli("db", "stop", env=env)
        shutil.rmtree(home, ignore_errors=True)
