"""Pooled connections serve both transactions and autocommitted reads, one after the other."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

import psycopg2
import pytest

from domain.store import base as store_module
from domain.errors import DatabaseUnavailable
from domain.store import Store


def _xids(cursor_of: AbstractContextManager[Any]) -> set[int]:
    """The transaction ids of two statements run on the cursor."""
    with cursor_of as cur:
        seen = set()
        for _ in range(2):
            cur.execute("SELECT pg_current_xact_id()::text::bigint AS xid")
            seen.add(cur.fetchone()["xid"])
    return seen


def test_reads_commit_statement_by_statement_and_transactions_stay_whole(fresh_db: str) -> None:
    store = Store(fresh_db, max_connections=1)  # one connection: every block below reuses it
    assert len(_xids(store.reading())) == 2  # each statement its own transaction
    assert len(_xids(store.transaction())) == 1  # one transaction for the block
    assert len(_xids(store.reading())) == 2


def test_a_failed_transaction_after_reads_rolls_back_and_a_failed_read_loses_nothing(fresh_db: str) -> None:
    store = Store(fresh_db, max_connections=1)
    with pytest.raises(psycopg2.errors.DivisionByZero):
        with store.reading() as cur:
            cur.execute("SELECT 1 / 0")
    with pytest.raises(RuntimeError):
        with store.transaction() as cur:
            cur.execute("INSERT INTO projects (id) VALUES ('rolled-back')")
            raise RuntimeError("abandon the transaction")
    with store.transaction() as cur:
        cur.execute("INSERT INTO projects (id) VALUES ('kept')")
    with store.reading() as cur:
        cur.execute("SELECT id FROM projects WHERE id IN ('rolled-back', 'kept') ORDER BY id")
        assert [r["id"] for r in cur.fetchall()] == ["kept"]


def test_callers_beyond_the_pool_wait_for_a_connection_instead_of_failing(fresh_db: str) -> None:
    store = Store(fresh_db, max_connections=2)
    lock, active, peak, failures = threading.Lock(), [0], [0], []

    def read() -> None:
        try:
            with store.reading() as cur:
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                cur.execute("SELECT pg_sleep(0.05)")
                with lock:
                    active[0] -= 1
        except Exception as exc:  # psycopg2's pool alone raised "connection pool exhausted" here
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert failures == [] and peak[0] == 2


def test_a_caller_that_finds_every_connection_busy_too_long_gets_a_clear_error(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "CHECKOUT_WAIT_S", 0.2)
    store = Store(fresh_db, max_connections=1)
    with store.reading():
        with pytest.raises(DatabaseUnavailable, match="stayed in use for 0.2 s"):
            with store.reading():
                pass
    with store.reading() as cur:  # the place came back
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone()["one"] == 1
