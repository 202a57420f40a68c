"""Test-session wiring: one embedded PostgreSQL for the whole session, a migrated template database
cloned per test, and a shared database for tests that need the process-wide broker.

Environment variables are set in pytest_configure, before any test module imports `actors` (which
binds the broker to DATABASE_URL at import).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.support import ROOT, TEMPLATE_DB, admin_url_of, database_url_for

_home = Path(tempfile.mkdtemp(prefix="cs-test-home-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CODESEARCH_HOME"] = str(_home)
    os.environ["CODESEARCH_EMBEDDER"] = "hashing"
    # Tests lay out batches with CODESEARCH_BATCH_MAX_FILES alone (tests/unit/test_batches.py covers
    # the minimum count).
    os.environ["CODESEARCH_BATCH_MIN_COUNT"] = "1"
    # Tests index repositories under the temp directory, and the docs examples index this checkout.
    os.environ["CODESEARCH_ALLOWED_ROOTS"] = os.pathsep.join([tempfile.gettempdir(), str(ROOT)])
    os.environ.pop("DATABASE_URL", None)
    # Watches change hands within seconds (a third of the lease is the supervisor's round).
    os.environ.setdefault("CODESEARCH_WATCH_LEASE_SECONDS", "3")
    from domain.database import migrate, start_embedded
    from domain.settings import Settings

    url = start_embedded(Settings())
    admin = admin_url_of(url)
    _recreate(admin, TEMPLATE_DB)
    migrate(database_url_for(url, TEMPLATE_DB))
    _recreate(admin, "shared", template=TEMPLATE_DB)
    os.environ["DATABASE_URL"] = database_url_for(url, "shared")
    os.environ["CS_TEST_ADMIN_URL"] = admin


def pytest_unconfigure(config: pytest.Config) -> None:
    from domain.database import stop_embedded
    from domain.settings import Settings

    stop_embedded(Settings(CODESEARCH_HOME=_home))
    shutil.rmtree(_home, ignore_errors=True)


def _recreate(admin: str, name: str, template: str | None = None) -> None:
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()


def _drop(admin: str, name: str) -> None:
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def fresh_db() -> Iterator[str]:
    """URL of a database of its own, migrated to head (cloned from the template)."""
    yield from _cloned("t")


def _cloned(prefix: str) -> Iterator[str]:
    admin = os.environ["CS_TEST_ADMIN_URL"]
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _recreate(admin, name, template=TEMPLATE_DB)
    yield database_url_for(admin, name)
    _drop(admin, name)


@pytest.fixture(scope="module")
def module_db() -> Iterator[str]:
    """Like `fresh_db`, for the tests of one module together (they share its worker processes)."""
    yield from _cloned("mod")


@pytest.fixture
def empty_db() -> Iterator[str]:
    """URL of an empty database (no migrations), for migration tests."""
    admin = os.environ["CS_TEST_ADMIN_URL"]
    name = f"m_{uuid.uuid4().hex[:12]}"
    _recreate(admin, name)
    yield database_url_for(admin, name)
    _drop(admin, name)


@pytest.fixture(scope="session")
def shared_db() -> str:
    """The database the in-process broker and the session's workers use."""
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def workers(shared_db: str) -> Iterator[None]:
    """Real `dramatiq actors` worker processes on the shared database, for the whole session."""
    from tests.support import WorkerGroup

    group = WorkerGroup(shared_db, processes=2, threads=4)
    group.start()
    yield
    group.stop()
