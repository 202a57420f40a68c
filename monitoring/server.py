"""Metrics of the MCP server process: tool calls, search latency, and the state of the database read at
scrape time. Served at `/metrics` beside the streamable HTTP endpoint, or by `codesearch metrics`.

The server is one process, so these live in a registry of their own (not multiprocess mode).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from domain.models import JobState
from domain.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
SEARCH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
JOB_STATES: tuple[JobState, ...] = ("pending", "running", "completed", "failed", "cancelled")


class ServerMetrics:
    """A registry with the server's metrics; `collect_database` adds the scrape-time collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tool_calls = Counter("codesearch_tool_calls_total", "MCP tool calls, by tool.", ["tool"],
                                  registry=self.registry)
        self.tool_errors = Counter("codesearch_tool_errors_total", "MCP tool calls that returned an error, by tool.",
                                   ["tool"], registry=self.registry)
        self.tool_calls_waiting = Gauge("codesearch_tool_calls_waiting",
                                        "Tool calls waiting for a place (CODESEARCH_SERVER_CONCURRENCY).",
                                        registry=self.registry)
        self.search_duration = Histogram("codesearch_search_duration_seconds", "search_code latency, by mode.",
                                         ["mode"], buckets=SEARCH_BUCKETS_S, registry=self.registry)

    def collect_database(self, store: Store, worker_max_age_s: float, queues: tuple[str, ...]) -> None:
        """Add the scrape-time database collector (`queues` are reported even when empty)."""
        self.registry.register(DatabaseCollector(store, worker_max_age_s, queues))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def timed_search(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Wrap a search function whose result has a `mode`: observe its latency under that mode."""
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            mode = str(getattr(result, "mode", None) or kwargs.get("mode") or "default")
            self.search_duration.labels(mode).observe(time.perf_counter() - started)
            return result

        return wrapper


class DatabaseCollector(Collector):
    """Reads job, batch, queue and worker state from PostgreSQL at every scrape.

    A scrape that cannot reach the database yields `codesearch_database_up 0` and nothing else, so the
    alert on it fires instead of every other series going silently stale.
    """

    def __init__(self, store: Store, worker_max_age_s: float, queues: tuple[str, ...]) -> None:
        self.store, self.worker_max_age_s, self.queues = store, worker_max_age_s, queues

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("codesearch_database_up", "1 when the metrics collector could read the database.")
        try:
            snap = self.store.operations_snapshot(self.worker_max_age_s)
        except Exception as exc:  # a scrape must never fail: report the database as down
            log.warning("metrics collector cannot read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        snap["queue_depth"] = {**dict.fromkeys(self.queues, 0), **snap["queue_depth"]}
        yield from _snapshot_metrics(snap)


def _snapshot_metrics(snap: dict[str, Any]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("codesearch_jobs", "Indexing jobs in the database, by status.", labels=["status"])
    for state in JOB_STATES:
        jobs.add_metric([state], snap["jobs_by_status"].get(state, 0))
    yield jobs
    yield GaugeMetricFamily("codesearch_pending_batches", "File batches waiting for a worker.",
                            value=snap["pending_batches"])
    yield GaugeMetricFamily("codesearch_oldest_pending_job_age_seconds",
                            "Age of the oldest job no worker has started (0 when none).",
                            value=snap["oldest_pending_job_age_s"])
    labels = ["job_id", "project_id", "repository"]
    progress = GaugeMetricFamily("codesearch_job_progress_percent", "Progress of each running job.", labels=labels)
    idle = GaugeMetricFamily("codesearch_job_idle_seconds",
                             "Seconds since each running job last showed activity.", labels=labels)
    for job in snap["running_jobs"]:
        key = [job["job_id"], job["project_id"], job["repo_name"]]
        progress.add_metric(key, float(job["progress_percentage"]))
        idle.add_metric(key, float(job["idle_s"] or 0))
    yield progress
    yield idle
    queue = GaugeMetricFamily("codesearch_queue_depth_messages", "Queued Dramatiq messages, by queue.",
                              labels=["queue"])
    for name, depth in sorted(snap["queue_depth"].items()):
        queue.add_metric([name], depth)
    yield queue
    yield GaugeMetricFamily("codesearch_live_workers", "Worker processes with a recent heartbeat.",
                            value=snap["live_workers"])
    watches = GaugeMetricFamily("codesearch_watches", "Watched repositories: owned by a live worker process, "
                                "unowned (waiting for one), or stopped.", labels=["state"])
    for state in ("owned", "unowned", "stopped"):
        watches.add_metric([state], snap["watches"].get(state, 0))
    yield watches
