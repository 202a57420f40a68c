"""The job aggregator's logic: fold one batch's result into its job's row."""

from __future__ import annotations

from typing import Any

from domain.store import Row, Store


def roll_up(store: Store, batch_result: dict[str, Any]) -> Row | None:
    """Recompute the job's counters and progress from every stored batch result.

    Idempotent: the stored batch rows, not the message, are the source of truth, so a redelivered or
    late aggregate message cannot double-count. Returns the job row, or None when the job is no
    longer running (cancelled or already finished).
    """
    return store.aggregate_job(str(batch_result["job_id"]))
