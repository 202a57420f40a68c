"""The rescuer: a middleware thread in every worker process that renews its leases and, in one
process at a time, runs the reaper (domain/reaper.py).

Why it exists: dramatiq-pg leaves the message of a killed worker in state `consumed`, and workers
that were already running rescan for such messages only at random (minutes; measured 214 s and
418 s). Batch leases let the reaper hand a dead worker's batch to a live one within
`batch_lease_seconds` + RESCUE_INTERVAL_S, and re-notifying consumed messages makes a live worker take
the dead worker's prefetched messages at once.

It also carries graceful shutdown: on the first SIGTERM, `shutting_down` is set before Dramatiq stops
its worker threads; `index_batch` sees it between files, releases its lease and re-sends its batch.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import dramatiq
from dramatiq.middleware import Middleware

from domain import reaper
from domain.reaper import HEARTBEAT_MAX_AGE_S, RESCUE_INTERVAL_S
from domain.indexing import active_leases, process_id
from domain.settings import get_settings
from domain.store import TRANSIENT_ERRORS, Store, get_store

__all__ = ["HEARTBEAT_MAX_AGE_S", "RESCUE_INTERVAL_S", "Rescuer", "shutting_down"]
log = logging.getLogger(__name__)
#: Set when this worker process starts shutting down: batches stop after their current file.
shutting_down = threading.Event()


class Rescuer(Middleware):
    """Starts the rescue thread when a worker boots and stops it after the worker threads are done."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        shutting_down.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="codesearch-rescuer", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before Dramatiq joins its worker threads, which would otherwise finish whole batches.
        shutting_down.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Only now: while batches finish their current file, their leases must still be renewed.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        store = get_store(self.database_url)
        try:  # after the thread has stopped, so no late heartbeat brings the row back
            store.remove_worker(self.worker_id)
            # Dramatiq has just put our prefetched messages back to `queued`, silently: tell the others.
            store.renotify_queued_messages(0, 10_000)
        except TRANSIENT_ERRORS as exc:  # the reaper re-notifies stranded messages after 30 s
            log.warning("could not remove worker heartbeat or re-notify requeued messages: %s", exc)

    @property
    def worker_id(self) -> str:
        return process_id()

    def _run(self) -> None:
        store = get_store(self.database_url)
        while True:
            try:
                self._round(store)
            except TRANSIENT_ERRORS as exc:  # the database is restarting: try again next round
                log.warning("rescue round skipped: %s", exc)
            except Exception:  # a bug must not kill the thread: the next round may still rescue jobs
                log.exception("rescue round failed")
            if self._stop.wait(RESCUE_INTERVAL_S):
                return

    def _round(self, store: Store) -> None:
        settings = get_settings()
        store.heartbeat_worker(self.worker_id, socket.gethostname(), os.getpid())
        store.renew_leases(active_leases(), settings.batch_lease_seconds)
        with store.reaper_lock() as mine:
            if not mine:
                return
            from actors.indexing import send_batch, send_plan  # imported late: actors.indexing imports us

            report = reaper.reap(store, settings, send_batch, send_plan)
        if report:
            log.info("reaper: %s", report)
