"""Helpers the test tiers share: real processes, small repositories, bounded polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
TEMPLATE_DB = "cs_template"
ROOT = Path(__file__).resolve().parents[1]


def database_url_for(url: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def admin_url_of(url: str) -> str:
    return database_url_for(url, "postgres")


def wait_for(predicate: Callable[[], T], timeout_s: float = 60, interval_s: float = 0.1, what: str = "condition") -> T:
    """Poll until predicate() is truthy; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url, "CODESEARCH_EMBEDDER": "hashing", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class WorkerGroup:
    """`dramatiq actors` as a real subprocess (its own process group, so all workers stop together)."""

    def __init__(self, database_url: str, processes: int = 1, threads: int = 4, metrics_dir: str | None = None,
                 **env: str) -> None:
        self.database_url, self.processes, self.threads = database_url, processes, threads
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="cs-worker-", suffix=".log")[1])
        self.metrics_port = free_port()
        self.metrics_dir = metrics_dir or tempfile.mkdtemp(prefix="cs-prom-")
        self.env = env

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        env = child_env(self.database_url, dramatiq_prom_port=str(self.metrics_port), dramatiq_prom_host="127.0.0.1",
                        dramatiq_prom_db=self.metrics_dir, CODESEARCH_WORKER_METRICS_PORT=str(self.metrics_port),
                        CODESEARCH_WORKER_METRICS_HOST="127.0.0.1", CODESEARCH_WORKER_METRICS_DIR=self.metrics_dir,
                        **self.env)
        cmd = [sys.executable, "-m", "dramatiq", "actors", "--processes", str(self.processes),
               "--threads", str(self.threads)]
        with self.log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # Only the main process: it forwards SIGTERM to its workers once. Signalling the whole group
        # would hand each worker a second SIGTERM, which dramatiq treats as "kill now".
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def make_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write a small repository; values are text (UTF-8) or raw bytes."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


SAMPLE_REPO: dict[str, str | bytes] = {
    "src/billing/invoice.py": (
        "class InvoiceCalculator:\n"
        "    \"\"\"Computes invoice totals with tax.\"\"\"\n\n"
        "    def compute_total_with_tax(self, amount, tax_rate):\n"
        "        return round(amount * (1 + tax_rate), 2)\n"
    ),
    "src/net/http_server.py": (
        "import socket\n\n"
        "def serve_forever(host, port):\n"
        "    sock = socket.socket()\n"
        "    sock.bind((host, port))\n"
        "    sock.listen()\n"
        "    while True:\n"
        "        conn, _ = sock.accept()\n"
        "        conn.sendall(b'HTTP/1.1 200 OK\\r\\n\\r\\n')\n"
    ),
    "web/app.ts": "export function parseHttpDate(value: string): Date {\n  return new Date(Date.parse(value));\n}\n",
    "docs/notes.md": "# Notes\n\nThe invoice module computes totals.\n",
    "node_modules/dep/index.js": "module.exports = function ignoredDependency() {}\n",
    ".gitignore": "secret/\n",
    "secret/key.py": "API_KEY = 'should never be indexed'\n",
    "assets/logo.bin": b"\x89PNG\x00\x00\x01binary",
    "legacy/latin1.py": "caf\xe9 = 1\n".encode("latin-1"),
}


def enqueue_job_on(url: str, job_id: str) -> None:
    """Send a job's planning message through a broker on `url` (the process-wide broker may use another)."""
    import actors
    from actors.broker import make_broker

    broker = make_broker(url)
    try:
        broker.enqueue(actors.plan_job.message(job_id))
    finally:
        broker.close()
