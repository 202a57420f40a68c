"""What indexing did, as worker metrics: recorded by the actors from the results the domain returns.

The objects are created on first use, in the worker process, after `WorkerMetrics` has put
prometheus_client in multiprocess mode; see `monitoring.worker`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from domain.embedders import Embedder

_V = TypeVar("_V")

BATCH_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
EMBED_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
EMBED_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_OUTCOMES = ("completed", "failed", "cancelled")
#: Files counted as skipped by planning or a batch: unchanged since the last run, or not decodable as text.
BATCH_SKIP_REASON = "unchanged_or_undecodable"


class IndexingMetrics:
    """The metric objects a worker process records into (see `indexing_metrics`)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.files_indexed = Counter("codesearch_files_indexed_total", "Files whose chunks were written.")
        self.chunks_indexed = Counter("codesearch_chunks_indexed_total", "Chunks written.")
        self.bytes_indexed = Counter("codesearch_indexed_bytes_total", "Bytes of the files whose chunks were written.")
        self.files_skipped = Counter("codesearch_files_skipped_total", "Files not indexed, by reason.", ["reason"])
        self.batches = Counter("codesearch_batches_total", "File batches finished, by outcome.", ["status"])
        self.batch_duration = Histogram("codesearch_batch_duration_seconds", "Time to index one file batch.",
                                        ["status"], buckets=BATCH_BUCKETS_S)
        self.embed_duration = Histogram("codesearch_embedding_batch_duration_seconds",
                                        "Time of one embedder call.", buckets=EMBED_BUCKETS_S)
        self.embed_size = Histogram("codesearch_embedding_batch_texts", "Texts per embedder call.",
                                    buckets=EMBED_SIZE_BUCKETS)
        self.embed_errors = Counter("codesearch_embedding_errors_total", "Failed embedder calls, by error type.",
                                    ["error_type"])
        self.wide_inferences = Counter(
            "codesearch_embedding_wide_inferences_total",
            "Local-model inferences run on every core while the rest of the host was idle "
            "(CODESEARCH_WORKER_MODEL_WIDEN).")
        self.errors = Counter("codesearch_indexing_errors_total", "Indexing failures, by stage and error type.",
                              ["stage", "error_type"])
        self.jobs_finished = Counter("codesearch_jobs_finished_total", "Jobs completed or failed by the aggregator.",
                                     ["status"])
        # Series that exist from boot at 0, so rate() sees the first job of a worker group.
        for status in BATCH_OUTCOMES:
            self.batches.labels(status)
            self.batch_duration.labels(status)
        for status in ("completed", "failed"):
            self.jobs_finished.labels(status)


@lru_cache(maxsize=1)
def indexing_metrics() -> IndexingMetrics:
    """This process's metric objects, created on first use."""
    return IndexingMetrics()


def record_plan(skipped_by_reason: Mapping[str, int], unchanged: int = 0) -> None:
    """Discovery's skips (ignored, binary, secret, ...) of a freshly planned job, and the files planning
    found unchanged (which no batch counts)."""
    m = indexing_metrics()
    for reason, count in skipped_by_reason.items():
        m.files_skipped.labels(reason).inc(count)
    if unchanged:
        m.files_skipped.labels(BATCH_SKIP_REASON).inc(unchanged)


def record_batch(result: Mapping[str, Any], duration_s: float) -> None:
    """One batch's outcome, from the BatchResult message the domain returned."""
    m = indexing_metrics()
    status = str(result.get("status", "completed"))
    m.batches.labels(status).inc()
    m.batch_duration.labels(status).observe(duration_s)
    m.files_indexed.inc(int(result.get("files_indexed") or 0))
    m.chunks_indexed.inc(int(result.get("chunks_created") or 0))
    m.bytes_indexed.inc(int(result.get("bytes_indexed") or 0))
    if result.get("files_skipped"):
        m.files_skipped.labels(BATCH_SKIP_REASON).inc(int(result["files_skipped"]))
    if result.get("error_type"):
        record_error("batch", str(result["error_type"]))


def record_error(stage: str, error_type: str) -> None:
    indexing_metrics().errors.labels(stage, error_type).inc()


def record_job_finished(status: str) -> None:
    indexing_metrics().jobs_finished.labels(status).inc()


class InstrumentedEmbedder:
    """An embedder that times each call and counts its size and failures.

    Anything else (e.g. the local model's `count_line_tokens`, which the chunker looks for) is the
    wrapped embedder's own.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._wide_lock = threading.Lock()
        self._wide_seen = getattr(inner, "wide_inferences", 0)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name == "embed_encoded":  # the same measurements as `embed`
            return lambda texts: self._timed(found, texts)
        return found

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._timed(self.inner.embed, texts)

    def _timed(self, call: Callable[[Sequence[str]], list[_V]], texts: Sequence[str]) -> list[_V]:
        m = indexing_metrics()
        started = time.perf_counter()
        try:
            vectors = call(texts)
        except Exception as exc:
            m.embed_errors.labels(type(exc).__name__).inc()
            raise
        m.embed_duration.observe(time.perf_counter() - started)
        m.embed_size.observe(len(texts))
        self._count_wide(m)
        return vectors

    def _count_wide(self, m: IndexingMetrics) -> None:
        """Add the inner embedder's wide inferences since the last call (of any thread) to the counter."""
        if not hasattr(self.inner, "wide_inferences"):
            return
        with self._wide_lock:  # read under the lock too: a later total must never be counted twice
            total = self.inner.wide_inferences
            new, self._wide_seen = total - self._wide_seen, total
        if new > 0:
            m.wide_inferences.inc(new)
