"""The workers' dramatiq-pg consumer (`actors.broker.PromptConsumer`) against a real PostgreSQL."""

from __future__ import annotations

import importlib
import threading
import time
import types
from typing import Any

import dramatiq_pg.broker
import pytest
from dramatiq import Message

# `actors.broker` as an attribute of the package is the broker object, not this module.
broker_module = importlib.import_module("actors.broker")


def _next_message(consumer: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError(f"no message within {timeout_s} s")


def test_a_full_consumer_takes_the_next_message_as_soon_as_one_is_acked(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # dramatiq-pg's own consumer sleeps while full, with a backoff that grows to 0.5-1 s and is never
    # reset; its sleeps are recorded here (and still taken) so that the test fails with it.
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(dramatiq_pg.broker, "time", types.SimpleNamespace(sleep=sleep))
    monkeypatch.setattr(broker_module, "FULL_WAIT_S", 0.01)
    broker = broker_module.Broker(url=fresh_db, results=False, middleware=[])
    broker.declare_queue("prompt")
    for n in range(2):
        broker.enqueue(Message(queue_name="prompt", actor_name="noop", args=(n,), kwargs={}, options={}))
    consumer = broker.consume("prompt", prefetch=1)
    try:
        first = _next_message(consumer, 10)
        for _ in range(20):  # full: each look gives nothing, for as long as the first is not acked
            assert next(consumer) is None
        monkeypatch.setattr(broker_module, "FULL_WAIT_S", 30.0)  # from now on only the ack can wake it
        received: list[tuple[Any, float]] = []
        taker = threading.Thread(target=lambda: received.append((_next_message(consumer, 20), time.monotonic())))
        taker.start()
        acked = time.monotonic()
        consumer.ack(first)
        taker.join(25)
        assert received, "the consumer did not take the second message"
        second, at = received[0]
        assert second.args != first.args
        assert at - acked < 5.0  # not FULL_WAIT_S: the ack woke it
        assert slept == []
    finally:
        consumer.close()
        broker.close()
