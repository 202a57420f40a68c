"""A process-wide budget of transient memory for files in flight, shared by a worker's threads.

Reading, chunking, embedding and writing a file holds ~16-33 bytes of Python heap per byte of source
(tree-sitter's tree comes on top): `pydoc_data/topics.py` (738 KiB) peaks at 11.8 MiB,
`_pydecimal.py` (224 KiB) at 4.9 MiB, an average 15 KiB module at well under 1 MiB. Four threads of
one process that meet several large files at once add those peaks up, and a long job meets that
moment more often than a short one: that, not growth, is why worker RSS on a 10k-file corpus was
~1.15x its RSS on the 1k-file one (docs/benchmarks.md, B5). Each thread reserves a file's estimated
cost before reading it and gives it back once the file is written, so the files in flight in one
process stay within a fixed amount whatever the corpus.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

log = logging.getLogger(__name__)

#: Bytes of transient memory reserved per byte of a file's source (see the figures above).
PER_SOURCE_BYTE = 32
#: What the threads of one process may reserve together. A file whose estimate alone is larger runs
#: when nothing else is reserved.
LIMIT_BYTES = 24 * 2**20
#: The longest a thread waits for its turn before it goes ahead anyway: the budget bounds memory, it
#: must never stop indexing (a reservation that was somehow never given back would, otherwise).
MAX_WAIT_S = 60.0


class MemoryBudget:
    """Reservations of bytes against a limit, granted first come, first served.

    `try_reserve` never waits; `reserve` waits its turn. A thread that already holds a reservation
    must not wait for another one (release or use what it holds first), or threads could hold parts
    of the budget while each waits for the rest.
    """

    def __init__(self, limit: int = LIMIT_BYTES, max_wait_s: float = MAX_WAIT_S) -> None:
        self.limit = limit
        self.max_wait_s = max_wait_s
        self._used = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes reserved right now."""
        with self._changed:
            return self._used

    def _fits(self, size: int) -> bool:
        return self._used == 0 or self._used + size <= self.limit

    def try_reserve(self, size: int) -> bool:
        """Reserve `size` bytes if that needs no wait (nobody waiting before us, and it fits)."""
        with self._changed:
            if self._waiting or not self._fits(size):
                return False
            self._used += size
            return True

    def reserve(self, size: int) -> None:
        """Reserve `size` bytes, waiting until earlier waiters are served and it fits (or nothing is
        reserved, for a size over the limit), but no longer than `max_wait_s`."""
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            if not self._changed.wait_for(lambda: self._waiting[0] is ticket and self._fits(size), self.max_wait_s):
                log.warning("waited %.0f s for %d bytes of the file memory budget (%d of %d reserved); going ahead",
                            self.max_wait_s, size, self._used, self.limit)
            self._waiting.remove(ticket)
            self._used += size
            self._changed.notify_all()

    def release(self, size: int) -> None:
        """Give back `size` bytes of earlier reservations."""
        if size:
            with self._changed:
                self._used -= size
                self._changed.notify_all()


def file_cost(size_bytes: int) -> int:
    """The transient memory reserved for indexing a file of `size_bytes`."""
    return max(0, size_bytes) * PER_SOURCE_BYTE


#: The budget of this process's indexing threads.
files_in_flight = MemoryBudget()
