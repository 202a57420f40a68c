"""The performance suite of docs/benchmarks.md: B0-B5, each one command, results as JSON.

    python benchmarks/suite.py b0|b1|b2|b3|b4|b5|b6|all [--files 10000] [--append] [--json-out F]

- b0: the plain stdlib copy and three copies, `ollama` embedder against a fake Ollama (768-d vectors,
  ~1 ms a request; requests counted): wall time, worker peak RSS, unchanged re-index.
- b1: a ~10k-file corpus (stdlib copies, distinct first line per copy), `hashing` embedder, 2 worker
  processes: wall time, files/s, chunks/s, and where batch time goes.
- b2: the default local model embedding a subset's chunks in one process (raw chunks/s) vs the full
  pipeline on the same files; the ratio.
- b3: unchanged re-index of the b1 corpus; one changed file, time until search finds it.
- b4: search latency at the b1 index (>= 100k chunks; more copies are added if needed): p50/p95/p99
  per mode, with and without filters, query embedding excluded and included; 10 concurrent MCP
  clients over streamable HTTP; status query latency.
- b5: worker peak RSS on the 1k and the 10k corpus, and their ratio.
- b6: watch mode on the b1 index (benchmarks/watch_bench.py): 20 edits, each timed from the write until
  search finds it; a 1,000-file branch switch and back (jobs it became); the watching worker's RSS
  through it; its idle CPU against its sibling worker's. `--embedder local` for the local model (with
  a smaller `--files`: the local model indexes ~35 chunks/s).

Each run uses its own embedded PostgreSQL in a temporary home (or DATABASE_URL). Wall times start
once every worker process has booted (`workers_boot_s` says how long that took; a user's job meets
running workers). Figures are from one run on a shared machine: compare the ratios, not absolute
times across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (  # noqa: E402
    ROOT, CpuMeter, FakeOllama, Workers, build_corpus, commit, copies_for, database, fresh_process_latency, index,
    percentiles, stdlib_files,
)

QUERIES = ["parse an http date header", "open a file and read lines", "json decoder", "thread pool executor",
           "compute a checksum", "email message headers", "urllib request", "temporary directory cleanup",
           "decimal rounding", "socket connect timeout", "tokenize python source", "zip archive extract",
           "argparse", "HTTPServer", "get_terminal_size", "SequenceMatcher", "ThreadPoolExecutor.submit",
           "find the longest matching block", "format a traceback", "base64 decode"]


def b0(args: argparse.Namespace, url: str) -> dict[str, Any]:
    fake = FakeOllama(dim=768)
    env = {"CODESEARCH_EMBEDDER": "ollama", "OLLAMA_HOST": fake.url, "CODESEARCH_OLLAMA_MODEL": "fake-768"}
    out: dict[str, Any] = {}
    for name, copies, first in (("stdlib_1x", 1, 0), ("stdlib_3x", 3, 1)):  # no copy shared: no cache hits
        corpus = Path(tempfile.mkdtemp(prefix=f"cs-{name}-"))
        sizes = build_corpus(corpus, copies, max_files=args.copy_files, first=first)
        with Workers(url, env=env) as workers:
            before = fake.requests
            first = index(url, corpus, project=name)
            first["ollama_requests"] = fake.requests - before
            before = fake.requests
            again = index(url, corpus, project=name)
            again["ollama_requests"] = fake.requests - before
        out[name] = {**sizes, "index": first, "unchanged_reindex": again, "worker_rss_mb": workers.rss_mb(),
                     "workers_boot_s": workers.boot_s}
    fake.close()
    one, three = out["stdlib_1x"], out["stdlib_3x"]
    out["targets"] = {
        "stdlib_1x_le_10s": one["index"]["wall_s"] <= 10, "stdlib_3x_le_30s": three["index"]["wall_s"] <= 30,
        "rss_3x_over_1x": round(max(three["worker_rss_mb"]) / max(one["worker_rss_mb"]), 3),
    }
    return out


def _big_index(args: argparse.Namespace, url: str, env: dict[str, str]) -> tuple[Path, dict[str, Any], Workers]:
    corpus = Path(tempfile.mkdtemp(prefix="cs-10k-"))
    sizes = build_corpus(corpus, copies_for(args.files, args.copy_files), max_files=args.copy_files)
    with Workers(url, env=env) as workers:
        meter = CpuMeter(workers)
        result = index(url, corpus)
        cpu = meter.per_chunk_us(result["chunks"])
        lexicon_s = _lexicon_wait(url, result["chunks"])
    return corpus, {**sizes, **result, "cpu_us_per_chunk": cpu, "lexicon_after_s": lexicon_s}, workers


def _lexicon_wait(url: str, chunks: int, timeout_s: float = 300) -> float | None:
    """Seconds after the job's end until the aggregating actor has counted its chunks into the lexicon
    (BM25's document frequencies; searches meanwhile weigh terms by the lexicon before the job)."""
    from domain.store import get_store

    store = get_store(url)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        repos = [r["id"] for r in store.search_scope("bench", None)]
        if store.term_statistics(repos, []).chunks >= chunks:
            return round(time.perf_counter() - started, 2)
        time.sleep(0.05)  # the benchmark's own polling, not test synchronisation
    return None


def _batch_profile(url: str, job_id: str) -> dict[str, Any]:
    """Where the time of a job's batches went, from the batch rows (durations, sums)."""
    from domain.store import get_store

    with get_store(url).transaction() as cur:
        cur.execute("""SELECT count(*) AS batches, sum(extract(epoch FROM finished_at - started_at)) AS busy_s,
                              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
                                AS p50_s,
                              max(extract(epoch FROM finished_at - started_at)) AS max_s,
                              extract(epoch FROM max(finished_at) - min(started_at)) AS span_s
                       FROM indexing_batches WHERE job_id = %s""", (job_id,))
        row = cur.fetchone()
        cur.execute("""SELECT extract(epoch FROM min(b.started_at) - j.created_at) AS planning_s
                       FROM indexing_batches b JOIN indexing_jobs j ON j.id = b.job_id WHERE j.id = %s
                       GROUP BY j.created_at""", (job_id,))
        planning = cur.fetchone()
    return {k: (round(float(v), 3) if v is not None else None) for k, v in {**row, **(planning or {})}.items()}


def _stage_profile(url: str, files: int) -> dict[str, Any]:
    """Where one thread's indexing time goes, stage by stage: `files` stdlib files indexed in this
    process (hashing embedder) with a timer around each stage's function. Database time includes
    the server's work for those statements; the rest of the wall time is reading, hashing and
    bookkeeping in Python. Runs before b4 builds the HNSW index, which makes inserts ~4x slower."""
    from domain import indexing, jobs, lexical
    from domain.settings import Settings
    from domain.store import Store

    stages = {"discovery": (indexing, "discover"), "chunking": (indexing, "chunks_of"),
              "embedding": (indexing, "_embedded"), "lexical terms": (lexical, "document"),
              "db: write chunks": (Store, "write_files"), "db: progress": (Store, "record_progress"),
              "db: claim batch": (Store, "claim_batch"), "db: finish batch": (Store, "finish_batch"),
              "db: plan": (Store, "plan_batches"), "db: aggregate": (Store, "aggregate_job")}
    spent = dict.fromkeys(stages, 0.0)
    originals = {name: getattr(owner, attr) for name, (owner, attr) in stages.items()}

    def timed(name: str, call: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                spent[name] += time.perf_counter() - started
        return wrapper

    corpus = Path(tempfile.mkdtemp(prefix="cs-stages-"))
    build_corpus(corpus, 1, max_files=files, first=90)
    settings, store = Settings(CODESEARCH_EMBEDDER="hashing"), Store(url)  # type: ignore[call-arg]
    from domain.embedders import make_embedder

    embedder = make_embedder(settings)
    for name, (owner, attr) in stages.items():
        setattr(owner, attr, timed(name, originals[name]))
    try:
        started = time.perf_counter()
        status, _ = jobs.create_job(store, str(corpus), "stages", False)
        for batch in indexing.plan_job(store, settings, embedder, status.job_id) or []:
            indexing.index_batch(store, settings, embedder, status.job_id, batch)
            store.aggregate_job(status.job_id)
        wall = time.perf_counter() - started
    finally:
        for name, (owner, attr) in stages.items():
            setattr(owner, attr, originals[name])
    final = jobs.get_job(store, status.job_id)
    with store.transaction() as cur:  # b4 counts every chunk of the embedder
        cur.execute("DELETE FROM repositories WHERE project_id = 'stages'")
    return {"files": final.files_indexed, "chunks": final.chunks_created, "wall_s": round(wall, 2),
            "chunks_per_s_one_thread": round(final.chunks_created / wall, 1),
            "share": {name: round(t / wall, 3) for name, t in spent.items()} |
                     {"other (reading, hashing, Python bookkeeping)": round(1 - sum(spent.values()) / wall, 3)}}


def b2(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from domain.chunking import Limits, chunk_file
    from domain.discovery import language_for
    from domain.embedders import LocalEmbedder
    from domain.indexing import embedded_texts
    from domain.settings import Settings

    corpus = Path(tempfile.mkdtemp(prefix="cs-b2-"))
    build_corpus(corpus, 1, max_files=args.b2_files)
    settings = Settings(CODESEARCH_EMBEDDER="local")
    embedder = LocalEmbedder(batch_size=settings.embed_batch_size)
    limits = Limits(max_tokens=settings.chunk_max_tokens, max_lines=settings.chunk_max_lines,
                    count_lines=embedder.count_line_tokens)
    texts = []
    for path in sorted(corpus.rglob("*.py")):
        rel = path.relative_to(corpus).as_posix()
        texts += embedded_texts(rel, chunk_file(path.read_text(errors="replace"), language_for(rel), limits))
    embedder.embed(texts[:8])  # load the model outside the timing
    started = time.perf_counter()
    embedder.embed(texts)
    raw = len(texts) / (time.perf_counter() - started)
    env = {"CODESEARCH_EMBEDDER": "local"}
    with Workers(url, env=env) as workers:
        result = index(url, corpus, project="b2")
    pipeline = result["chunks"] / result["wall_s"]
    return {"files": args.b2_files, "chunks_raw": len(texts), "raw_chunks_per_s": round(raw, 2),
            "pipeline": result, "pipeline_chunks_per_s": round(pipeline, 2), "worker_rss_mb": workers.rss_mb(),
            "workers_boot_s": workers.boot_s,
            "ratio": round(pipeline / raw, 3), "targets": {"ratio_ge_0.9": pipeline / raw >= 0.9}}


def b1_to_b5(args: argparse.Namespace, url: str, which: set[str]) -> dict[str, Any]:
    """b1 and, on the same index, b3, b4 and b5 (b5 first indexes the 1k corpus for comparison).

    The workers' automatic HNSW build is off here; b4 builds the index itself and reports the time,
    so no background build runs under b3's timings."""
    env = {"CODESEARCH_EMBEDDER": args.embedder, "CODESEARCH_HNSW_MIN_CHUNKS": str(10**12)}
    out: dict[str, Any] = {}
    if "b5" in which:
        small = Path(tempfile.mkdtemp(prefix="cs-1k-"))
        build_corpus(small, 1, max_files=args.copy_files)
        with Workers(url, env=env) as workers_1k:
            out["b5_1k"] = {**index(url, small, project="small"), "worker_rss_mb": workers_1k.rss_mb()}
    corpus, big, workers = _big_index(args, url, env)
    out["b1"] = {"corpus": big, "worker_rss_mb": workers.rss_mb(), "workers_boot_s": workers.boot_s,
                 "batches": _batch_profile(url, big["job_id"]),
                 "stages_one_thread": _stage_profile(url, args.stage_files),
                 "targets": {"le_30s": big["status"] == "completed" and big["wall_s"] <= 30}}
    if "b5" in which:
        ratio = max(workers.rss_mb()) / max(out["b5_1k"]["worker_rss_mb"])
        first, second = workers.rss_by_half_mb()
        out["b5"] = {"rss_10k_over_1k": round(ratio, 3), "target_within_10pct": ratio <= 1.10,
                     "rss_10k_by_half_mb": [first, second],
                     "second_half_over_first": round(second / first, 3) if first else None}
    if "b3" in which:
        out["b3"] = _b3(url, corpus, env)
    if "b4" in which:
        out["b4"] = _b4(url, corpus, args, env)
    if "b6" in which:
        from benchmarks.watch_bench import b6

        out["b6"] = b6(url, corpus, env, args.embedder, args.edits, args.switch_files, args.idle_s, args.switches)
    return out


def _b3(url: str, corpus: Path, env: dict[str, str]) -> dict[str, Any]:
    from domain import search
    from domain.embedders import make_embedder
    from domain.settings import Settings
    from domain.store import get_store

    store, embedder = get_store(url), make_embedder(Settings(**{"CODESEARCH_EMBEDDER": "hashing"}))  # type: ignore[arg-type]
    with Workers(url, env=env):
        unchanged = index(url, corpus)
        target = next(iter(sorted(corpus.rglob("*.py"))))
        marker = "zzqbenchmarkmarker" + str(int(time.time()))
        target.write_text(target.read_text() + f"\n\ndef {marker}():\n    return 1\n")
        started = time.perf_counter()
        changed = index(url, corpus)
        deadline = started + 120
        found_after = None
        while time.perf_counter() < deadline:
            hits = search.search(store, embedder, marker, "bench", limit=1, mode="lexical").results
            if hits and hits[0].symbol == marker:
                found_after = round(time.perf_counter() - started, 2)
                break
            time.sleep(0.02)
    return {"unchanged": unchanged, "one_changed": changed, "searchable_after_s": found_after,
            "targets": {"unchanged_le_3s": unchanged["wall_s"] <= 3,
                        "searchable_le_2s": found_after is not None and found_after <= 2}}


def _b4(url: str, corpus: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    from domain import jobs, search
    from domain.embedders import make_embedder
    from domain.settings import Settings
    from domain.store import get_store

    store = get_store(url)
    embedder = make_embedder(Settings(**{"CODESEARCH_EMBEDDER": "hashing"}))  # type: ignore[arg-type]
    chunks = store.count_chunks(embedder.model_id)
    started = time.perf_counter()
    store.ensure_vector_index(embedder.model_id, embedder.dim)
    out: dict[str, Any] = {"chunks": chunks, "hnsw_build_s": round(time.perf_counter() - started, 1)}
    # Latency in steady state: autovacuum's first pass over the freshly loaded table (which waits for
    # the index build, then runs for minutes on these cores) is done here, before any timing.
    started = time.perf_counter()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) chunks")
    finally:
        conn.close()
    out["vacuum_s"] = round(time.perf_counter() - started, 1)
    filters: dict[str, dict[str, str]] = {"none": {}, "language": {"language": "python"},
                                          "directory": {"directory": "copy_00/email"}}
    for mode in ("hybrid", "semantic", "lexical"):
        for name, extra in filters.items():
            total, excluded = [], []
            for _ in range(args.rounds):
                for query in QUERIES:
                    response = search.search(store, embedder, query, "bench", limit=10, mode=mode, **extra)  # type: ignore[arg-type]
                    total.append(response.latency_ms)
                    excluded.append(response.latency_ms - (response.embedding_ms or 0))
            out[f"{mode}/{name}"] = {"included": percentiles(total), "excluded": percentiles(excluded)}
    job_id = jobs.list_jobs(store, "bench", None, 1)[0].job_id
    status_ms = []
    for _ in range(200):
        started = time.perf_counter()
        jobs.get_job(store, job_id)
        status_ms.append((time.perf_counter() - started) * 1000)
    out["status"] = percentiles(status_ms)
    out["http_10_clients"] = _http_clients(url, env, clients=10, calls=args.rounds * len(QUERIES) // 2)
    out["fresh_process"] = fresh_process_latency({"DATABASE_URL": url, "CODESEARCH_EMBEDDER": "hashing"}, "bench",
                                                 QUERIES, runs=40)
    hybrid_p95 = out["hybrid/none"]["excluded"]["p95"]
    out["targets"] = {"hybrid_p95_le_50ms": hybrid_p95 <= 50, "status_p95_le_10ms": out["status"]["p95"] <= 10,
                      "http_p95_le_150ms": out["http_10_clients"]["p95"] <= 150,
                      "fresh_process_p95_le_50ms": out["fresh_process"]["latency_ms"]["p95"] <= 50}
    return out


def _http_clients(url: str, env: dict[str, str], clients: int, calls: int) -> dict[str, Any]:
    import mcp

    from tests.support import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mcp_entry", "serve", "--transport", "http", "--port",
                               str(port)], cwd=ROOT, env={**os.environ, **env, "DATABASE_URL": url},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}/mcp"
    latencies: list[float] = []

    async def client(n: int) -> None:
        async with mcp.Client(endpoint) as session:
            for i in range(calls):
                started = time.perf_counter()
                result = await session.call_tool("search_code", {"query": QUERIES[(n + i) % len(QUERIES)],
                                                                 "project_id": "bench"})
                latencies.append((time.perf_counter() - started) * 1000)
                assert not result.is_error

    async def run() -> None:
        deadline = time.monotonic() + 60
        while True:  # wait for the server to listen
            try:
                async with mcp.Client(endpoint) as session:
                    await session.list_tools()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        before = _cpu_s(server.pid)
        await asyncio.gather(*(client(n) for n in range(clients)))
        spent.update({k: v - before[k] for k, v in _cpu_s(server.pid).items()})

    spent: dict[str, float] = {}
    try:
        asyncio.run(run())
    finally:
        server.terminate()
        server.wait(30)
    return {"clients": clients, "calls": len(latencies), **percentiles(latencies),
            "mean": round(statistics.fmean(latencies), 2),
            "cpu_ms_per_call": {k: round(v * 1000 / len(latencies), 2) for k, v in spent.items()}}


def _cpu_s(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the MCP server, this process (the clients) and PostgreSQL's processes."""
    def used(p: psutil.Process) -> float:
        times = p.cpu_times()
        return float(times.user + times.system)

    postgres = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            postgres += used(proc) if (proc.info["name"] or "").startswith("postgres") else 0.0
        except psutil.Error:
            continue
    return {"server": used(psutil.Process(server_pid)), "clients": used(psutil.Process()), "postgres": postgres}


def main() -> int:
    args = _parser().parse_args()
    which = {"b0", "b1", "b2", "b3", "b4", "b5", "b6"} if args.which == "all" else {args.which}
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "commit": commit(), "cores": os.cpu_count(),
                              "stdlib_files": len(stdlib_files())}
    with database({}) as url:  # one database per run: the broker binds to it once per process
        if "b0" in which:
            result["b0"] = b0(args, url)
        if which & {"b1", "b3", "b4", "b5", "b6"}:
            result |= b1_to_b5(args, url, which)
        if "b2" in which:
            result["b2"] = b2(args, url)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    if args.append:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(f"\n### `python benchmarks/suite.py {args.which} --files {args.files}` — {result['date']}, "
                      f"commit {result['commit']}, {result['cores']} cores\n\n```json\n{text}\n```\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("which", choices=["b0", "b1", "b2", "b3", "b4", "b5", "b6", "all"])
    p.add_argument("--embedder", default="hashing", choices=["hashing", "local"],
                   help="embedder of the big corpus (b1, b3-b6); b4's figures assume hashing")
    p.add_argument("--files", type=int, default=10_000, help="files in the big corpus (b1, b3, b4, b5)")
    p.add_argument("--b2-files", type=int, default=60, help="stdlib files embedded by the local model in b2")
    p.add_argument("--stage-files", type=int, default=300, help="files of b1's in-process stage profile")
    p.add_argument("--rounds", type=int, default=5, help="passes over the query list in b4")
    p.add_argument("--copy-files", type=int, default=None, help="stdlib files per copy (default all; for smoke runs)")
    p.add_argument("--edits", type=int, default=20, help="b6: single-file edits timed")
    p.add_argument("--switch-files", type=int, default=1000, help="b6: files a branch switch rewrites")
    p.add_argument("--switches", type=int, default=10, help="b6: branch switches, each rewriting --switch-files files")
    p.add_argument("--idle-s", type=float, default=30.0, help="b6: seconds the idle CPU is measured over")
    p.add_argument("--json-out", default=None)
    p.add_argument("--append", action="store_true", help="append the JSON to docs/benchmarks.md")
    return p


if __name__ == "__main__":
    sys.exit(main())
