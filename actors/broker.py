"""The Dramatiq broker: dramatiq-pg's PostgresBroker on the same database as the index."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq_pg import PostgresBroker

from actors.rescue import Rescuer
from domain.database import database_url
from domain.settings import get_settings

#: Resolved once per process; importing `actors` starts (or attaches to) the embedded server if needed.
DATABASE_URL = database_url(get_settings())


def make_broker(url: str) -> PostgresBroker:
    """A PostgresBroker without the results backend: results travel through pipelines, not storage."""
    broker = PostgresBroker(url=url, results=False)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(Rescuer(url))
    return broker


broker = make_broker(DATABASE_URL)
dramatiq.set_broker(broker)
