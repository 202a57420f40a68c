"""The indexing actors. Per job: `plan_job` discovers files and sends, for each file batch, the
pipeline `index_batch | aggregate_batch`; the aggregator receives the batch's result through the pipe
and rolls it into `indexing_jobs`. Completion is decided from stored batch rows, not a Dramatiq group
(dramatiq-pg has no group-completion backend).

Actors are thin: decode, call domain code, record the outcome. Transient errors are re-raised so
Dramatiq retries them with exponential backoff and jitter; on the last attempt, and for any other
error, the failure is stored and the job fails.
"""

from __future__ import annotations

import logging
import time
import traceback

import dramatiq
from dramatiq.middleware import CurrentMessage, TimeLimitExceeded

from actors.broker import DATABASE_URL
from actors.rescue import shutting_down
from domain import indexing, progress
from domain.embedders import Embedder, get_embedder
from domain.settings import Settings, get_settings
from domain.store import TRANSIENT_ERRORS, Store, get_store
from monitoring import indexing as metrics

log = logging.getLogger(__name__)
QUEUE = "codesearch"
MAX_RETRIES = 4
# Backoff between retries of a transient failure, in ms: 1 s doubling up to 30 s (Dramatiq adds
# jitter). Four retries span ~15 s, long enough for an embedder or PostgreSQL restart.
MIN_BACKOFF_MS, MAX_BACKOFF_MS = 1_000, 30_000
# A batch is at most CODESEARCH_BATCH_MAX_FILES files; at ~20 chunks/s with the local model a full
# batch takes well under a minute. Past this limit Dramatiq interrupts the batch and it is retried.
BATCH_TIME_LIMIT_MS = 15 * 60 * 1000

retrying = {"max_retries": MAX_RETRIES, "min_backoff": MIN_BACKOFF_MS, "max_backoff": MAX_BACKOFF_MS}


def _context() -> tuple[Settings, Store, Embedder]:
    settings = get_settings()
    embedder = get_embedder(settings, settings.worker_model_threads, settings.model_inferences)
    return settings, get_store(DATABASE_URL), metrics.InstrumentedEmbedder(embedder)


def _last_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or message.options.get("retries", 0) >= MAX_RETRIES


def _should_retry(exc: BaseException) -> bool:
    # A batch that ran out of time may be lucky on a less loaded worker: retry it like a transient error.
    return isinstance(exc, (*TRANSIENT_ERRORS, TimeLimitExceeded)) and not _last_attempt()


def enqueue_job(store: Store, job_id: str) -> None:
    """Send a new job's planning message and remember its id on the job."""
    message = plan_job.send(job_id)
    store.set_job_task_id(job_id, message.message_id)


def send_plan(job_id: str) -> None:
    """Re-send a job's planning message (the reaper, for a job that waited for a free slot)."""
    plan_job.send(job_id)


def send_batch(job_id: str, batch_no: int) -> None:
    """Send one batch's pipeline: index it, then roll its result into the job."""
    dramatiq.pipeline([index_batch.message(job_id, batch_no), aggregate_batch.message()]).run()


@dramatiq.actor(queue_name=QUEUE, **retrying)
def plan_job(job_id: str) -> None:
    """Discover the repository's files and send one pipeline per file batch."""
    settings, store, embedder = _context()
    try:
        batches = indexing.plan_job(store, settings, embedder, job_id)
    except Exception as exc:
        metrics.record_error("plan", type(exc).__name__)
        if _should_retry(exc):
            raise
        store.fail_job(job_id, type(exc).__name__, str(exc) or type(exc).__name__, traceback.format_exc())
        return
    if batches is None:
        return
    _record_plan(store, job_id)
    if not batches:
        progress.roll_up(store, {"job_id": job_id})
    for batch_no in batches:
        send_batch(job_id, batch_no)


@dramatiq.actor(queue_name=QUEUE, time_limit=BATCH_TIME_LIMIT_MS, **retrying)
def index_batch(job_id: str, batch_no: int) -> dict[str, object]:
    """Index one file batch under a lease; its result goes down the pipe to `aggregate_batch`."""
    settings, store, embedder = _context()
    owner = indexing.lease_owner()
    started = time.perf_counter()
    try:
        result = indexing.index_batch(store, settings, embedder, job_id, batch_no, owner, shutting_down.is_set)
    except (Exception, TimeLimitExceeded) as exc:  # TimeLimitExceeded is not an Exception
        if _should_retry(exc):
            metrics.record_error("batch", type(exc).__name__)
            _release(store, job_id, batch_no, owner)  # so the retry, on any thread, can claim it
            raise
        message = str(exc) or type(exc).__name__
        store.fail_batch(job_id, batch_no, owner, type(exc).__name__, message, traceback.format_exc())
        log.exception("batch %s of job %s failed", batch_no, job_id)
        failed = indexing.BatchResult(job_id, batch_no, status="failed", error_type=type(exc).__name__,
                                      error_message=message).as_message()
        metrics.record_batch(failed, time.perf_counter() - started)
        return failed
    if result.status == "released":  # this worker is shutting down: another one continues the batch
        send_batch(job_id, batch_no)
    message_out = result.as_message()
    metrics.record_batch(message_out, time.perf_counter() - started)
    return message_out


def _release(store: Store, job_id: str, batch_no: int, owner: str) -> None:
    try:
        store.release_batch(job_id, batch_no, owner)
    except TRANSIENT_ERRORS as exc:  # the lease then expires and the retry (or the reaper) takes it back
        log.warning("could not release batch %s of job %s: %s", batch_no, job_id, exc)


@dramatiq.actor(queue_name=QUEUE, **retrying)
def aggregate_batch(batch_result: dict[str, object]) -> None:
    """Roll one batch's result into its job's row (idempotent)."""
    settings, store, embedder = _context()
    job = progress.roll_up(store, batch_result)
    if job is not None and job["status"] in ("completed", "failed"):  # this call finished the job
        metrics.record_job_finished(str(job["status"]))
        if job["status"] == "completed":
            _refresh_statistics(store, job["repository_id"], int(job["chunks_created"]))
            if indexing.vector_index_due(store, settings, embedder):
                build_vector_index.send(embedder.model_id, embedder.dim)


@dramatiq.actor(queue_name=QUEUE, max_retries=2, time_limit=6 * 60 * 60 * 1000)
def build_vector_index(model: str, dim: int) -> None:
    """Build an embedder's HNSW index in the background once it has enough chunks (see settings)."""
    _, store, _ = _context()
    if store.ensure_vector_index(model, dim):
        log.info("built the HNSW index for %s", model)


def _refresh_statistics(store: Store, repository_id: str | None, chunks_created: int) -> None:
    try:
        if indexing.refresh_statistics(store, repository_id, chunks_created):
            log.info("analysed chunks after a job that wrote %d", chunks_created)
    except TRANSIENT_ERRORS as exc:
        # Autovacuum analyses the table later anyway; the repository's next job counts what this
        # update left uncounted (the lexicon's mark did not move).
        log.warning("could not refresh the statistics after a job: %s", exc)


def _record_plan(store: Store, job_id: str) -> None:
    # A redelivered planning message counts discovery's skips again; that only happens after a crash.
    job = store.get_job(job_id)
    if job is not None:
        metrics.record_plan((job.get("metadata") or {}).get("skipped_by_reason") or {}, int(job["files_unchanged"]))
