"""Watch mode: repositories kept fresh by their file-system events, free of Dramatiq and MCP.

A user asks for a watch (`watch`); its row in PostgreSQL says so. Every worker process runs a
`WatchSupervisor`, which takes watches that have no live owner under a lease, renews its own, and runs
one `Watcher` thread for each. So one process in the whole deployment watches a repository, however
many `up` processes or servers run, and a dead owner's watches pass to another process once its lease
runs out.

A watcher listens to the OS's notifications (watchfiles: inotify, FSEvents, ReadDirectoryChangesW)
and, once the files have been quiet for `watch_debounce_ms`, sends what changed as one ordinary job
limited to those paths (`indexing_jobs.paths`): the same actors and batches as any job, the same
ignore rules (planning rediscovers each path, reading the ignore files above it). While a job of the
repository runs, changes gather and go as the next job, so a burst of thousands is one or two jobs.
When a watcher starts, it first sends an ordinary incremental job of the whole repository, which
picks up whatever changed while nobody watched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import watchfiles

from domain.discovery import Scope, discover, is_builtin_ignored
from domain.errors import InvalidInput, NotFound
from domain.models import WatchInfo, parse_project_id
from domain.paths import validate_repo_path
from domain.secrets import SecretPolicy
from domain.settings import Settings
from domain.store import TRANSIENT_ERRORS, Row, Store

log = logging.getLogger(__name__)
#: How often a watcher wakes without events, to send changes a running job held back and to notice
#: its job's end. Idle, that is two wake-ups a second: no measurable CPU.
TICK_MS = 500
#: The longest a burst of changes is gathered before a watcher sends what it has (watchfiles'
#: `debounce`); the files being quiet for `watch_debounce_ms` ends a burst sooner.
MAX_BURST_MS = 30_000
#: After a watcher's job failed, how long it waits before it sends a whole-repository job again.
RETRY_AFTER_FAILURE_S = 30.0
#: Ignore files: a change to one may add or remove any file below its directory.
IGNORE_FILES = frozenset({".gitignore", ".codesearchignore"})
Send = Callable[[str], None]  # enqueue a new job by id
Key = tuple[str, str]  # (project_id, repo_path) of a watch


# --- asking -------------------------------------------------------------------------------------

def watch(store: Store, repo_path: str, project_id: str, allowed_roots: list[Path] | None = None) -> WatchInfo:
    """Ask for a repository to be watched (a worker process takes it within a lease interval).

    Raises:
        InvalidInput: a bad path (a file, missing, outside `allowed_roots`) or project id.
    """
    root = validate_repo_path(repo_path, allowed_roots)
    row = store.watch_repository(parse_project_id(project_id), str(root), root.name or str(root))
    return WatchInfo.model_validate(row)


def unwatch(store: Store, repo_path: str, project_id: str) -> WatchInfo:
    """Stop watching a repository; its index stays. A vanished directory can be unwatched by its path.

    Raises:
        InvalidInput: a malformed path or project id. NotFound: the repository is not watched.
    """
    project = parse_project_id(project_id)
    try:
        key = str(validate_repo_path(repo_path))
    except InvalidInput:
        if not isinstance(repo_path, str) or "\x00" in repo_path or not os.path.isabs(repo_path):
            raise
        key = os.path.normpath(repo_path)
    row = store.unwatch_repository(project, key, "unwatched")
    if row is None:
        raise NotFound(f"{key} is not watched in project {project!r}")
    return WatchInfo.model_validate(row)


def set_watch(store: Store, repo_path: str, project_id: str, on: bool,
              allowed_roots: list[Path] | None = None) -> WatchInfo | None:
    """`watch` or `unwatch`; stopping a watch that does not exist changes nothing (None)."""
    if on:
        return watch(store, repo_path, project_id, allowed_roots)
    try:
        return unwatch(store, repo_path, project_id)
    except NotFound:
        return watch_of(store, project_id, repo_path)


def watches(store: Store, project_id: str | None = None) -> list[WatchInfo]:
    """Every watch (of one project), watching or stopped."""
    return [WatchInfo.model_validate(r) for r in store.watches(project_id)]


def watch_of(store: Store, project_id: str, repo_path: str) -> WatchInfo | None:
    row = store.get_watch(project_id, repo_path)
    return WatchInfo.model_validate(row) if row is not None else None


# --- what changed -------------------------------------------------------------------------------

def changed_paths(root: str, events: Iterable[tuple[watchfiles.Change, str]]) -> set[str] | None:
    """The root-relative paths a set of events touched; None when the whole repository must be looked
    at (the root itself changed, or the root's ignore files). A changed ignore file stands for its
    directory; paths in built-in ignored directories (.git, node_modules, ...) are dropped."""
    out: set[str] = set()
    prefix = root.rstrip(os.sep) + os.sep
    for _, path in events:
        if not path.startswith(prefix):
            if path.rstrip(os.sep) == root.rstrip(os.sep):
                return None
            continue
        rel = path[len(prefix):].replace(os.sep, "/")
        if rel == ".git/info/exclude":
            return None
        if is_builtin_ignored(rel):
            continue
        head, _, name = rel.rpartition("/")
        if name in IGNORE_FILES:
            if not head:
                return None
            out.add(head)
        else:
            out.add(rel)
    return out


def relevant(store: Store, settings: Settings, root: str, project_id: str, paths: set[str]) -> set[str]:
    """Of changed paths, those a job must look at: what discovery would index, what no longer exists,
    and what the index holds (a file that became ignored, too large or binary must leave it)."""
    if not paths:
        return set()
    scope = Scope.of(paths)
    found = discover(Path(root), max_file_bytes=settings.max_file_bytes, rules=settings.discovery_rules,
                     secrets=SecretPolicy.configured(settings.secret_files, settings.secret_files_allow),
                     scope=scope)
    keep = {p for p in paths if not os.path.lexists(os.path.join(root, p))}
    for f in found.files:  # the changed path each found file is, or is below
        parts = f.path.split("/")
        keep.update(p for p in ("/".join(parts[:n]) for n in range(1, len(parts) + 1)) if p in scope.paths)
    rest = scope.paths - keep
    return keep | (store.indexed_paths(project_id, root, sorted(rest)) if rest else set())


# --- watching -----------------------------------------------------------------------------------

class Watcher:
    """One watched repository in this process: a thread that turns its events into jobs."""

    def __init__(self, store: Store, settings: Settings, row: Row, owner: str, send: Send) -> None:
        self.store, self.settings, self.owner, self.send = store, settings, owner, send
        self.project_id, self.root, self.name = str(row["project_id"]), str(row["repo_path"]), str(row["repo_name"])
        self._stop = threading.Event()
        self._pending: set[str] = set()
        self._whole = True  # a (re)started watcher first looks at the whole repository
        self._not_before = 0.0
        self._job: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"codesearch-watch-{self.name}", daemon=True)

    @property
    def key(self) -> Key:
        return self.project_id, self.root

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    def _run(self) -> None:
        log.info("watching %s (project %s)", self.root, self.project_id)
        try:
            if not os.path.isdir(self.root):
                raise FileNotFoundError(self.root)
            for events in watchfiles.watch(
                    self.root, step=self.settings.watch_debounce_ms, debounce=MAX_BURST_MS, stop_event=self._stop,
                    yield_on_timeout=True, rust_timeout=TICK_MS, raise_interrupt=False,
                    ignore_permission_denied=True, watch_filter=None):
                if not os.path.isdir(self.root):
                    raise FileNotFoundError(self.root)
                self._round(events)
        except FileNotFoundError:
            self._give_up(f"the directory {self.root} no longer exists")
        except Exception as exc:  # the thread's edge: the supervisor restarts a watch whose thread died
            log.exception("watcher of %s failed", self.root)
            if not self._stop.is_set():
                self._give_up(f"the watcher failed: {type(exc).__name__}: {exc}")

    def _round(self, events: set[tuple[watchfiles.Change, str]]) -> None:
        try:
            if events:
                self._gather(events)
            self._follow_job()
            self._flush()
        except TRANSIENT_ERRORS as exc:  # the database restarts: keep the changes, try at the next tick
            log.warning("watcher of %s waits for the database: %s", self.root, exc)

    def _gather(self, events: set[tuple[watchfiles.Change, str]]) -> None:
        paths = changed_paths(self.root, events)
        if paths is None:
            self._whole = True
        else:
            paths = relevant(self.store, self.settings, self.root, self.project_id, paths)
            self._pending |= paths
        if paths is None or paths:
            self.store.record_watch(self.project_id, self.root, self.owner, changed=True)

    def _follow_job(self) -> None:
        """Notice the end of the job sent last (or of the running job the changes wait for): caught up
        when it completed and nothing is pending."""
        if self._job is None:
            return
        job = self.store.get_job(self._job)
        if job is not None and job["status"] in ("pending", "running"):
            return
        self._job = None
        if job is None or job["status"] != "completed":
            if job is None or job["connection_id"] == "watch":  # ours failed or was cancelled: all of it, later
                self._whole, self._not_before = True, time.monotonic() + RETRY_AFTER_FAILURE_S
        elif not self._whole and not self._pending:
            self.store.record_watch(self.project_id, self.root, self.owner, up_to_date=True)

    def _flush(self) -> None:
        """Send what is pending as one job, unless a job of the repository is running (then next tick)."""
        if not (self._whole or self._pending) or self._job is not None or time.monotonic() < self._not_before:
            return
        paths = None if self._whole else sorted(self._pending)
        row, created = self.store.create_job(self.project_id, self.root, self.name, False, "watch", paths)
        if not created and row["status"] != "pending":
            self._job = str(row["job_id"])  # a running job takes no new paths: followed, they go at its end
            return
        if created:
            self.send(str(row["job_id"]))
        self._job, self._whole, self._pending = str(row["job_id"]), False, set()
        self.store.record_watch(self.project_id, self.root, self.owner, job_id=self._job)
        log.info("watch of %s sent job %s (%s)", self.root, self._job,
                 "whole repository" if paths is None else f"{len(paths)} paths")

    def _give_up(self, reason: str) -> None:
        log.warning("stopped watching %s: %s", self.root, reason)
        try:
            self.store.stop_watch(self.project_id, self.root, self.owner, reason)
        except TRANSIENT_ERRORS as exc:  # the lease runs out; the next owner finds the same and says so
            log.warning("could not record the end of the watch of %s: %s", self.root, exc)


class WatchSupervisor:
    """The watches of one process: claims free ones, renews its leases, stops what it lost."""

    def __init__(self, store: Store, settings: Settings, owner: str, send: Send) -> None:
        self.store, self.settings, self.owner, self.send = store, settings, owner, send
        self.watchers: dict[Key, Watcher] = {}

    @property
    def interval_s(self) -> float:
        """A third of the lease: two renewals may fail before another process may take a watch."""
        return self.settings.watch_lease_seconds / 3

    def round(self) -> None:
        lease = self.settings.watch_lease_seconds
        owned = self.store.renew_watches(self.owner, lease)
        for key, watcher in list(self.watchers.items()):
            if key not in owned or not watcher.alive:  # unwatched, taken over, or its thread ended
                watcher.stop()
                del self.watchers[key]
        room = self.settings.watch_max_per_process - len(self.watchers)
        for row in self.store.claim_watches(self.owner, lease, room):
            key = (str(row["project_id"]), str(row["repo_path"]))
            if key not in self.watchers:
                self.watchers[key] = watcher = Watcher(self.store, self.settings, row, self.owner, self.send)
                watcher.start()

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set; then every watcher stops and its watch is released."""
        while True:
            try:
                self.round()
            except TRANSIENT_ERRORS as exc:
                log.warning("watch round skipped: %s", exc)
            except Exception:  # a bug must not end watching: the next round may work
                log.exception("watch round failed")
            if stop.wait(self.interval_s):
                break
        self.shutdown()

    def shutdown(self) -> None:
        for watcher in self.watchers.values():
            watcher.stop()
        self.watchers.clear()
        try:
            self.store.release_watches(self.owner)
        except TRANSIENT_ERRORS as exc:  # the leases run out instead
            log.warning("could not release watches: %s", exc)

