"""What every benchmark needs: a corpus nobody here wrote, a database, real worker processes, a fake Ollama.

Not a test module: benchmarks measure, they do not assert. Figures vary with the machine, so the
suite reports ratios wherever two things are compared.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"site-packages", "test", "tests", "idlelib", "__pycache__", "turtledemo", "ensurepip"}


# --- corpora ------------------------------------------------------------------------------------

def stdlib_files() -> list[Path]:
    """The running interpreter's standard library .py files, without tests and third-party code."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts[:-1]))


def build_corpus(dest: Path, copies: int, max_files: int | None = None, first: int = 0) -> dict[str, int]:
    """`copies` copies of the stdlib under dest/copy_<k>/ (k from `first`), each file starting with a
    distinct comment so no two files (and no two chunks at a file's start) are identical: the
    embedding cache gets no free hits. A chunk's embedded text starts with its path, so corpora
    indexed into one database must not share a k. Returns file and byte counts."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files()[:max_files] if max_files else stdlib_files()
    count = size = 0
    for k in range(first, first + copies):
        for src in files:
            rel = src.relative_to(root)
            target = dest / f"copy_{k:02d}" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = f"# corpus copy {k}: {rel}\n".encode() + src.read_bytes()
            target.write_bytes(data)
            count += 1
            size += len(data)
    return {"files": count, "bytes": size}


def copies_for(files: int, per_copy_limit: int | None = None) -> int:
    """How many stdlib copies make at least `files` files."""
    per_copy = min(len(stdlib_files()), per_copy_limit or 10**9)
    return max(1, -(-files // per_copy))


# --- a fake Ollama ----------------------------------------------------------------------------------

class FakeOllama:
    """An HTTP server speaking Ollama's /api/embed: deterministic unit vectors of `dim`, counted.

    About a millisecond a request, as the performance issue asks, so that the pipeline and not the
    fake is measured: each text picks one of `pool` unit vectors, made and serialised once, by a hash
    of its text (the same text always gets the same vector). Serialising fresh vectors per text cost
    ~5 ms of CPU a request, on the same two cores as the workers.
    """

    def __init__(self, dim: int = 768, pool: int = 1024) -> None:
        self.dim, self.requests, self.texts = dim, 0, 0
        matrix = np.random.default_rng(7).standard_normal((pool, dim))
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        self._pool = [json.dumps([round(x, 5) for x in row]) for row in matrix.tolist()]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Ollama does
            # Headers and body leave in two writes: with Nagle's algorithm on, the body then waits for
            # the client's delayed ACK (~20-40 ms a request). Ollama (Go) sets TCP_NODELAY too.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                outer.requests += 1
                outer.texts += len(texts)
                vectors = ",".join(outer.vector_json(t) for t in texts)
                data = f'{{"model": {json.dumps(body["model"])}, "embeddings": [{vectors}]}}'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def vector_json(self, text: str) -> str:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return self._pool[int.from_bytes(digest, "big") % len(self._pool)]

    def close(self) -> None:
        self.server.shutdown()


# --- database and workers ---------------------------------------------------------------------------

@contextmanager
def database(env: dict[str, str]) -> Iterator[str]:
    """A migrated database: DATABASE_URL if set, else a fresh embedded server in a temporary home."""
    home = tempfile.mkdtemp(prefix="cs-bench-")
    os.environ["CODESEARCH_HOME"] = home
    os.environ.update(env)
    from domain.database import database_url, migrate, stop_embedded
    from domain.settings import Settings

    settings = Settings()
    url = database_url(settings)
    migrate(url)
    os.environ["DATABASE_URL"] = url
    try:
        yield url
    finally:
        if not settings.database_url:
            stop_embedded(settings)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Workers:
    """`dramatiq actors` processes; samples the RSS of every worker process while they run."""

    url: str
    processes: int = 2
    threads: int = 4
    env: dict[str, str] = field(default_factory=dict)
    peak_rss: dict[int, int] = field(default_factory=dict)
    #: (seconds since start, largest worker RSS in bytes) at each sample.
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __enter__(self) -> Workers:
        from tests.support import free_port

        env = {**os.environ, **self.env, "DATABASE_URL": self.url, "dramatiq_prom_host": "127.0.0.1",
               "dramatiq_prom_port": str(free_port()), "dramatiq_prom_db": tempfile.mkdtemp(prefix="cs-prom-")}
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors", "--processes", str(self.processes), "--threads",
             str(self.threads)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._wait_booted()
        #: Seconds from starting `dramatiq actors` until every worker process had booted.
        self.boot_s = round(time.perf_counter() - started, 2)
        return self

    def _wait_booted(self, timeout_s: float = 120) -> None:
        """Until every worker process has booted (its heartbeat row is in): a user's job meets workers
        that are running already, so a benchmark's timing starts there, not at interpreter start-up."""
        from domain.store import get_store
        from tests.support import wait_for

        store = get_store(self.url)

        def booted() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dramatiq actors exited with {self.proc.returncode} while booting")
            children = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
            return len({row["pid"] for row in store.live_workers(60)} & children) >= self.processes

        wait_for(booted, timeout_s, interval_s=0.05, what=f"{self.processes} worker processes to boot")

    def _sample(self) -> None:
        main, started = psutil.Process(self.proc.pid), time.perf_counter()
        while not self._stop.wait(0.2):
            try:
                children = main.children(recursive=True)
            except psutil.Error:
                return
            largest = 0
            for child in children:
                try:
                    if "dramatiq" in " ".join(child.cmdline()) or child.ppid() == main.pid:
                        rss = child.memory_info().rss
                        self.peak_rss[child.pid] = max(self.peak_rss.get(child.pid, 0), rss)
                        largest = max(largest, rss)
                except psutil.Error:
                    continue
            self.samples.append((time.perf_counter() - started, largest))

    def rss_mb(self) -> list[float]:
        """Peak RSS of each worker process in MiB (the exposition fork excluded: it is small)."""
        return sorted(round(v / 2**20, 1) for v in self.peak_rss.values() if v > 80 * 2**20)

    def rss_by_half_mb(self) -> list[float]:
        """The largest worker RSS in the first and the second half of the sampled time, in MiB: whether
        memory still grows late in a long run, or only reached its working set early."""
        if not self.samples:
            return []
        middle = self.samples[-1][0] / 2
        halves = ([rss for t, rss in self.samples if t <= middle], [rss for t, rss in self.samples if t > middle])
        return [round(max(h, default=0) / 2**20, 1) for h in halves]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the worker processes (user and system)."""
        return sum(_used_s(p) for p in psutil.Process(self.proc.pid).children(recursive=True))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _used_s(process: psutil.Process, children: bool = False) -> float:
    """User and system CPU seconds of a process (and of its exited children); 0 once it is gone."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system + (times.children_user + times.children_system if children else 0.0))


def postgres_cpu_s() -> float:
    """CPU seconds used so far by PostgreSQL: every server process, and backends that have exited."""
    total = 0.0
    for proc in psutil.process_iter(["name", "ppid"]):
        if (proc.info["name"] or "") != "postgres":
            continue
        try:
            postmaster = psutil.Process(proc.info["ppid"]).name() != "postgres"
        except psutil.Error:
            postmaster = False
        total += _used_s(proc, children=postmaster)
    return total


class CpuMeter:
    """CPU seconds spent by the workers, by PostgreSQL and by the whole machine (busy, idle) between
    two readings: which side a change made cheaper, less noisy than wall time on a shared machine."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        return {"workers": self.workers.cpu_s(), "postgres": postgres_cpu_s(),
                "machine_busy": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
                "machine_idle": machine.idle + getattr(machine, "iowait", 0.0),
                "steal": getattr(machine, "steal", 0.0)}

    def per_chunk_us(self, chunks: int) -> dict[str, float]:
        """Microseconds a chunk since the meter was made, by where they went."""
        end = self._read()
        return {k: round((end[k] - self.start[k]) * 1e6 / max(chunks, 1), 1) for k in end}


def index(url: str, path: Path, project: str = "bench", force: bool = False,
          timeout_s: float = 3600) -> dict[str, Any]:
    """Start a job through the same code as the MCP tool and wait for it; wall time from start to final."""
    import actors
    from domain import jobs
    from domain.store import get_store

    store = get_store(url)
    started = time.perf_counter()
    status, _ = jobs.create_job(store, str(path), project, force, "benchmark")
    actors.enqueue_job(store, status.job_id)
    deadline = started + timeout_s
    while not jobs.is_final(status.status) and time.perf_counter() < deadline:
        time.sleep(0.05)  # the benchmark's own polling of a job, not test synchronisation
        status = jobs.get_job(store, status.job_id)
    wall = time.perf_counter() - started
    return {"status": status.status, "wall_s": round(wall, 2), "files_scanned": status.files_scanned,
            "files_indexed": status.files_indexed, "files_skipped": status.files_skipped,
            "chunks": status.chunks_created, "job_id": status.job_id,
            "files_per_s": round(status.files_indexed / wall, 1), "chunks_per_s": round(status.chunks_created / wall, 1),
            **({"error": f"{status.error_type}: {status.error_message}"} if status.status == "failed" else {})}


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)}


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def fresh_process_latency(env: dict[str, str], project: str, queries: list[str], runs: int,
                          mode: str = "hybrid") -> dict[str, Any]:
    """`latency_ms` and wall time of `runs` searches, each from a fresh `codesearch search --json`
    process (queries taken in turn): what a user's first query costs."""
    latency, wall = [], []
    for n in range(runs):
        started = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).with_name("codesearch")), "search", "--json", "--project",
                               project, "--mode", mode, queries[n % len(queries)]],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True)
        wall.append((time.perf_counter() - started) * 1000)
        latency.append(float(json.loads(done.stdout)["latency_ms"]))
    return {"runs": runs, "latency_ms": percentiles(latency), "process_wall_ms": percentiles(wall)}
