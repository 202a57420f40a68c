"""Rescue of messages whose worker died: a middleware thread in every worker process.

dramatiq-pg leaves the message of a killed worker in state `consumed`; workers that were already
running rescan for such messages only at random (minutes, measured: 214 s and 418 s). Re-sending the
queue's NOTIFY for consumed messages makes a live worker try them at once; a message whose worker
is still alive is not run twice, because that worker holds the message's advisory lock and the
consume fails. One process at a time does this, under a transaction-level advisory lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import dramatiq
from dramatiq.middleware import Middleware

from domain.store import TRANSIENT_ERRORS, get_store

log = logging.getLogger(__name__)
# How often a worker process looks for orphaned messages. A crashed batch waits at most this long
# (plus ORPHAN_MIN_AGE_S) before another worker takes it over.
RESCUE_INTERVAL_S = 5.0
# Only messages consumed at least this long ago are re-notified, so a message that was just taken
# by a live worker is not raced for; being alive, that worker's lock would win anyway.
ORPHAN_MIN_AGE_S = 5.0
# A worker whose heartbeat is older than this is taken for dead (three missed rounds).
HEARTBEAT_MAX_AGE_S = 3 * RESCUE_INTERVAL_S


class Rescuer(Middleware):
    """Starts the rescue thread when a worker boots and stops it at shutdown."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="codesearch-rescuer", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:  # after the thread has stopped, so no late heartbeat brings the row back
            get_store(self.database_url).remove_worker(self.worker_id)
        except TRANSIENT_ERRORS as exc:
            log.warning("could not remove worker heartbeat: %s", exc)

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def _run(self) -> None:
        store = get_store(self.database_url)
        while True:
            try:
                store.heartbeat_worker(self.worker_id, socket.gethostname(), os.getpid())
            except TRANSIENT_ERRORS as exc:
                log.warning("heartbeat skipped: %s", exc)
            if self._stop.wait(RESCUE_INTERVAL_S):
                return
            try:
                count = store.renotify_orphaned_messages(ORPHAN_MIN_AGE_S)
            except TRANSIENT_ERRORS as exc:  # the database is restarting: try again next round
                log.warning("rescue round skipped: %s", exc)
                continue
            if count:
                log.debug("re-notified %d consumed message(s) for rescue", count)
