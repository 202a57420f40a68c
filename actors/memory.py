"""Worker memory that does not grow with the corpus: glibc's allocator is told to hand freed memory back.

A batch allocates and frees tens of MB (a large file's chunks, lexemes and vectors), from up to four
threads at once. glibc keeps freed memory in per-thread arenas and returns it to the system only
from the top of a heap, so a long job left worker RSS wherever its worst moment had pushed it.
Fewer arenas (MALLOC_ARENA_MAX) and `malloc_trim` after each message keep it near the working set.
Elsewhere than glibc (musl, macOS) this middleware does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


class MemoryRelease(Middleware):
    """Caps glibc's malloc arenas when a worker process boots and trims the heap after every message."""

    def __init__(self) -> None:
        self.libc = _libc()

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if self.libc is not None and not self.libc.mallopt(M_ARENA_MAX, ARENAS):
            log.info("mallopt(M_ARENA_MAX) was refused; malloc keeps its default arenas")

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if self.libc is not None:
            self.libc.malloc_trim(0)

    after_skip_message = after_process_message
