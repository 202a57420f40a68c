"""FrozenBoot: a booted worker's objects are out of the cyclic collector's sight."""

from __future__ import annotations

import gc

from actors.collector import FrozenBoot


def test_worker_boot_freezes_the_objects_that_exist_then_and_later_garbage_is_still_collected() -> None:
    kept = [object() for _ in range(100)]
    try:
        FrozenBoot().after_worker_boot(None, None)  # type: ignore[arg-type]
        assert gc.get_freeze_count() >= len(kept)
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # objects made after boot are collected as before
    finally:
        gc.unfreeze()
