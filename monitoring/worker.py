"""Metrics of a worker group: Dramatiq's Prometheus middleware, made safe to run twice on one host.

Every process of a `dramatiq actors` group writes its metrics into one prometheus_client
multiprocess directory; one exposition process per group (a Dramatiq "fork") serves their sum.
Compared to the stock middleware this one

- binds `CODESEARCH_WORKER_METRICS_HOST:PORT` (loopback by default, not 0.0.0.0), so a second
  group on a host only needs its own port (the directory defaults to one per port);
- clears the directory when a group starts: files left by an earlier group (or by killed
  processes) would otherwise be summed into this group's counters and gauges forever;
- drops, at each scrape, the live-gauge files of processes that died without saying so.

prometheus_client decides at import whether it runs in multiprocess mode, so nothing in a worker
process may import it before `after_process_boot` has set `PROMETHEUS_MULTIPROC_DIR`; the metric
objects are therefore built lazily (`indexing_metrics`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.middleware import prometheus as dramatiq_prometheus

from domain.settings import get_settings
from monitoring.indexing import indexing_metrics

log = logging.getLogger(__name__)
_GROUP_MARKER = ".group"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


class WorkerMetrics(dramatiq_prometheus.Prometheus):
    """Dramatiq's Prometheus middleware with a per-group directory, port and loopback default."""

    @property
    def forks(self) -> list[Any]:
        return [serve_worker_metrics]

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        directory = get_settings().metrics_dir
        start_group(directory, os.getppid())
        # The stock middleware reads its directory from this module global, here and at shutdown.
        dramatiq_prometheus.DB_PATH = str(directory)
        super().after_process_boot(broker)
        indexing_metrics()  # create ours now that prometheus_client is in multiprocess mode


def start_group(directory: Path, group_id: int) -> bool:
    """Empty `directory` unless this group already did; True when it was emptied.

    Sibling worker processes boot concurrently and share the parent's pid, so the first one to take
    the lock clears the directory and records the group; the others find the record and keep the
    files the first may already be writing.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = directory / _GROUP_MARKER
        if marker.exists() and marker.read_text().strip() == str(group_id):
            return False
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
        marker.write_text(str(group_id))
        return True


def drop_dead_processes(directory: Path) -> list[int]:
    """Forget the live gauges of processes that are gone (killed without a clean shutdown)."""
    from prometheus_client import multiprocess

    dead = sorted({int(m.group(1)) for p in directory.iterdir()
                   if (m := _LIVE_GAUGE_FILE.match(p.name)) and not _alive(int(m.group(1)))})
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render(directory: Path) -> tuple[bytes, str]:
    """The summed metrics of every process that wrote into `directory`, in the text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    drop_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Handler(BaseHTTPRequestHandler):
    directory = Path(".")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] not in ("/", "/metrics"):
            self.send_error(404)
            return
        body, content_type = render(self.directory)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def serve_worker_metrics() -> int:
    """The group's exposition server (runs in its own process, forked by the Dramatiq CLI)."""
    settings = get_settings()
    _Handler.directory = settings.metrics_dir
    try:
        httpd = HTTPServer((settings.worker_metrics_host, settings.worker_metrics_port), _Handler)
    except OSError as exc:
        log.error("worker metrics cannot listen on %s:%s (%s); set CODESEARCH_WORKER_METRICS_PORT to a free port "
                  "for this worker group", settings.worker_metrics_host, settings.worker_metrics_port, exc)
        return 1
    log.info("worker metrics on http://%s:%s/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
    httpd.serve_forever()
    return 0
