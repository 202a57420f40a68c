"""The `codesearch` command line. Subcommands and flags are a contract: extend, never rename."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING


from pydantic import BaseModel

from domain import database
from domain.errors import CodesearchError
from domain.settings import Settings, get_settings

if TYPE_CHECKING:
    from monitoring.server import ServerMetrics

EXIT_FAILED, EXIT_CANCELLED, EXIT_NOT_RUNNING = 1, 3, 3


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `codesearch` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, get_settings()) or 0)
    except CodesearchError as exc:
        return _fail(args, str(exc))
    except KeyboardInterrupt:
        return 130


def _fail(args: argparse.Namespace, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_FAILED


def _emit(args: argparse.Namespace, model: BaseModel, human: Callable[[], None]) -> None:
    if args.json:
        print(model.model_dump_json())
    else:
        human()


# --- database --------------------------------------------------------------------------------

def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if settings.database_url and args.action in ("start", "stop"):
        print(f"DATABASE_URL is set; codesearch does not manage that server ({database.redact(settings.database_url)})")
        return 0
    if args.action == "start":
        print(database.start_embedded(settings))
    elif args.action == "stop":
        stopped = database.stop_embedded(settings)
        print("stopped" if stopped else f"not running ({settings.pgdata})")
    elif args.action == "url":
        print(database.database_url(settings))
    else:
        return _db_status(settings)
    return 0


def _db_status(settings: Settings) -> int:
    if settings.database_url:
        print(f"external database: {database.redact(settings.database_url)}")
        return 0
    st = database.embedded_status(settings)
    if not st.running:
        print(f"embedded PostgreSQL: not running (data in {st.pgdata})")
        return EXIT_NOT_RUNNING
    note = " - no client attached (orphaned? stop it with `codesearch db stop`)" if st.orphaned else ""
    print(f"embedded PostgreSQL: running, pid {st.pid}, {st.connections} client connections{note}")
    print(f"data: {st.pgdata}\nurl: {st.url}")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    url = database.database_url(settings)
    database.migrate(url)
    print(f"database at revision {database.current_revision(url)}")
    return 0


# --- processes --------------------------------------------------------------------------------

def worker_command(processes: int, threads: int) -> list[str]:
    """The stock Dramatiq CLI on our actors package: what the Procfile's worker runs too."""
    return [sys.executable, "-m", "dramatiq", "actors", "--processes", str(processes), "--threads", str(threads)]


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    database.database_url(settings)  # start the embedded server once, before the worker processes race to
    cmd = worker_command(args.processes or settings.worker_processes, args.threads or settings.worker_threads)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import http
    from mcp_entry.server import build_server

    if args.transport == "http":  # before touching the database: a refused server does nothing at all
        http.check_exposure(settings, args.host or settings.http_host)
    server = build_server(settings)
    if args.transport == "stdio":
        if args.metrics_port:  # stdout is the MCP channel: metrics go to their own port
            _serve_metrics(server.metrics, settings.http_host, args.metrics_port)
        threading.Thread(target=server.warm_up, name="warm-up", daemon=True).start()  # while the client connects
        server.run()
    else:
        host, port = args.host or settings.http_host, args.port or settings.http_port
        server.warm_up()  # before listening: the first clients are served warm
        print(f"MCP endpoint: http://{host}:{port}/mcp (metrics at /metrics)", file=sys.stderr, flush=True)
        http.serve(server, settings, host, port)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from actors.rescue import HEARTBEAT_MAX_AGE_S
    from domain.health import diagnose

    report = diagnose(settings, HEARTBEAT_MAX_AGE_S)
    if args.json:
        print(report.model_dump_json())
    else:
        marks = {"ok": "ok  ", "warning": "WARN", "failed": "FAIL"}
        for check in report.checks:
            print(f"[{marks[check.state]}] {check.name}: {check.detail}")
            if check.state != "ok" and check.remedy:
                print(f"       -> {check.remedy}")
    return 0 if report.healthy else EXIT_FAILED


def cmd_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """The server-side metrics (database state) once on stdout, or served on --port."""
    from mcp_entry.server import build_server

    metrics = build_server(settings).metrics
    if args.port is None:
        sys.stdout.write(metrics.render()[0].decode())
        return 0
    host = args.host or settings.http_host
    _serve_metrics(metrics, host, args.port)
    print(f"metrics: http://{host}:{args.port}/metrics", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def _serve_metrics(metrics: ServerMetrics, host: str, port: int) -> None:
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=metrics.registry)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    # Stop on exit only an embedded server this command started; one already running stays up.
    owns_db = not settings.database_url and not database.embedded_status(settings).running
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: children first, then the database
    try:
        return _up(args, settings)
    finally:
        if owns_db:
            database.stop_embedded(settings)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import console

    url = database.database_url(settings)
    database.migrate(url)
    host, port = settings.http_host, args.port or settings.http_port
    me = [sys.executable, "-m", "mcp_entry"]
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # The children log to files so the progress bar stays readable; the paths are printed below.
    with (logs / "worker.log").open("ab") as worker_log, (logs / "server.log").open("ab") as server_log:
        children = [
            subprocess.Popen(worker_command(settings.worker_processes, settings.worker_threads),
                             stdout=worker_log, stderr=subprocess.STDOUT),
            subprocess.Popen([*me, "serve", "--transport", "http", "--host", host, "--port", str(port)],
                             stdout=server_log, stderr=subprocess.STDOUT),
        ]
    try:
        _wait_for_port(host, port, children[1])
        print(f"MCP endpoint: http://{host}:{port}/mcp  (Ctrl-C stops everything; logs in {logs})", flush=True)
        for path in args.index or []:  # a failed job is shown; the server keeps serving what is indexed
            _index_and_wait(path, args.project, False, settings)
            if args.watch:
                console.print_watch(console.watch(os.path.abspath(path), args.project or settings.default_project,
                                                  True))
        print(f"Serving MCP at http://{host}:{port}/mcp - try: codesearch search \"where are jobs aggregated\"",
              flush=True)
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_children(children)


def _wait_for_port(host: str, port: int, child: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CodesearchError(f"the MCP server exited with status {child.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise CodesearchError(f"the MCP server did not listen on {host}:{port} within {timeout_s:.0f} s")


def _stop_children(children: list[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- jobs and search --------------------------------------------------------------------------

def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    if args.wait:
        return _index_and_wait(args.path, args.project, args.force, settings, as_json=args.json)
    from mcp_entry import console

    # A command line takes paths relative to where it runs; MCP clients must send absolute ones.
    status = console.start(os.path.abspath(args.path), args.project or settings.default_project, args.force)
    _emit(args, status, lambda: print(f"job {status.job_id} {status.status}"))
    return 0


def _index_and_wait(path: str, project: str | None, force: bool, settings: Settings, as_json: bool = False) -> int:
    from mcp_entry import console

    status = console.start(os.path.abspath(path), project or settings.default_project, force)
    final = console.wait(status, quiet=as_json)
    if as_json:
        print(final.model_dump_json())
    return {"completed": 0, "cancelled": EXIT_CANCELLED}.get(final.status, EXIT_FAILED)


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Start (watch) or stop (unwatch) watching each path; the first bad path stops the command."""
    from mcp_entry import console

    on = args.command == "watch"
    infos = [console.watch(os.path.abspath(p), args.project or settings.default_project, on) for p in args.paths]
    if args.json:
        print(json.dumps({"watches": [i.model_dump(mode="json") for i in infos]}))
        return 0
    workers = console.workers_alive() if on else None
    for info in infos:
        console.print_watch(info, workers)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import console

    status = console.get(args.job_id)
    _emit(args, status, lambda: console.print_status(status))
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import console

    status = console.cancel(args.job_id)
    _emit(args, status, lambda: print(f"job {status.job_id} {status.status}"))
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import console

    listing = console.listing(args.project, args.status, args.limit)
    _emit(args, listing, lambda: console.print_jobs(listing))
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from mcp_entry import console

    response = console.search(settings, args.query, args.project or settings.default_project, args.limit,
                              args.file_type, args.directory, args.repository, args.mode, args.language)
    _emit(args, response, lambda: console.print_results(response))
    return 0


def cmd_estimate(args: argparse.Namespace, settings: Settings) -> int:
    from domain.estimate import estimate
    from mcp_entry import console

    result = estimate(settings, os.path.abspath(args.path))
    _emit(args, result, lambda: console.print_estimate(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codesearch", description="Code search for MCP clients.")
    sub = p.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(handler=cmd_db)
    sub.add_parser("migrate", help="create or upgrade the schema (alembic upgrade head)").set_defaults(handler=cmd_migrate)
    w = sub.add_parser("worker", help="run Dramatiq workers (same as `dramatiq actors`)")
    w.add_argument("--processes", type=_positive, default=None)
    w.add_argument("--threads", type=_positive, default=None)
    w.set_defaults(handler=cmd_worker)
    s = sub.add_parser("serve", help="run the MCP server")
    s.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=_port, default=None)
    s.add_argument("--metrics-port", type=_port, default=None,
                   help="stdio only: also serve Prometheus metrics on this port (HTTP serves them at /metrics)")
    s.set_defaults(handler=cmd_serve)
    d = sub.add_parser("doctor", help="check the database, pgvector, migrations, workers and embedder")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=cmd_doctor)
    m = sub.add_parser("metrics", help="print the server metrics, or serve them on --port (for stdio deployments)")
    m.add_argument("--host", default=None)
    m.add_argument("--port", type=_port, default=None)
    m.set_defaults(handler=cmd_metrics)
    u = sub.add_parser("up", help="database, migrations, workers and the MCP HTTP server in one command")
    u.add_argument("--index", action="append", metavar="PATH")
    u.add_argument("--project", default=None)
    u.add_argument("--port", type=_port, default=None)
    u.add_argument("--watch", action="store_true", help="keep the --index repositories fresh as their files change")
    u.set_defaults(handler=cmd_up)
    for name, text in (("watch", "keep repositories' indexes fresh as their files change (run by the workers)"),
                       ("unwatch", "stop watching repositories (their indexes stay)")):
        wa = sub.add_parser(name, help=text)
        wa.add_argument("paths", nargs="+", metavar="PATH")
        wa.add_argument("--project", default=None)
        wa.add_argument("--json", action="store_true")
        wa.set_defaults(handler=cmd_watch)
    i = sub.add_parser("index", help="index a repository")
    i.add_argument("path")
    i.add_argument("--project", default=None)
    i.add_argument("--force", action="store_true")
    i.add_argument("--wait", action="store_true")
    i.add_argument("--json", action="store_true")
    i.set_defaults(handler=cmd_index)
    for name, handler in (("status", cmd_status), ("cancel", cmd_cancel)):
        c = sub.add_parser(name, help=f"{name} of an indexing job")
        c.add_argument("job_id")
        c.add_argument("--json", action="store_true")
        c.set_defaults(handler=handler)
    j = sub.add_parser("jobs", help="list indexing jobs")
    j.add_argument("--project", default=None)
    j.add_argument("--status", default=None)
    j.add_argument("--limit", type=_positive, default=20)
    j.add_argument("--json", action="store_true")
    j.set_defaults(handler=cmd_jobs)
    q = sub.add_parser("search", help="search indexed code")
    q.add_argument("query")
    q.add_argument("--project", default=None)
    q.add_argument("--limit", type=int, default=10)
    q.add_argument("--file-type", default=None)
    q.add_argument("--directory", default=None)
    q.add_argument("--repository", default=None)
    q.add_argument("--mode", default="hybrid", choices=("hybrid", "semantic", "lexical"))
    q.add_argument("--language", default=None)
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_search)
    e = sub.add_parser("estimate", help="dry run: what indexing a repository would cost, and what it would skip")
    e.add_argument("path")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=cmd_estimate)
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port")
    return value


