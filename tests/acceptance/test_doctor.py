"""`codesearch doctor` and the codesearch://health resource: every check, with a remedy when it fails."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp
import pytest

from domain import lexical
from tests.acceptance.test_processes import cli
from tests.support import WorkerGroup, child_env, wait_for


def doctor(url: str) -> tuple[int, dict[str, Any]]:
    done = cli("doctor", "--json", env=child_env(url))
    report = json.loads(done.stdout)
    return done.returncode, {c["name"]: c for c in report["checks"]} | {"healthy": report["healthy"]}


def test_doctor_reports_a_healthy_installation_with_a_live_worker(fresh_db: str) -> None:
    group = WorkerGroup(fresh_db, processes=1, threads=1)
    group.start()
    try:
        code, checks = wait_for(lambda: (r := doctor(fresh_db)) and r[1]["workers"]["state"] == "ok" and r, 60,
                                interval_s=0.5, what="doctor to see the worker")
    finally:
        group.stop()
    assert code == 0 and checks["healthy"]
    assert checks["pgvector"]["detail"].startswith("vector 0.")
    assert checks["migrations"]["state"] == "ok" and "head" in checks["migrations"]["detail"]
    assert checks["embedder"]["detail"] == "hashing:v2, 256 dimensions"
    assert checks["database"]["state"] == "ok"
    assert checks["lexer"]["state"] == ("ok" if lexical.compiled() else "warning")


def test_doctor_names_the_remedy_for_a_database_without_migrations_or_workers(empty_db: str) -> None:
    code, checks = doctor(empty_db)
    assert code == 1 and not checks["healthy"]
    assert checks["migrations"]["state"] == "failed" and checks["migrations"]["remedy"] == "run `codesearch migrate`"
    assert checks["workers"]["state"] == "failed"  # no heartbeat table before migrations
    assert checks["pgvector"]["state"] in ("ok", "failed")


def test_doctor_on_an_unreachable_database_fails_without_showing_the_password() -> None:
    done = cli("doctor", "--json", env=child_env("postgresql://admin:hunter2@127.0.0.1:1/nowhere"))
    report = json.loads(done.stdout)
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert done.returncode == 1 and database["state"] == "failed" and "DATABASE_URL" in database["remedy"]
    assert "hunter2" not in done.stdout + done.stderr
    assert "***" in database["detail"]


@pytest.mark.usefixtures("shared_db")
def test_the_health_resource_is_readable_by_an_mcp_client() -> None:
    from mcp_entry.server import build_server

    async def body() -> dict[str, Any]:
        async with mcp.Client(build_server()) as client:
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "codesearch://health" in uris
            result = await client.read_resource("codesearch://health")
            return dict(json.loads(result.contents[0].text))  # type: ignore[union-attr]

    report = anyio.run(body)
    names = {c["name"] for c in report["checks"]}
    assert names == {"embedded_server", "database", "pgvector", "migrations", "workers", "embedder", "lexer"}
    assert {c["state"] for c in report["checks"] if c["name"] in ("database", "migrations")} == {"ok"}
