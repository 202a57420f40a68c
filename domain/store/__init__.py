"""The PostgreSQL store: every SQL statement codesearch runs lives in this package, one module a concern
(`jobs`, `batches`, `chunks`, `search`, `lexicon`, `reaper`, `overview`, `watches`) over the connections of `base`.

Every state change of a job or a batch is a guarded update (`... WHERE status = <expected>`): a late
or duplicate worker finds its update matching no row instead of overwriting a finished one.
"""

from __future__ import annotations

import threading

from domain.store.base import (
    CHECKOUT_WAIT_S,
    TRANSIENT_ERRORS,
    Connections,
    Row,
    StoredVector,
)
from domain.store.batches import BatchQueries, Progress
from domain.store.chunks import (
    ChunkQueries,
    ChunkRow,
    FileRow,
    encode_vector,
    encode_vectors,
)
from domain.store.jobs import JOB_COLUMNS, JobQueries
from domain.store.lexicon import LexiconQueries, TermStatistics
from domain.store.overview import OverviewQueries
from domain.store.reaper import ReaperQueries
from domain.store.search import SearchFilters, SearchQueries
from domain.store.watches import WatchQueries

__all__ = ["CHECKOUT_WAIT_S", "JOB_COLUMNS", "TRANSIENT_ERRORS", "ChunkRow", "FileRow", "Progress", "Row",
           "SearchFilters", "Store", "StoredVector", "TermStatistics", "encode_vector", "encode_vectors", "get_store"]


class Store(JobQueries, BatchQueries, ChunkQueries, SearchQueries, LexiconQueries, ReaperQueries, OverviewQueries,
            WatchQueries, Connections):
    """Connections and every query codesearch runs. Safe to share between threads of one process."""


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(url: str) -> Store:
    """The process-wide store for a URL."""
    with _stores_lock:
        if url not in _stores:
            _stores[url] = Store(url)
        return _stores[url]
