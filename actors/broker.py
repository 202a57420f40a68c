"""The Dramatiq broker: dramatiq-pg's PostgresBroker on the same database as the index."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage, default_middleware
from dramatiq.middleware.prometheus import Prometheus
from dramatiq_pg import PostgresBroker
from dramatiq_pg.broker import PostgresConsumer

from actors.collector import FrozenBoot
from actors.memory import MemoryRelease
from actors.rescue import Rescuer
from actors.shutdown import SingleTermination
from actors.watching import WatchKeeper
from domain.database import database_url
from domain.settings import get_settings
from monitoring.worker import WorkerMetrics

#: Resolved once per process; importing `actors` starts (or attaches to) the embedded server if needed.
DATABASE_URL = database_url(get_settings())


#: How long a consumer whose process holds all the messages it may waits for one to be acked before
#: it looks again anyway (an ack wakes it at once).
FULL_WAIT_S = 1.0


class PromptConsumer(PostgresConsumer):
    """dramatiq-pg's consumer, taking the next message as soon as one of its process's is acked.

    dramatiq-pg's consumer sleeps while its process holds `prefetch` messages, with a backoff that
    grows to 0.5-1 s and is never reset: after its first few waits a consumer found full slept that
    long each time, while its worker threads emptied the work queue and waited. In b1 the threads of
    a process held a batch only ~5.5 of 8 of the time (docs/benchmarks.md, eighth session). This one
    waits on an event that every ack and nack sets.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._freed = threading.Event()

    def __next__(self) -> Any:
        if len(self.in_processing) >= self.prefetch:
            self._freed.clear()  # before the second look: an ack between the two still wakes us
            if len(self.in_processing) >= self.prefetch:
                self._freed.wait(FULL_WAIT_S)
            return None  # Dramatiq's consumer thread calls again; only this thread adds messages
        return super().__next__()

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)
        finally:
            self._freed.set()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)
        finally:
            self._freed.set()


class Broker(PostgresBroker):  # type: ignore[misc]
    """dramatiq-pg's broker with `PromptConsumer`."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> PromptConsumer:
        return PromptConsumer(pool=self.pool, queue_name=queue_name, prefetch=prefetch, timeout=timeout)


def make_broker(url: str) -> PostgresBroker:
    """A PostgresBroker without the results backend: results travel through pipelines, not storage.

    Dramatiq's stock Prometheus middleware is replaced by `WorkerMetrics` (loopback, one port and
    directory per worker group, directory cleared at group start). `MemoryRelease` keeps worker RSS
    from growing with the corpus.
    """
    middleware = [WorkerMetrics() if m is Prometheus else m() for m in default_middleware]
    broker = Broker(url=url, results=False, middleware=middleware)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(Rescuer(url))
    broker.add_middleware(WatchKeeper(url))
    broker.add_middleware(SingleTermination())
    broker.add_middleware(MemoryRelease())
    broker.add_middleware(FrozenBoot())
    return broker


broker = make_broker(DATABASE_URL)
dramatiq.set_broker(broker)
