"""A seconds-long run of benchmarks/retrieval.py on a few stdlib modules, so the script does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, child_env


def test_retrieval_benchmark_reports_every_metric_as_a_fraction(tmp_path: Path, fresh_db: str) -> None:
    out = tmp_path / "retrieval.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/retrieval.py", "--embedders", "hashing", "--modules", "6", "--queries", "10",
         "--variant", "SEMANTIC_WEIGHT=1.0", "--json-out", str(out)],
        cwd=ROOT, env=child_env(fresh_db), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == report
    assert report["config"]["queries"] > 0
    results = report["results"]
    levels = [results["hashing"][mode][level] for mode in ("lexical", "semantic", "hybrid", "hybrid[SEMANTIC_WEIGHT=1.0]")
              for level in ("chunk", "file")] + [results["bm25_files"]["file"]]
    for metrics in levels:
        assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr@10"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
        assert metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"]
    assert results["hashing"]["index"]["status"] == "completed"
