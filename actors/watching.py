"""The watch keeper: a middleware thread in every worker process that runs its share of the
deployment's watches (domain/watching.py). Watches live in PostgreSQL under leases, so however many
worker processes run, each watched repository has one watcher, and a dead process's watches pass to
a live one when their leases run out."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

from domain.indexing import process_id
from domain.settings import get_settings
from domain.store import get_store
from domain.watching import WatchSupervisor

log = logging.getLogger(__name__)


class WatchKeeper(Middleware):
    """Starts the watch supervisor when a worker boots; stops its watchers, releasing their watches
    for another process, when the worker shuts down."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from actors.indexing import enqueue_job  # imported late: actors.indexing imports the broker

        store = get_store(self.database_url)
        supervisor = WatchSupervisor(store, get_settings(), process_id(), lambda job_id: enqueue_job(store, job_id))
        self._stop.clear()
        self._thread = threading.Thread(target=supervisor.run, args=(self._stop,), name="codesearch-watches",
                                        daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # First: the watches are handed over while this process still finishes its batches.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
