"""Helpers the test tiers share: real processes, small repositories, bounded polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import hashlib
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
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


ChunkKey = tuple[str, int, int, str]  # path, start_line, end_line, content_hash


def chunk_set(url: str, repo: Path) -> list[ChunkKey]:
    """The chunks indexed for one repository directory, in a stable order (duplicates kept)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT c.path, c.start_line, c.end_line, c.content_hash FROM chunks c
                           JOIN repositories r ON r.id = c.repository_id WHERE r.root_path = %s
                           ORDER BY 1, 2, 3, 4""", (str(repo.resolve()),))
            return [tuple(row) for row in cur.fetchall()]  # type: ignore[misc]
    finally:
        conn.close()


def reference_chunk_set(repo: Path) -> list[ChunkKey]:
    """The chunk set of a clean in-process run of `repo` on a database of its own (hashing embedder:
    the set of (path, lines, content hash) does not depend on the embedder). Remembered per tree
    content, so tests sharing a corpus pay for one clean run."""
    import hashlib

    digest = hashlib.sha256(os.environ.get("CODESEARCH_CHUNK_MAX_TOKENS", "").encode())
    for path in sorted(p for p in repo.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(repo)}\0".encode() + path.read_bytes() + b"\0")
    key = digest.hexdigest()
    if key not in _references:
        _references[key] = _clean_run(repo)
    return _references[key]


_references: dict[str, list[ChunkKey]] = {}


def _clean_run(repo: Path) -> list[ChunkKey]:
    import uuid

    from domain import indexing, jobs
    from domain.embedders import HashingEmbedder
    from domain.settings import Settings
    from domain.store import Store

    admin, name = os.environ["CS_TEST_ADMIN_URL"], f"ref_{uuid.uuid4().hex[:12]}"
    _admin_sql(admin, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = database_url_for(admin, name)
    store = Store(url)
    try:
        settings, embedder = Settings(CODESEARCH_EMBEDDER="hashing"), HashingEmbedder()
        status, _ = jobs.create_job(store, str(repo), "reference", False)
        for batch_no in indexing.plan_job(store, settings, embedder, status.job_id) or []:
            indexing.index_batch(store, settings, embedder, status.job_id, batch_no)
        assert store.aggregate_job(status.job_id)["status"] == "completed"  # type: ignore[index]
        return chunk_set(url, repo)
    finally:
        store.close()
        _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_sql(admin: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def duplicates(chunks: list[ChunkKey]) -> list[ChunkKey]:
    return sorted({c for c in chunks if chunks.count(c) > 1})


def code_corpus(root: Path, files: int, functions: int = 12) -> Path:
    """A repository of `files` small Python modules in 12 packages."""
    return make_repo(root, {f"pkg{i % 12}/mod_{i}.py": "\n".join(
        f"def fn_{i}_{k}(x):\n    return x + {k}\n" for k in range(functions)) for i in range(files)})


def enqueue_on(url: str, message: object) -> None:
    """Send through a broker on this database (the process-wide broker is bound to another)."""
    from actors.broker import make_broker

    broker = make_broker(url)
    try:
        broker.enqueue(message)  # type: ignore[arg-type]
    finally:
        broker.close()


def start_job(url: str, repo: Path, project: str = "faults", force: bool = False) -> str:
    """Create a job as the MCP tool does and send its planning message on `url`; returns the job id."""
    import actors
    from domain import jobs
    from domain.store import get_store

    status, created = jobs.create_job(get_store(url), str(repo), project, force)
    if created:
        enqueue_on(url, actors.plan_job.message(status.job_id))
    return status.job_id


def final_job(url: str, job_id: str) -> dict[str, object] | None:
    """The job row once it is completed, failed or cancelled; None while it is active."""
    from domain.store import get_store

    row = get_store(url).get_job(job_id)
    return row if row and row["status"] in ("completed", "failed", "cancelled") else None


def worker_ready(group: "WorkerGroup") -> bool:
    return "ready for action" in group.output()


def fake_vector(text: str, dim: int) -> list[float]:
    """What the fake Ollama servers answer for `text`: deterministic, deliberately not normalised."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % 32] - 127.5) / 10 for i in range(dim)]


class JsonHandler(BaseHTTPRequestHandler):
    """Base of the fake Ollama servers' handlers: JSON replies, no request logging."""

    # Headers and body leave in two writes; with Nagle's algorithm the body would wait for the
    # client's delayed ACK (tens of ms a request). Ollama (Go) sets TCP_NODELAY too.
    disable_nagle_algorithm = True

    def _reply(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def indexed(url: str, repo: Path) -> dict[str, str]:
    """Each indexed file of a repository with its chunks' content joined."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT c.path, string_agg(c.content, '\n' ORDER BY c.start_line) FROM chunks c
                           JOIN repositories r ON r.id = c.repository_id WHERE r.root_path = %s GROUP BY 1""",
                        (str(repo.resolve()),))
            return dict(cur.fetchall())
    finally:
        conn.close()


def follows(url: str, repo: Path, expected: dict[str, str | None], timeout_s: float = 30) -> dict[str, str]:
    """Wait until each path is indexed holding its text (None: not indexed)."""
    def matches() -> dict[str, str] | None:
        now = indexed(url, repo)
        ok = all((text is None and path not in now) or (text is not None and text in now.get(path, ""))
                 for path, text in expected.items())
        return now if ok else None
    return wait_for(matches, timeout_s, interval_s=0.1, what=f"the index to follow the disk: {expected}")
