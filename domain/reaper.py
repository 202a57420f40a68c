"""The reaper: one round of rescue and housekeeping, run by one worker process at a time.

Every worker process runs a rescuer thread (actors/rescue.py) that calls `reap` every
RESCUE_INTERVAL_S under the store's reaper lock. Each step is a guarded update, so a round that races
a worker (a batch finishing as its lease expires) or another round leaves every row consistent.
Sending messages is the caller's job (`send_batch`, `send_job`): this module knows nothing of Dramatiq.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from domain.settings import Settings
from domain.store import Store

# How often each worker process heartbeats, renews its batches' leases and (if it holds the reaper
# lock) reaps. Leases (CODESEARCH_BATCH_LEASE_SECONDS, default 15) must span a few of these intervals.
RESCUE_INTERVAL_S = 5.0
# A worker whose heartbeat is older than this is taken for dead (three missed rounds).
HEARTBEAT_MAX_AGE_S = 3 * RESCUE_INTERVAL_S
# Only messages consumed at least this long ago are re-notified, so a message that was just taken
# by a live worker is not raced for; being alive, that worker's advisory lock would win anyway.
ORPHAN_MIN_AGE_S = 5.0
# Messages still `queued` this long after they were sent are re-notified, a bounded number per round
# (a backlog behind busy workers is re-notified too, harmlessly: consuming is a guarded update).
STRANDED_MIN_AGE_S, STRANDED_PER_ROUND = 30.0, 100
# Finished dramatiq-pg messages are kept this long (for `codesearch` status hints and debugging);
# dramatiq-pg's own purge runs only at random, so without this the queue table grows without bound.
MESSAGE_RETENTION_S = 3600.0


@dataclass
class ReapReport:
    """What one round did; logged, and returned for tests."""

    renotified: int = 0
    released: list[tuple[str, int]] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    dead_workers: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    aggregated: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    pruned_jobs: int = 0
    pruned_messages: int = 0

    def __bool__(self) -> bool:
        return any(bool(v) for v in vars(self).values())


def reap(store: Store, settings: Settings, send_batch: Callable[[str, int], None],
         send_job: Callable[[str], None]) -> ReapReport:
    """One round; the caller must hold `store.reaper_lock()`.

    1. Re-notify dramatiq messages consumed by a worker that may be gone (a live one keeps its lock),
       and messages left `queued` without a notification (a worker's graceful shutdown requeues its
       prefetched messages silently).
    2. Batches whose lease expired go back to pending and are re-sent; those claimed
       `batch_max_attempts` times fail instead, and so does their job. When a lease expired or a
       worker's heartbeat went stale (its row is deleted), a worker died: the oldest queued messages are
       re-notified then, whatever their age, not only those queued for STRANDED_MIN_AGE_S.
    3. Running jobs with no progress for `indexing_job_timeout_seconds` fail with JobTimeout (only
       while a worker has been up all that time).
    4. Running jobs whose batches are all finished are aggregated (their last aggregate message may
       have been dropped after its retries), so no job stays `running` forever.
    5. Jobs waiting for a slot (MAX_CONCURRENT_INDEXING_JOBS) are re-sent while slots are free.
    6. Finished jobs and dramatiq messages past retention are deleted.

    Raises: TRANSIENT_ERRORS from the store (the next round tries again).
    """
    report = ReapReport(renotified=store.renotify_orphaned_messages(ORPHAN_MIN_AGE_S)
                        + store.renotify_queued_messages(STRANDED_MIN_AGE_S, STRANDED_PER_ROUND))
    report.released, report.exhausted = store.expire_leases(settings.batch_max_attempts)
    report.dead_workers = store.forget_dead_workers(HEARTBEAT_MAX_AGE_S)
    if report.released or report.exhausted or report.dead_workers:
        # A worker died, perhaps inside a consume: its UPDATE rolled back, so the message is `queued`
        # again, while the other workers dropped their NOTIFY of it when its lock beat theirs. Without
        # this only the 30 s stranded rule found it: a crash test's job took 34.8 s instead of ~10.
        report.renotified += store.renotify_queued_messages(0, STRANDED_PER_ROUND)
    for job_id, batch_no in report.released:
        send_batch(job_id, batch_no)
    report.timed_out = store.time_out_jobs(settings.indexing_job_timeout_seconds, HEARTBEAT_MAX_AGE_S)
    report.aggregated = store.jobs_to_aggregate()
    for job_id in report.aggregated:
        store.aggregate_job(job_id)
    report.resumed = store.deferred_jobs(settings.max_concurrent_indexing_jobs)
    for job_id in report.resumed:
        send_job(job_id)
    report.pruned_jobs, report.pruned_messages = store.prune(settings.job_status_retention_days,
                                                             MESSAGE_RETENTION_S)
    return report
