"""Worker memory: what a batch freed goes back to the system after the message."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from actors.memory import _libc

pytestmark = pytest.mark.skipif(_libc() is None, reason="malloc_trim is glibc's")

# In a fresh interpreter: fragment the heap (keep every 16th of 40,000 4-KiB buffers), then let the
# middleware run after a message. The buffers are above pymalloc's 512-byte limit, so glibc holds them.
SCRIPT = textwrap.dedent("""
    import psutil
    from actors.memory import MemoryRelease

    def rss():
        return psutil.Process().memory_info().rss

    middleware = MemoryRelease()
    middleware.after_process_boot(None)
    held = [bytes(4096) for _ in range(40_000)]
    kept = held[::16]
    del held
    before = rss()
    middleware.after_process_message(None, None)
    print(before - rss(), len(kept))
""")


def test_the_heap_a_message_freed_is_returned_after_it() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    released, kept = (int(v) for v in out.stdout.split())
    assert kept == 2_500
    # ~150 MiB were freed in holes between live buffers; without malloc_trim none of it leaves.
    assert released > 100 * 2**20, f"only {released / 2**20:.1f} MiB returned"
