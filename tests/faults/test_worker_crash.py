"""Killing workers for real: a job whose worker is SIGKILLed mid-batch still completes, exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from domain import jobs
from domain.store import Store
from tests.support import WorkerGroup, make_repo, wait_for

FILES = 1200


def _ready(group: WorkerGroup) -> bool:
    return "ready for action" in group.output()


def test_a_job_completes_within_30_s_after_one_of_two_workers_is_killed(tmp_path: Path, fresh_db: str) -> None:
    import actors

    repo = make_repo(tmp_path / "crash", {f"pkg{i % 12}/mod_{i}.py": "\n".join(
        f"def fn_{i}_{k}(x):\n    return x + {k}\n" for k in range(12)) for i in range(FILES)})
    store = Store(fresh_db)
    doomed, survivor = WorkerGroup(fresh_db, 1, 4), WorkerGroup(fresh_db, 1, 4)
    try:
        doomed.start()
        survivor.start()
        wait_for(lambda: _ready(doomed) and _ready(survivor), 60, what="both worker groups to boot")
        status, _ = jobs.create_job(store, str(repo), "crash", False)
        message = actors.plan_job.message(status.job_id)
        _enqueue_on(fresh_db, message)
        wait_for(lambda: (store.get_job(status.job_id) or {}).get("batches_done", 0) >= 2, 60,
                 what="the job to be under way")
        assert _consumed(store) > 0
        assert doomed.proc is not None
        os.killpg(doomed.proc.pid, signal.SIGKILL)  # no shutdown, no ack: its messages stay consumed
        killed_at = time.monotonic()
        final = wait_for(lambda: _final(store, status.job_id), 60, interval_s=0.2, what="the job to finish")
        took = time.monotonic() - killed_at
        assert final["status"] == "completed", final
        assert took <= 30, f"completed {took:.1f} s after the kill"
        assert final["files_scanned"] == FILES and final["progress_percentage"] == 100
        with store.transaction() as cur:
            cur.execute("SELECT count(*) AS files FROM files")
            assert cur.fetchone()["files"] == FILES  # type: ignore[index]
            cur.execute("SELECT count(*) AS dup FROM (SELECT file_id, start_line FROM chunks "
                        "GROUP BY 1, 2 HAVING count(*) > 1) d")
            assert cur.fetchone()["dup"] == 0  # type: ignore[index]
    finally:
        doomed.stop()
        survivor.stop()
        store.close()


def _final(store: Store, job_id: str) -> dict[str, object] | None:
    row = store.get_job(job_id)
    return row if row and row["status"] in ("completed", "failed", "cancelled") else None


def _consumed(store: Store) -> int:
    with store.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM dramatiq.queue WHERE state = 'consumed'")
        return int(cur.fetchone()["n"])  # type: ignore[index]


def _enqueue_on(url: str, message: object) -> None:
    """Send through a broker on this test's own database (the process-wide broker uses another)."""
    from actors.broker import make_broker

    broker = make_broker(url)
    try:
        broker.enqueue(message)
    finally:
        broker.close()
