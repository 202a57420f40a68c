"""Dramatiq broker and actors. `dramatiq actors` imports this package: the broker is configured on
import, then the actors in `actors.indexing` are declared against it."""

from actors.broker import broker
from actors.indexing import aggregate_batch, enqueue_job, index_batch, plan_job

__all__ = ["aggregate_batch", "broker", "enqueue_job", "index_batch", "plan_job"]
