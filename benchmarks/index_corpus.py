"""Index a directory through the real pipeline and report wall time and throughput as JSON.

    python benchmarks/index_corpus.py PATH [--embedder hashing|local] [--processes 2] [--threads 4]

Uses its own embedded PostgreSQL in a temporary CODESEARCH_HOME (or DATABASE_URL when set), real
`dramatiq actors` worker processes, and the same job code as the MCP tools. Prints one JSON object;
with --append, also appends a row to docs/benchmarks.md. Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    args = _parser().parse_args()
    home = tempfile.mkdtemp(prefix="cs-bench-")
    os.environ.setdefault("CODESEARCH_HOME", home)
    os.environ["CODESEARCH_EMBEDDER"] = args.embedder
    from domain.database import database_url, migrate, stop_embedded
    from domain.settings import Settings

    settings = Settings()
    url = database_url(settings)
    migrate(url)
    env = {**os.environ, "DATABASE_URL": url, "dramatiq_prom_host": "127.0.0.1",
           "dramatiq_prom_port": str(args.prom_port), "dramatiq_prom_db": tempfile.mkdtemp(prefix="cs-prom-")}
    workers = subprocess.Popen([sys.executable, "-m", "dramatiq", "actors", "--processes", str(args.processes),
                                "--threads", str(args.threads)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        result = _run(url, Path(args.path).resolve(), args)
    finally:
        os.killpg(workers.pid, 15)
        workers.wait(60)
        if not settings.database_url:
            stop_embedded(settings)
    print(json.dumps(result))
    if args.append:
        _append(result)
    return 0 if result["status"] == "completed" else 1


def _run(url: str, path: Path, args: argparse.Namespace) -> dict[str, object]:
    os.environ["DATABASE_URL"] = url
    import actors
    from domain import jobs
    from domain.store import get_store

    store = get_store(url)
    started = time.perf_counter()
    status, _ = jobs.create_job(store, str(path), "bench", False, "benchmark")
    actors.enqueue_job(store, status.job_id)
    deadline = started + args.timeout_s
    while not jobs.is_final(status.status) and time.perf_counter() < deadline:
        time.sleep(0.1)  # the benchmark's own polling, not test synchronisation
        status = jobs.get_job(store, status.job_id)
    wall = time.perf_counter() - started
    return {"corpus": str(path), "embedder": args.embedder, "processes": args.processes, "threads": args.threads,
            "status": status.status, "files": status.files_indexed, "chunks": status.chunks_created,
            "wall_s": round(wall, 2), "files_per_s": round(status.files_indexed / wall, 1),
            "chunks_per_s": round(status.chunks_created / wall, 1), "cores": os.cpu_count()}


def _append(result: dict[str, object]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    line = (f"| {time.strftime('%Y-%m-%d')} {commit} | index_corpus {result['embedder']} "
            f"{result['processes']}x{result['threads']} | {result['files']} files, {result['chunks']} chunks, "
            f"{result['wall_s']} s ({result['chunks_per_s']} chunks/s), {result['cores']} cores |\n")
    with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
        out.write(line)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path")
    p.add_argument("--embedder", choices=["hashing", "local"], default="hashing")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--prom-port", type=int, default=9391)
    p.add_argument("--timeout-s", type=float, default=3600)
    p.add_argument("--append", action="store_true")
    return p


if __name__ == "__main__":
    sys.exit(main())
