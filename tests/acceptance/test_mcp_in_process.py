"""End to end through the real MCP client: tools in this process, work in real `dramatiq actors` workers."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio
import mcp
import psycopg2
import pytest

from tests.acceptance.mcp_support import call, error_of, wait_final
from tests.support import SAMPLE_REPO, make_repo, wait_for

pytestmark = pytest.mark.usefixtures("workers")
TOOLS = {"start_indexing_background", "get_indexing_status", "cancel_indexing_background", "list_indexing_jobs",
         "index_repository", "search_code"}


def server() -> Any:
    from mcp_entry.server import build_server

    return build_server()


def project() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def test_a_client_sees_all_six_tools_with_typed_parameters() -> None:
    async def body() -> None:
        async with mcp.Client(server()) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert TOOLS <= set(tools)
            limit = tools["search_code"].input_schema["properties"]["limit"]
            assert (limit.get("minimum"), limit.get("maximum")) == (1, 50)
    anyio.run(body)


def test_a_job_started_in_the_background_completes_and_its_code_is_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", SAMPLE_REPO)
    pid = project()

    async def body() -> None:
        async with mcp.Client(server()) as client:
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": pid})
            assert started["status"] == "pending" and started["project_id"] == pid
            final = await wait_final(client, started["job_id"])
            assert final["status"] == "completed", final
            assert final["files_indexed"] == 5 and final["files_scanned"] == 6 and final["chunks_created"] >= 5
            assert final["completed_at"] and final["started_at"] and final["progress_percentage"] == 100
            found = await call(client, "search_code", {"query": "compute_total_with_tax", "project_id": pid})
            assert found["results"][0]["file_path"] == "src/billing/invoice.py"
            assert found["results"][0]["repository"] == "shop" and found["latency_ms"] >= 0
            listed = await call(client, "list_indexing_jobs", {"project_id": pid})
            assert [j["job_id"] for j in listed["jobs"]] == [started["job_id"]]
    anyio.run(body)


def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(tmp_path: Path) -> None:
    a_file = tmp_path / "f.py"
    a_file.write_text("x = 1\n")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("start_indexing_background", {"repo_path": "relative/dir"}, "relative"),
        ("start_indexing_background", {"repo_path": f"{tmp_path}/../etc"}, "'..'"),
        ("start_indexing_background", {"repo_path": f"{tmp_path}/no/such/dir"}, "does not exist"),
        ("start_indexing_background", {"repo_path": "/no/such/dir"}, "outside the directories"),
        ("start_indexing_background", {"repo_path": str(a_file)}, "not a directory"),
        ("start_indexing_background", {"repo_path": str(tmp_path), "project_id": "bad project!"}, "project_id"),
        ("get_indexing_status", {"job_id": "not-a-uuid"}, "not a valid job id"),
        ("get_indexing_status", {"job_id": str(uuid.uuid4())}, "no indexing job"),
        ("cancel_indexing_background", {"job_id": str(uuid.uuid4())}, "no indexing job"),
        ("search_code", {"query": "   "}, "query is empty"),
        ("search_code", {"query": "x", "limit": 0}, "limit"),
        ("search_code", {"query": "x", "limit": 51}, "limit"),
        ("search_code", {"query": "x", "directory": "../up"}, "directory"),
        ("list_indexing_jobs", {"status": "lost"}, "status"),
    ]

    async def body() -> None:
        async with mcp.Client(server()) as client:
            for name, args, expected in cases:
                message = await error_of(client, name, args)
                assert expected in message, (name, args, message)
                assert "Traceback" not in message
            assert TOOLS <= {t.name for t in (await client.list_tools()).tools}
            assert "jobs" in await call(client, "list_indexing_jobs", {})
    anyio.run(body)


def test_concurrent_calls_all_answer_and_at_most_server_concurrency_run_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 searches at once in one session: each is answered (psycopg2's pool alone, 16 connections,
    failed 24 of them), and no more than CODESEARCH_SERVER_CONCURRENCY run together. The first three
    meet at a barrier, so a server running fewer at once fails here too."""
    from domain import search as search_domain
    from domain.settings import Settings
    from mcp_entry.server import build_server

    repo = make_repo(tmp_path / "shop", SAMPLE_REPO)
    pid = project()
    real_search = search_domain.search
    lock, active, peak, arrived = threading.Lock(), [0], [0], [0]
    meet = threading.Barrier(3, timeout=20)

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            arrived[0] += 1
            first = arrived[0] <= 3
            peak[0] = max(peak[0], active[0])
        try:
            if first:
                try:
                    meet.wait()
                except threading.BrokenBarrierError:
                    pass
                else:  # the three hold every place: the other 37 wait, and say so in the metrics
                    wait_for(lambda: waiting() == 37, timeout_s=20, what="37 calls waiting for a place")
            return real_search(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    the_server = build_server(Settings(CODESEARCH_SERVER_CONCURRENCY=3))

    def waiting() -> float:
        return the_server.metrics.registry.get_sample_value("codesearch_tool_calls_waiting") or 0.0

    async def body() -> None:
        async with mcp.Client(the_server) as client:
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": pid})
            assert (await wait_final(client, started["job_id"]))["status"] == "completed"
            monkeypatch.setattr(search_domain, "search", counted)
            results = await asyncio.gather(*(
                client.call_tool("search_code", {"query": f"tax total {i}", "project_id": pid}) for i in range(40)))
            errors = [c.text for r in results if r.is_error for c in r.content]
            assert errors == [] and all(r.structured_content["results"] for r in results)
    anyio.run(body)
    assert peak[0] == 3 and not meet.broken and waiting() == 0


def test_index_repository_waits_and_reports_progress(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "many", {f"pkg/mod_{i}.py": f"def function_{i}():\n    return {i}\n" for i in range(80)})
    notes: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        notes.append((done, total, message))

    async def body() -> None:
        async with mcp.Client(server()) as client:
            final = await call(client, "index_repository", {"repo_path": str(repo), "project_id": project()},
                               progress_callback=progress)
            assert final["status"] == "completed" and final["files_indexed"] == 80
    anyio.run(body)
    assert notes and notes[-1][0] == 100 and notes[-1][1] == 100
    assert [n[0] for n in notes] == sorted(n[0] for n in notes)


def test_a_cancelled_job_stops_and_writes_nothing_after_cancellation(tmp_path: Path, shared_db: str) -> None:
    repo = make_repo(tmp_path / "big", {f"d{i % 7}/m_{i}.py": "\n".join(f"v_{i}_{k} = {k}" for k in range(60))
                                        for i in range(600)})
    pid = project()

    async def body() -> dict[str, Any]:
        async with mcp.Client(server()) as client:
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": pid})
            cancelled = await call(client, "cancel_indexing_background", {"job_id": started["job_id"]})
            assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
            again = await error_of(client, "cancel_indexing_background", {"job_id": started["job_id"]})
            assert "already cancelled" in again
            return cancelled
    cancelled = anyio.run(body)

    def queue_idle() -> bool:
        return _scalar(shared_db, "SELECT count(*) FROM dramatiq.queue WHERE state IN ('queued', 'consumed')") == 0
    wait_for(queue_idle, 60, what="workers to drain the queue")
    late = _scalar(shared_db, "SELECT count(*) FROM files f JOIN indexing_jobs j ON j.repository_id = f.repository_id "
                              "WHERE j.id = %s AND f.indexed_at > j.cancelled_at", (cancelled["job_id"],))
    assert late == 0
    assert _scalar(shared_db, "SELECT status FROM indexing_jobs WHERE id = %s", (cancelled["job_id"],)) == "cancelled"


def _scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()
