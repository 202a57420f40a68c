"""SpareCores (is the rest of the host idle?) and the wide inferences a worker's embedder runs then."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from domain.embedders import LocalEmbedder, SpareCores, make_embedder
from domain.settings import Settings
from tests.support import wait_for


class _Readings:
    """Scripted (seconds, host busy CPU seconds, own CPU seconds) readings."""

    def __init__(self) -> None:
        self.now = self.host = self.own = 0.0

    def advance(self, seconds: float, others: float, own: float) -> None:
        """`seconds` pass while other processes use `others` cores and this one `own` cores."""
        self.now += seconds
        self.host += (others + own) * seconds
        self.own += own * seconds

    def __call__(self) -> tuple[float, float, float]:
        return self.now, self.host, self.own


def test_the_first_look_has_nothing_to_compare_and_says_busy() -> None:
    assert SpareCores(2, read=_Readings()).idle_elsewhere() is False


def test_only_the_cpu_of_other_processes_counts() -> None:
    readings = _Readings()
    spare = SpareCores(2, read=readings)
    spare.idle_elsewhere()
    readings.advance(1.0, others=0.1, own=2.0)  # this process alone keeps both cores busy
    assert spare.idle_elsewhere() is True
    readings.advance(1.0, others=1.0, own=1.0)  # another worker runs an inference of its own
    assert spare.idle_elsewhere() is False
    readings.advance(1.0, others=0.5, own=1.0)  # at the slack: PostgreSQL writing, say
    assert spare.idle_elsewhere() is True
    readings.advance(1.0, others=0.6, own=0.0)
    assert spare.idle_elsewhere() is False


def test_a_look_sooner_than_the_interval_keeps_the_previous_answer() -> None:
    readings = _Readings()
    spare = SpareCores(2, min_interval_s=0.1, read=readings)
    spare.idle_elsewhere()
    readings.advance(0.5, others=0.0, own=1.0)
    assert spare.idle_elsewhere() is True
    readings.advance(0.05, others=2.0, own=0.0)  # too short to judge: the answer stands
    assert spare.idle_elsewhere() is True
    readings.advance(0.1, others=2.0, own=0.0)  # measured from the last real look: 0.15 s, busy
    assert spare.idle_elsewhere() is False


def test_another_process_using_a_core_is_seen() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        spare = SpareCores(SpareCores.host_cores(), min_interval_s=0.2)
        spare.idle_elsewhere()
        # The spinner uses about a core between any two looks 0.2 s apart: more than the 0.5 slack.
        assert wait_for(lambda: spare.idle_elsewhere() is False, timeout_s=10, what="the spinner seen")
    finally:
        spinner.kill()
        spinner.wait()


class _AlwaysIdle(SpareCores):
    def __init__(self) -> None:
        super().__init__(SpareCores.host_cores())

    def idle_elsewhere(self) -> bool:
        return True


TEXTS = ["def add(a, b):\n    return a + b", "x", "class Server:\n    def listen(self, port): ...", "word " * 300]


@pytest.mark.skipif(SpareCores.host_cores() < 2, reason="one core: there is nothing to widen to")
def test_a_narrow_embedder_runs_wide_on_idle_cores_with_the_same_vectors() -> None:
    wide = LocalEmbedder(batch_size=2, threads=1, inferences=1, spare=_AlwaysIdle())
    narrow = LocalEmbedder(batch_size=2, threads=1, inferences=1, widen=False)
    np.testing.assert_allclose(wide.embed(TEXTS), narrow.embed(TEXTS), atol=2e-5)
    assert wide.wide_inferences == 2 and narrow.wide_inferences == 0
    options = wide._wide_session().get_session_options()
    assert options.intra_op_num_threads == SpareCores.host_cores()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert wide._load()[0].get_session_options().intra_op_num_threads == 1  # the narrow one is kept


def test_widening_is_a_setting_and_only_for_narrow_inferences() -> None:
    off = make_embedder(Settings(CODESEARCH_EMBEDDER="local", CODESEARCH_WORKER_MODEL_WIDEN="false"),  # type: ignore[call-arg]
                        model_threads=1)
    on = make_embedder(Settings(CODESEARCH_EMBEDDER="local"), model_threads=1)  # type: ignore[call-arg]
    every_core = make_embedder(Settings(CODESEARCH_EMBEDDER="local"), model_threads=0)  # type: ignore[call-arg]
    assert isinstance(off, LocalEmbedder) and isinstance(on, LocalEmbedder) and isinstance(every_core, LocalEmbedder)
    assert off._spare is None and every_core._spare is None
    assert (on._spare is not None) == (SpareCores.host_cores() > 1)


def test_a_busy_loop_of_this_process_is_not_counted_as_others() -> None:
    spare = SpareCores(SpareCores.host_cores(), min_interval_s=0.2)
    spare.idle_elsewhere()

    def spin_then_look() -> bool:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # this process's own CPU: subtracted
            pass
        return spare.idle_elsewhere()

    # Each attempt keeps a core busy in this process; one attempt while the rest of the host is quiet
    # must say idle (counting our own loop, none would).
    assert wait_for(spin_then_look, timeout_s=20, interval_s=0.0, what="a look that sees only our own CPU")


def test_cpu_times_that_cannot_be_read_keep_inferences_narrow() -> None:
    readings = _Readings()
    failing = [False]

    def read() -> tuple[float, float, float]:
        if failing[0]:
            raise PermissionError("/proc/stat")
        return readings()

    spare = SpareCores(2, read=read)
    spare.idle_elsewhere()
    readings.advance(1.0, others=0.0, own=1.0)
    assert spare.idle_elsewhere() is True
    failing[0] = True
    readings.advance(1.0, others=0.0, own=1.0)
    assert spare.idle_elsewhere() is False  # no error reaches the batch
