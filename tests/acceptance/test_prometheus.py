"""The shipped Prometheus config, alert rules and Grafana dashboard, against a real Prometheus that
scrapes a real MCP server and worker group while a job runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp
import pytest
import yaml

from tests.acceptance.mcp_support import call, wait_final
from tests.acceptance.test_metrics import REPO, ready
from tests.acceptance.test_processes import HttpServer
from tests.support import ROOT, WorkerGroup, free_port, make_repo, wait_for

MONITORING = ROOT / "monitoring"
# Panels whose data the job and the searches below must produce.
MUST_HAVE_DATA = ("Job throughput", "Files and chunks indexed", "Batch duration", "Embedding call latency",
                  "Search latency")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return path


def dashboard_exprs() -> dict[str, list[str]]:
    dashboard = json.loads((MONITORING / "grafana" / "codesearch.json").read_text())
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}


def alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def test_promtool_accepts_the_config_and_rules_and_the_alerts_fire_when_they_should() -> None:
    promtool = _binary("promtool")
    for args in (["check", "config", str(MONITORING / "prometheus.yml")],
                 ["check", "rules", str(MONITORING / "alerts.yml")],
                 ["test", "rules", str(MONITORING / "alerts_test.yml")]):  # quiet when healthy, firing when not
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


class Prometheus:
    def __init__(self, config: Path, data: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ready, 60, what="Prometheus to be ready")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return dict(json.load(r))
        except urllib.error.HTTPError as exc:  # 400 carries the parse error as JSON
            return dict(json.load(exc))

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr!r}: {answer.get('error')}"
        return list(answer["data"]["result"])

    def positive(self, expr: str) -> bool:
        return any(math.isfinite(v := float(s["value"][1])) and v > 0 for s in self.query(expr))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def scrape_config(server_port: int, worker_port: int) -> str:
    """The shipped prometheus.yml aimed at this test's processes, scraping every second."""
    text = (MONITORING / "prometheus.yml").read_text()
    for old, new in (("127.0.0.1:8765", f"127.0.0.1:{server_port}"), ("127.0.0.1:9191", f"127.0.0.1:{worker_port}"),
                     ("scrape_interval: 15s", "scrape_interval: 1s"),
                     ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                     ("- alerts.yml", f"- {MONITORING / 'alerts.yml'}")):
        assert old in text, f"monitoring/prometheus.yml no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def stack(tmp_path: Path, fresh_db: str) -> Iterator[tuple[Prometheus, HttpServer]]:
    _binary("prometheus")
    group = WorkerGroup(fresh_db, processes=2, threads=2, CODESEARCH_BATCH_MAX_FILES="3")
    group.start()
    server = HttpServer(fresh_db)
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(server.port, group.metrics_port))
    prometheus: Prometheus | None = None
    try:
        wait_for(lambda: ready(group), 60, what="the worker group to boot")
        prometheus = Prometheus(config, tmp_path / "tsdb")
        yield prometheus, server
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.kill()
        group.stop()


def test_dashboard_and_alerts_parse_and_show_a_real_job(tmp_path: Path, stack: tuple[Prometheus, HttpServer]) -> None:
    prometheus, server = stack
    repo = make_repo(tmp_path / "prom_repo", REPO)
    for job in ("codesearch-server", "codesearch-workers"):
        wait_for(lambda: prometheus.positive(f'up{{job="{job}"}}'), 60, what=f"Prometheus to scrape {job}")
    # A baseline sample of every worker counter before the job, so rate() sees the job's increase.
    wait_for(lambda: prometheus.query("codesearch_batches_total"), 30, what="the workers' zero counters")

    async def search() -> None:
        async with mcp.Client(server.url) as client:
            await call(client, "search_code", {"query": "handler event", "project_id": "prom"})

    async def index() -> dict[str, Any]:
        async with mcp.Client(server.url) as client:
            started = await call(client, "start_indexing_background", {"repo_path": str(repo), "project_id": "prom"})
            return await wait_final(client, started["job_id"])

    anyio.run(search)
    wait_for(lambda: prometheus.query("codesearch_search_duration_seconds_count"), 30, what="the first search")
    assert anyio.run(index)["status"] == "completed"
    anyio.run(search)

    for title, exprs in dashboard_exprs().items():
        for expr in exprs:
            prometheus.query(expr)  # asserts it parses and evaluates
    for name, expr in alert_exprs().items():
        prometheus.query(expr)
    for title, exprs in dashboard_exprs().items():
        if title.startswith(MUST_HAVE_DATA):
            for expr in exprs:
                wait_for(lambda: prometheus.positive(expr), 30, interval_s=0.5, what=f"data for {title!r}: {expr}")
    groups = wait_for(lambda: _evaluated_rules(prometheus), 30, what="every alert rule to be evaluated")
    assert {r["name"] for r in groups} == set(alert_exprs())
    assert all(r["health"] == "ok" for r in groups), [(r["name"], r.get("lastError")) for r in groups]


def _evaluated_rules(prometheus: Prometheus) -> list[dict[str, Any]] | None:
    rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
    return rules if rules and all(r.get("health") in ("ok", "err") for r in rules) else None
