"""Every worker process records a heartbeat while it runs and removes it when it stops."""

from __future__ import annotations

from domain.store import get_store
from tests.support import WorkerGroup, wait_for


def test_each_worker_process_heartbeats_and_leaves_on_shutdown(fresh_db: str) -> None:
    store = get_store(fresh_db)
    group = WorkerGroup(fresh_db, processes=2, threads=1)
    group.start()
    try:
        live = wait_for(lambda: len(store.live_workers(15)) == 2 and store.live_workers(15), timeout_s=60,
                        what="two worker heartbeats")
        assert len({row["pid"] for row in live}) == 2
    finally:
        group.stop()
    assert store.live_workers(15) == [], group.output()[-2000:]
