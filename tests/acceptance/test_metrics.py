"""Metrics as Prometheus scrapes them: worker processes summed per group, the server's /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import mcp
from prometheus_client.parser import text_string_to_metric_families

from domain import jobs
from domain.store import Store
from tests.acceptance.mcp_support import call, error_of, wait_final
from tests.acceptance.test_processes import HttpServer, cli
from tests.support import ROOT, WorkerGroup, child_env, free_port, make_repo, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REPO = {f"pkg{i % 4}/mod_{i}.py": f"def handler_{i}(event):\n    return event + {i}\n" for i in range(24)}


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape_when_up(url: str) -> Samples:
    """Scrape, waiting for the exposition process (it starts after the workers are ready)."""
    def attempt() -> Samples | None:
        try:
            return scrape(url) or {("up", frozenset()): 1.0}
        except OSError:
            return None
    return wait_for(attempt, 30, what=f"{url} to answer")


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def ready(group: WorkerGroup) -> bool:
    return group.output().count("ready for action") >= group.processes


def run_job(url: str, repo: Path, project: str) -> dict[str, Any]:
    """Start a job on `url`'s own broker and wait for it to finish."""
    import actors
    from actors.broker import make_broker

    store = Store(url)
    try:
        status, _ = jobs.create_job(store, str(repo), project, False)
        broker = make_broker(url)
        try:
            broker.enqueue(actors.plan_job.message(status.job_id))
        finally:
            broker.close()
        return wait_for(lambda: _final(store, status.job_id), 90, interval_s=0.2, what="the job to finish")
    finally:
        store.close()


def _final(store: Store, job_id: str) -> dict[str, Any] | None:
    row = store.get_job(job_id)
    return row if row and row["status"] in ("completed", "failed", "cancelled") else None


def test_worker_metrics_add_up_every_process_and_a_new_group_starts_from_zero(tmp_path: Path, fresh_db: str) -> None:
    repo = make_repo(tmp_path / "metrics_repo", {**REPO, "node_modules/x.js": "ignored()\n"})
    first = WorkerGroup(fresh_db, processes=2, threads=2, metrics_dir=str(tmp_path / "prom"),
                        CODESEARCH_BATCH_MAX_FILES="3")
    first.start()
    try:
        wait_for(lambda: ready(first), 60, what="the first worker group to boot")
        job = run_job(fresh_db, repo, "metrics")
        assert job["status"] == "completed" and job["files_indexed"] == 24
        # The aggregator's counter is the last thing a job records; once it shows, the rest is in.
        samples = wait_for(lambda: (s := scrape_when_up(first.metrics_url)) and
                           value(s, "codesearch_jobs_finished_total", status="completed") == 1 and s,
                           30, what="the finished job in the worker metrics")
        assert value(samples, "codesearch_files_indexed_total") == 24
        assert value(samples, "codesearch_chunks_indexed_total") == job["chunks_created"]
        assert value(samples, "codesearch_indexed_bytes_total") == sum(len(t) for t in REPO.values())
        assert value(samples, "codesearch_batches_total", status="completed") == job["batches_total"] == 8
        assert value(samples, "codesearch_batch_duration_seconds_count", status="completed") == 8
        assert value(samples, "codesearch_files_skipped_total", reason="ignored") == 1
        assert (value(samples, "codesearch_embedding_batch_texts_sum") or 0) >= job["chunks_created"]
        assert value(samples, "dramatiq_messages_total", queue_name="codesearch", actor_name="index_batch") == 8
    finally:
        first.stop()
    second = WorkerGroup(fresh_db, processes=1, threads=2, metrics_dir=str(tmp_path / "prom"))
    second.start()
    try:
        wait_for(lambda: ready(second), 60, what="the second worker group to boot")
        samples = scrape_when_up(second.metrics_url)
        assert value(samples, "codesearch_files_indexed_total") in (None, 0)
        assert value(samples, "dramatiq_messages_total", queue_name="codesearch", actor_name="index_batch") is None
    finally:
        second.stop()


def test_the_http_server_serves_tool_search_and_database_metrics_at_slash_metrics(tmp_path: Path,
                                                                                    fresh_db: str) -> None:
    repo = make_repo(tmp_path / "pending_repo", REPO)
    server = HttpServer(fresh_db)
    metrics_url = server.url.removesuffix("/mcp") + "/metrics"

    async def body() -> None:
        async with mcp.Client(server.url) as client:
            await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": "m"})
            await call(client, "search_code", {"query": "handler", "project_id": "m"})
            await error_of(client, "get_indexing_status", {"job_id": "not-a-job"})

    try:
        anyio.run(body)
        samples = scrape(metrics_url)
    finally:
        server.kill()
    assert value(samples, "codesearch_database_up") == 1
    assert value(samples, "codesearch_jobs", status="pending") == 1  # no worker on this database
    assert value(samples, "codesearch_queue_depth_messages", queue="codesearch") == 1
    assert (value(samples, "codesearch_oldest_pending_job_age_seconds") or 0) > 0
    assert value(samples, "codesearch_live_workers") == 0
    assert value(samples, "codesearch_tool_calls_total", tool="start_indexing_background") == 1
    assert value(samples, "codesearch_tool_errors_total", tool="get_indexing_status") == 1
    assert value(samples, "codesearch_tool_errors_total", tool="start_indexing_background") is None
    assert sum(v for (n, _), v in samples.items() if n == "codesearch_search_duration_seconds_count") == 1


def test_codesearch_metrics_prints_the_database_state_for_stdio_deployments(fresh_db: str, tmp_path: Path) -> None:
    from domain.store import get_store

    get_store(fresh_db).watch_repository("metrics", str(tmp_path), "repo")  # no worker: nobody owns it
    done = cli("metrics", env=child_env(fresh_db))
    assert done.returncode == 0, done.stderr
    families = {f.name for f in text_string_to_metric_families(done.stdout)}
    assert {"codesearch_jobs", "codesearch_pending_batches", "codesearch_live_workers"} <= families
    assert 'codesearch_watches{state="unowned"} 1.0' in done.stdout
    assert 'codesearch_watches{state="owned"} 0.0' in done.stdout
    assert "codesearch_database_up 1.0" in done.stdout
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


def test_stdio_deployments_serve_metrics_on_their_own_port(fresh_db: str) -> None:
    ports = [free_port(), free_port()]
    commands = [[sys.executable, "-m", "mcp_entry", "metrics", "--port", str(ports[0])],
                [sys.executable, "-m", "mcp_entry", "serve", "--metrics-port", str(ports[1])]]
    stdins = (subprocess.DEVNULL, subprocess.PIPE)  # the stdio server runs until its input ends
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=child_env(fresh_db), stdin=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for cmd, stdin in zip(commands, stdins)]
    try:
        for port in ports:
            samples = scrape_when_up(f"http://127.0.0.1:{port}/metrics")
            assert value(samples, "codesearch_database_up") == 1
            assert value(samples, "codesearch_jobs", status="pending") == 0
    finally:
        procs[0].terminate()
        assert procs[1].stdin is not None
        procs[1].stdin.close()  # end of the MCP stream: the stdio server exits
        assert procs[0].wait(30) == 0 and procs[1].wait(30) == 0
