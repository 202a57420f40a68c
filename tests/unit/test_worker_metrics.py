"""The worker group's metrics directory: cleared once per group, dead processes' gauges dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitoring.worker import render, start_group

WRITE_GAUGE = """
from prometheus_client import Gauge
Gauge("codesearch_test_inflight", "test", multiprocess_mode="livesum").set(7)
"""


def test_a_new_worker_group_empties_the_directory_but_its_siblings_do_not(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    assert start_group(tmp_path, group_id=100)
    assert not (tmp_path / "counter_1.db").exists()
    (tmp_path / "counter_2.db").write_bytes(b"written by the first sibling")
    assert not start_group(tmp_path, group_id=100)
    assert (tmp_path / "counter_2.db").exists()
    assert start_group(tmp_path, group_id=101)
    assert not (tmp_path / "counter_2.db").exists()


def test_the_live_gauges_of_a_process_that_died_are_not_served(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", WRITE_GAUGE], env=env, check=True)  # exits without mark_process_dead
    assert list(tmp_path.glob("gauge_livesum_*.db"))
    body, _ = render(tmp_path)
    assert b"codesearch_test_inflight 7" not in body
    assert not list(tmp_path.glob("gauge_livesum_*.db"))


def test_each_worker_metrics_port_gets_its_own_directory_by_default(tmp_path: Path) -> None:
    from domain.settings import Settings

    first = Settings(CODESEARCH_HOME=tmp_path, CODESEARCH_WORKER_METRICS_PORT=9191)
    second = Settings(CODESEARCH_HOME=tmp_path, CODESEARCH_WORKER_METRICS_PORT=9192)
    assert first.metrics_dir != second.metrics_dir
    assert Settings(CODESEARCH_HOME=tmp_path, CODESEARCH_WORKER_METRICS_DIR=tmp_path / "m").metrics_dir == tmp_path / "m"
