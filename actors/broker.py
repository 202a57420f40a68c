"""The Dramatiq broker: dramatiq-pg's PostgresBroker on the same database as the index."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage, default_middleware
from dramatiq.middleware.prometheus import Prometheus
from dramatiq_pg import PostgresBroker

from actors.collector import FrozenBoot
from actors.memory import MemoryRelease
from actors.rescue import Rescuer
from actors.shutdown import SingleTermination
from domain.database import database_url
from domain.settings import get_settings
from monitoring.worker import WorkerMetrics

#: Resolved once per process; importing `actors` starts (or attaches to) the embedded server if needed.
DATABASE_URL = database_url(get_settings())


def make_broker(url: str) -> PostgresBroker:
    """A PostgresBroker without the results backend: results travel through pipelines, not storage.

    Dramatiq's stock Prometheus middleware is replaced by `WorkerMetrics` (loopback, one port and
    directory per worker group, directory cleared at group start). `MemoryRelease` keeps worker RSS
    from growing with the corpus.
    """
    middleware = [WorkerMetrics() if m is Prometheus else m() for m in default_middleware]
    broker = PostgresBroker(url=url, results=False, middleware=middleware)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(Rescuer(url))
    broker.add_middleware(SingleTermination())
    broker.add_middleware(MemoryRelease())
    broker.add_middleware(FrozenBoot())
    return broker


broker = make_broker(DATABASE_URL)
dramatiq.set_broker(broker)
