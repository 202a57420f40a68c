"""Security of the transports and of what may be indexed, through real processes and MCP clients."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.acceptance.mcp_support import call, error_of, wait_final
from tests.acceptance.test_processes import HttpServer
from tests.support import ROOT, child_env, free_port, make_repo, wait_for

TOKEN = "t0ken-for-tests-only"


def status_of(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def serve_exposed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_entry", "serve", "--transport", "http", "--host", "0.0.0.0",
                           "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("unset", ["CODESEARCH_HTTP_TOKEN", "CODESEARCH_ALLOWED_ROOTS"])
def test_an_http_server_on_a_public_address_refuses_to_start_without_token_and_roots(fresh_db: str,
                                                                                    unset: str) -> None:
    env = child_env(fresh_db, CODESEARCH_HTTP_TOKEN=TOKEN, CODESEARCH_ALLOWED_ROOTS="/srv/code")
    del env[unset]
    done = serve_exposed(env)
    assert done.returncode == 1
    assert "refusing to serve MCP on 0.0.0.0" in done.stderr and unset in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_every_http_request_needs_the_bearer_token_when_one_is_set(tmp_path: Path, fresh_db: str) -> None:
    server = HttpServer(fresh_db, CODESEARCH_HTTP_TOKEN=TOKEN)
    metrics = server.url.removesuffix("/mcp") + "/metrics"
    try:
        assert status_of(metrics) == 401
        assert status_of(metrics, {"Authorization": "Bearer wrong"}) == 401
        assert status_of(metrics, {"Authorization": f"Bearer {TOKEN}"}) == 200
        assert status_of(server.url, {"Content-Type": "application/json"}, b"{}") == 401

        async def body() -> None:
            async with create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"}) as client, \
                    mcp.Client(streamable_http_client(server.url, http_client=client)) as mcp_client:
                listed = await call(mcp_client, "list_indexing_jobs", {})
                assert listed["jobs"] == []
        anyio.run(body)
    finally:
        server.kill()


def test_requests_naming_another_host_are_refused_against_dns_rebinding(fresh_db: str) -> None:
    server = HttpServer(fresh_db)
    try:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        assert status_of(server.url, {**headers, "Host": "attacker.example"}, b"{}") == 421
        assert status_of(server.url, {**headers, "Origin": "http://attacker.example"}, b"{}") == 403
    finally:
        server.kill()


@pytest.mark.usefixtures("workers")
def test_paths_outside_the_allowed_roots_and_secret_files_are_never_indexed(tmp_path: Path) -> None:
    from mcp_entry.server import build_server

    repo = make_repo(tmp_path / "with_secrets", {"app.py": "def main():\n    return 'hello'\n",
                                                 ".env": "API_TOKEN=super-secret-value\n",
                                                 "deploy/id_ed25519": "PRIVATE KEY super-secret-value\n"})
    os.symlink("/etc", repo / "etc_link")
    project = f"sec-{tmp_path.name[-8:]}".replace("_", "-")

    async def body() -> None:
        async with mcp.Client(build_server()) as client:
            for path in ("/etc", "/proc/self", str(repo / "etc_link"), "/"):
                message = await error_of(client, "start_indexing_background", {"repo_path": path})
                assert "outside the directories codesearch may index" in message, message
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": project})
            final = await wait_final(client, started["job_id"])
            assert final["status"] == "completed" and final["files_indexed"] == 1, final
            found = await call(client, "search_code", {"query": "super-secret-value API_TOKEN", "project_id": project})
            assert all("super-secret-value" not in hit["content"] for hit in found["results"])
            assert {hit["file_path"] for hit in found["results"]} == {"app.py"}
    anyio.run(body)


def test_the_server_log_never_shows_the_token_or_the_database_password(tmp_path: Path, fresh_db: str) -> None:
    password = "hunter2-db-password"
    url = fresh_db.replace("postgres:@", f"postgres:{password}@", 1).replace("postgres@", f"postgres:{password}@", 1)
    # (trust auth: the password is ignored)
    assert password in url
    port, log = free_port(), tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mcp_entry", "serve", "--transport", "http", "--port", str(port)],
                                cwd=ROOT, env=child_env(url, CODESEARCH_HTTP_TOKEN=TOKEN), stdout=out,
                                stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}/mcp"
    try:
        def listening() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return status_of(endpoint.removesuffix("/mcp") + "/metrics", {"Authorization": f"Bearer {TOKEN}"}) == 200
            except OSError:
                return False

        wait_for(listening, 60, what="the server to listen")
        assert status_of(endpoint, {"Authorization": "Bearer not-the-token"}, b"{}") == 401

        async def body() -> None:
            async with create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"}) as client, \
                    mcp.Client(streamable_http_client(endpoint, http_client=client)) as mcp_client:
                await error_of(mcp_client, "start_indexing_background", {"repo_path": "/etc"})
                await error_of(mcp_client, "get_indexing_status", {"job_id": "nope"})
                await call(mcp_client, "search_code", {"query": "anything"})
                health = await mcp_client.read_resource("codesearch://health")
                assert password not in health.contents[0].text  # type: ignore[union-attr]
        anyio.run(body)
    finally:
        proc.terminate()
        proc.wait(30)
    output = log.read_text()
    assert "MCP endpoint" in output
    assert TOKEN not in output and password not in output, output
