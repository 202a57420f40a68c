"""A seconds-long run of each benchmark script, so the scripts do not rot (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, SAMPLE_REPO, child_env, free_port, make_repo


def test_index_corpus_benchmark_reports_a_completed_run_as_json(tmp_path: Path, fresh_db: str) -> None:
    repo = make_repo(tmp_path / "corpus", SAMPLE_REPO)
    done = subprocess.run(
        [sys.executable, "benchmarks/index_corpus.py", str(repo), "--processes", "1", "--threads", "2",
         "--prom-port", str(free_port())],
        cwd=ROOT, env=child_env(fresh_db), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["files"] == 5 and result["chunks"] >= 5
    assert result["wall_s"] > 0 and result["chunks_per_s"] > 0


def test_the_performance_suite_runs_b1_b3_b4_b5_on_a_tiny_corpus(tmp_path: Path, fresh_db: str) -> None:
    out = tmp_path / "suite.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/suite.py", "b4", "--files", "12", "--copy-files", "12", "--rounds", "1",
         "--stage-files", "6", "--json-out", str(out)],
        cwd=ROOT, env=child_env(fresh_db), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    corpus = result["b1"]["corpus"]
    assert corpus["status"] == "completed" and corpus["files_indexed"] == 12 and corpus["chunks"] > 12
    assert result["b1"]["workers_boot_s"] > 0  # timing starts once the workers have booted
    cpu = corpus["cpu_us_per_chunk"]  # both sides of the pipeline are metered
    # PostgreSQL's share of a 12-file job can stay under one clock tick (10 ms): the meter itself is
    # checked against a known load below.
    assert cpu["workers"] > 0 and cpu["postgres"] >= 0 and cpu["machine_busy"] > 0
    b4 = result["b4"]
    assert b4["chunks"] == corpus["chunks"]
    assert set(b4["hybrid/none"]["excluded"]) == {"p50", "p95", "p99"}
    assert b4["http_10_clients"]["calls"] == 10 * 10  # 10 clients, half the 20 queries each
    stages = result["b1"]["stages_one_thread"]
    assert stages["files"] == 6 and stages["chunks"] > 6
    assert 0 < stages["share"]["chunking"] < 1 and 0 < stages["share"]["db: write chunks"] < 1


def test_the_watch_benchmark_times_edits_and_a_branch_switch_on_a_tiny_corpus(tmp_path: Path, fresh_db: str) -> None:
    out = tmp_path / "b6.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/suite.py", "b6", "--files", "12", "--copy-files", "12", "--stage-files", "6",
         "--edits", "2", "--switch-files", "5", "--switches", "4", "--idle-s", "1", "--json-out", str(out)],
        cwd=ROOT, env=child_env(fresh_db), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    b6 = json.loads(out.read_text())["b6"]
    assert set(b6["edit_to_searchable_ms"]) == {"p50", "p95", "p99", "max"} and b6["edit_to_searchable_ms"]["max"] > 0
    assert [s["files"] for s in b6["branch_switches"]] == [5] * 4 and b6["branch_switches"][0]["jobs"] >= 1
    assert set(b6["owner_rss_mb"]) == {"after_first_sync", "after_edits"} | {f"after_switch_{n}" for n in (1, 2, 3, 4)}
    assert len(b6["sibling_worker_rss_mb"]) == 5
    assert "watch_owner_over_other" in b6["idle_cpu_percent"]


def test_the_postgresql_cpu_meter_counts_a_backend_that_works(fresh_db: str) -> None:
    import psycopg2

    from benchmarks.harness import postgres_cpu_s

    conn = psycopg2.connect(fresh_db)
    try:
        before = postgres_cpu_s()
        with conn.cursor() as cur:  # ~0.3 s of one backend's CPU
            cur.execute("SELECT count(*) FROM generate_series(1, 5000000) AS n WHERE n % 7 = 3")
            assert cur.fetchone()[0] == 714286
        assert postgres_cpu_s() - before > 0.1
    finally:
        conn.close()
