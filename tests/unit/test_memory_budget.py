"""The process-wide budget of memory for files in flight (domain/budget.py)."""

from __future__ import annotations

import threading

from domain.budget import MemoryBudget, file_cost
from tests.support import wait_for


def reserve_in_thread(budget: MemoryBudget, size: int) -> tuple[threading.Thread, threading.Event]:
    granted = threading.Event()

    def run() -> None:
        budget.reserve(size)
        granted.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, granted


def test_reservations_stay_within_the_limit_and_come_back() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(60) and budget.try_reserve(40)
    assert not budget.try_reserve(1)
    budget.release(40)
    assert budget.try_reserve(30) and budget.used == 90
    budget.release(90)
    assert budget.used == 0


def test_a_reservation_larger_than_the_limit_runs_alone() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(10)
    assert not budget.try_reserve(500)  # something else is reserved
    budget.release(10)
    assert budget.try_reserve(500) and budget.used == 500
    assert not budget.try_reserve(1)


def test_a_waiting_reservation_is_granted_on_release_and_goes_before_later_ones() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(80)
    thread, granted = reserve_in_thread(budget, 50)
    wait_for(lambda: budget._waiting, timeout_s=5, interval_s=0.005)  # it waits its turn
    assert not granted.is_set()
    assert not budget.try_reserve(10)  # would fit, but the waiter comes first
    budget.release(80)
    assert granted.wait(5) and budget.used == 50
    thread.join(5)
    assert budget.try_reserve(10)


def test_waiters_are_served_in_order() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(100)
    order: list[int] = []
    threads = []
    for size in (70, 20, 60):
        def run(size: int = size) -> None:
            budget.reserve(size)
            order.append(size)
        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()
        wait_for(lambda n=len(threads): len(budget._waiting) == n, timeout_s=5, interval_s=0.005)
    budget.release(100)  # 70 and 20 fit together; 60 waits for them
    wait_for(lambda: order == [70, 20], timeout_s=5, interval_s=0.005)
    assert budget.used == 90
    budget.release(90)
    wait_for(lambda: order == [70, 20, 60], timeout_s=5, interval_s=0.005)
    for t in threads:
        t.join(5)


def test_the_cost_of_a_file_grows_with_its_size() -> None:
    assert file_cost(0) == 0 and file_cost(-5) == 0
    assert file_cost(1000) < file_cost(2000)


def test_a_waiter_goes_ahead_after_the_longest_wait() -> None:
    budget = MemoryBudget(100, max_wait_s=0.2)
    assert budget.try_reserve(100)  # and never given back
    thread, granted = reserve_in_thread(budget, 50)
    assert granted.wait(5) and budget.used == 150 and not budget._waiting
    thread.join(5)
