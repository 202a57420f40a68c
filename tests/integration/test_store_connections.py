"""Pooled connections serve both transactions and autocommitted reads, one after the other."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import psycopg2
import pytest

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
