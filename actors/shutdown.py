"""One SIGTERM, one graceful shutdown, however many ways it reaches a worker process.

Dramatiq's worker process takes a first SIGTERM as "stop gracefully" and a second as "die now". Process
managers (honcho, foreman, systemd with KillMode=control-group, `kill -- -PGID`) signal the whole
process group, so each worker receives the SIGTERM directly and again when the Dramatiq main process
forwards it: the second copy killed every worker mid-batch. Copies arriving within
DUPLICATE_WINDOW_S of the first are dropped; a deliberate second SIGTERM after that still kills.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

#: Long enough for the main process to forward the signal it received (milliseconds in practice).
DUPLICATE_WINDOW_S = 2.0


class SingleTermination(Middleware):
    """Wraps the worker process's SIGTERM handler so duplicates of one SIGTERM count once."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        dramatiq_handler = signal.getsignal(signal.SIGTERM)
        if not callable(dramatiq_handler):
            return
        first: list[float] = []

        def handler(signum: int, frame: FrameType | None) -> Any:
            now = time.monotonic()
            if first and now - first[0] < DUPLICATE_WINDOW_S:
                return None
            first[:1] = [now]
            return dramatiq_handler(signum, frame)

        signal.signal(signal.SIGTERM, handler)
