"""Arbitrary values for every parameter of every tool, over a real MCP client and HTTP server process:
each call answers with a result or a clear tool error, the server stays up, and no stored row changes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import mcp
from anyio.from_thread import start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import jobs
from domain.store import Store
from tests.acceptance.test_processes import HttpServer
from tests.support import make_repo

HOSTILE = ["/", "/etc", "/etc/passwd", "/proc/self/environ", "/proc/self/root", "/dev/zero", "/tmp/../etc", "..",
           "~", "~/.ssh", "relative/path", "%", "_", "\\", "' OR 1=1 --", "'; DROP TABLE chunks; --", "\x00",
           "a\x00b", "x" * 5000, "-1", "0", "1e309", "NaN", "semantic", "lexical", "hybrid", "py", ".env", "*",
           str(uuid.uuid4()), "00000000-0000-0000-0000-000000000000", "default", "pending", "completed"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.sampled_from(HOSTILE),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
# What an error shown to a client must never contain: internals, SQL, connection strings.
LEAKS = ("Traceback", 'File "', "psycopg2", "SELECT ", "INSERT ", "postgresql://", "/pg/", "sqlalchemy")
TABLES = ("projects", "repositories", "files", "chunks", "indexing_jobs", "indexing_batches", "dramatiq.queue")


def typed(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the parameter's own JSON-schema type, so most calls get past validation."""
    kinds = [prop] + list(prop.get("anyOf", []))
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if "enum" in kind:
            options.append(st.sampled_from(kind["enum"]))
        options.append({
            "string": st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE), st.uuids().map(str)),
            "integer": st.integers(min_value=-5, max_value=600),
            "number": st.floats(min_value=-5, max_value=4000, allow_nan=False),
            "boolean": st.booleans(), "null": st.none(),
        }.get(kind.get("type", ""), st.nothing()))
    return st.one_of(options)


def fingerprint(store: Store) -> dict[str, str]:
    out = {}
    with store.transaction() as cur:
        for table in TABLES:
            cur.execute(f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') AS f "
                        f"FROM {table} t")
            out[table] = cur.fetchone()["f"]  # type: ignore[index]
    return out


def test_any_arguments_to_any_tool_get_a_result_or_a_clear_error(tmp_path: Path, fresh_db: str) -> None:
    allowed = tmp_path / "allowed"
    other = make_repo(allowed / "other_repo", {"a.py": "def a():\n    return 1\n"})
    store = Store(fresh_db)
    jobs.create_job(store, str(other), "other-project", False, "seed", [allowed])
    before = fingerprint(store)
    server = HttpServer(fresh_db, CODESEARCH_ALLOWED_ROOTS=str(allowed))
    calls: list[tuple[str, bool]] = []
    try:
        with start_blocking_portal() as portal, portal.wrap_async_context_manager(mcp.Client(server.url)) as client:
            tools = {t.name: t.input_schema for t in portal.call(client.list_tools).tools}

            @settings(max_examples=25, deadline=None, database=None)
            @given(data=st.data())
            def one_call(name: str, data: st.DataObject) -> None:
                schema = tools[name]
                args: dict[str, Any] = {}
                for param in schema.get("properties", {}):
                    if param in schema.get("required", []) or data.draw(st.booleans(), label=f"send {param}"):
                        prop = schema["properties"][param]
                        args[param] = data.draw(st.one_of(typed(prop), VALUES), label=param)
                if data.draw(st.booleans(), label="unknown parameter"):
                    args["not_a_parameter"] = data.draw(VALUES)
                result = portal.call(client.call_tool, name, args)
                text = " ".join(getattr(c, "text", "") for c in result.content)
                if result.is_error:
                    assert text.strip(), f"{name}({args!r}) failed without a message"
                    assert not any(leak in text for leak in LEAKS), f"{name}({args!r}) leaked: {text}"
                calls.append((name, bool(result.is_error)))

            for name in sorted(tools):
                one_call(name)
            assert portal.call(client.list_tools).tools  # the same session still answers
        assert server.proc.poll() is None, "the server process died"
        assert fingerprint(store) == before
        assert {name for name, _ in calls} == set(tools)
    finally:
        server.kill()
        store.close()
