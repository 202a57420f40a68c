"""Indexing work, free of Dramatiq: plan a job into file batches, and index one batch."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domain import budget, lexical
from domain.chunker import Chunk
from domain.chunking import Limits, chunk_file, estimate_line_tokens, is_comment
from domain.discovery import DiscoveredFile, Scope, discover, language_for, read_text
from domain.embedders import Embedder, line_token_counter
from domain.errors import EmbedderMismatch
from domain.pgbinary import halfvecs
from domain.secrets import SecretPolicy
from domain.settings import Settings
from domain.store import ChunkRow, FileRow, Progress, Store, StoredVector

log = logging.getLogger(__name__)
FileEntry = tuple[str, int, int]  # path, size, mtime_ns: how a batch lists its files
# Unchanged files are recorded at most this often (written files always are); it bounds how late a
# batch notices a cancel or a lost lease while it runs through unchanged files.
PROGRESS_INTERVAL_S = 1.0
# Texts embedded at once (see `_embedded`): the largest CODESEARCH_EMBED_BATCH_SIZE, so slices never
# cut an embedder's own batches short.
EMBED_SLICE = 256
# Chunks of consecutive files embedded together (see `_prepared_groups`). Larger groups pad less and
# fill more sub-batches, but a batch notices a cancel or a shutdown only between groups: 128 texts
# are ~4 s of the local model on 2 cores.
EMBED_GROUP_TEXTS = 128
# Files written in one transaction at most (see `_prepared_groups`): a group of small or unchanged files
# ends here even short of EMBED_GROUP_TEXTS.
GROUP_FILES = 32
Chunked = tuple[FileRow, list[Chunk]]  # a file to write and its chunks, before embedding
Prepared = tuple[FileRow, list[ChunkRow]]  # ... and after
_active: set[tuple[str, int, str]] = set()
_active_lock = threading.Lock()


@dataclass
class BatchResult:
    """What a batch did; travels through the pipe to the aggregator and is stored on the batch row.

    `status`: completed, failed, cancelled (the job stopped), skipped (another worker holds the batch,
    or it is finished), lost (the lease was taken back) or released (handed back at shutdown).
    """

    job_id: str
    batch_no: int
    status: str = "completed"
    files_indexed: int = 0
    files_skipped: int = 0
    chunks_created: int = 0
    bytes_indexed: int = 0
    error_type: str | None = None
    error_message: str | None = None

    def as_message(self) -> dict[str, object]:
        return asdict(self)

    def totals(self) -> dict[str, int]:
        return {"files_indexed": self.files_indexed, "files_skipped": self.files_skipped,
                "chunks_created": self.chunks_created}

    def add(self, outcome: int, size: int = 0) -> None:
        """Count one file of `size` bytes: chunks written, or -1 when it was skipped."""
        if outcome < 0:
            self.files_skipped += 1
        else:
            self.files_indexed += 1
            self.chunks_created += outcome
            self.bytes_indexed += size


def split_batches(files: Sequence[DiscoveredFile], max_files: int, max_bytes: int,
                  min_count: int = 1) -> list[list[FileEntry]]:
    """Consecutive groups of files bounded by count and bytes (a single larger file gets its own batch).

    A small job is still cut into about `min_count` batches of about equal bytes, so that every worker
    thread gets a share and no large batch is left running alone at the end: a 60-file job cut by
    file count alone had batches of 10 to 627 chunks, and the local model's pipeline ran at 0.89 of
    the model's throughput, almost all of it lost waiting for the last batches (docs/benchmarks.md, B2).
    """
    max_files = min(max_files, max(1, -(-len(files) // min_count)))
    if files:  # and at most the bytes of that many files of average size
        max_bytes = min(max_bytes, max_files * -(-sum(f.size for f in files) // len(files)))
    batches: list[list[FileEntry]] = []
    current: list[FileEntry] = []
    size = 0
    for f in files:
        if current and (len(current) >= max_files or size + f.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append((f.path, f.size, f.mtime_ns))
        size += f.size
    if current:
        batches.append(current)
    return batches


def plan_job(store: Store, settings: Settings, embedder: Embedder, job_id: str) -> list[int] | None:
    """Start a pending job: discover files, drop deleted ones, store batches of the new and changed ones.

    A file with the size and mtime the index stored for it is counted as unchanged on the job and put
    in no batch (with force_reindex every file is batched), so an unchanged re-index sends no batch.
    A job with `paths` (a watcher's) looks only at those files and directories.

    Returns the numbers of the batches still to run, or None when the job is not ours to plan
    (cancelled, or finished). A redelivered planning message re-plans idempotently.

    Raises:
        EmbedderMismatch: the repository holds vectors of another embedder and force_reindex is off.
    """
    job = store.start_job(job_id, settings.max_concurrent_indexing_jobs) or store.get_job(job_id)
    if job is None or job["status"] != "running":
        return None  # finished, cancelled, or deferred until a slot frees (the reaper re-sends it)
    if job["batches_total"] is not None:
        return store.batch_numbers(job_id)
    root = Path(job["repo_path"])
    repo = store.upsert_repository(job["project_id"], job["repo_path"], job["repo_name"])
    force = bool(job["force_reindex"])
    _check_embedder(store, repo, embedder, force)
    stamps = store.file_stamps(repo["id"])
    scope = None if job.get("paths") is None else Scope.of(job["paths"])
    if scope is not None:  # a watcher's job: the other files are neither looked at nor deleted
        stamps = {path: stamp for path, stamp in stamps.items() if scope.covers(path)}
    found = discover(root, max_file_bytes=settings.max_file_bytes, rules=settings.discovery_rules,
                     secrets=SecretPolicy.configured(settings.secret_files, settings.secret_files_allow),
                     known=None if force else stamps, scope=scope)
    changes = found.changes(stamps)
    removed = store.delete_files(repo["id"], changes.missing)
    todo, unchanged = (found.files, 0) if force else (changes.changed, changes.unchanged)
    batches = split_batches(todo, settings.batch_max_files, settings.batch_max_bytes, settings.batch_min_count)
    meta = {"skipped_by_reason": found.skipped, "files_removed": removed, "embedder": embedder.model_id}
    if not store.plan_batches(job_id, repo["id"], batches, len(found.files), unchanged, meta):
        return None
    return list(range(len(batches)))


#: A completed job that wrote at least this many chunks, and at least a tenth of the table's,
#: analyses `chunks` at once instead of leaving it to autovacuum (which may take a minute or more):
#: the ranking queries' plans rest on the planner's estimates (a repository's share of the chunks,
#: how many chunks a lexeme selects).
ANALYZE_MIN_CHUNKS = 1000


def refresh_statistics(store: Store, repository_id: str | None, chunks_created: int) -> bool:
    """After a completed job: count its chunks into the repository's lexicon (BM25's document
    frequencies; chunks deleted by the job are taken out), merge the lexeme index's pending entries
    into the index proper (the first searches after a job otherwise scan them one by one: 75 against
    23 ms a lexical search on a freshly indexed corpus), and analyse `chunks` when the job changed a
    good share of it; whether it analysed."""
    if repository_id is not None:
        store.update_lexicon(repository_id)
    if chunks_created > 0:
        store.flush_lexeme_index()
    if chunks_created < ANALYZE_MIN_CHUNKS or chunks_created < store.estimated_chunks() / 10:
        return False
    store.analyze_chunks()
    return True


def vector_index_due(store: Store, settings: Settings, embedder: Embedder) -> bool:
    """Whether this embedder's chunks have reached the size where an HNSW index pays for its inserts."""
    return not store.has_vector_index(embedder.model_id) and (
        store.count_chunks(embedder.model_id) >= settings.hnsw_min_chunks)


def _check_embedder(store: Store, repo: dict[str, object], embedder: Embedder, force: bool) -> None:
    current = repo.get("embedding_model")
    if current == embedder.model_id:
        return
    if current is not None and not force:
        raise EmbedderMismatch(
            f"this repository was indexed with embedder {current}, but {embedder.model_id} is configured: "
            "re-index with force_reindex to rebuild it, or set CODESEARCH_EMBEDDER back"
        )
    store.reset_repository(str(repo["id"]), embedder.model_id, embedder.dim)


def process_id() -> str:
    """This worker process as lease holders and heartbeats name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_owner() -> str:
    """This thread as a lease holder: host:pid:thread. The rescuer renews leases by the host:pid prefix."""
    return f"{process_id()}:{threading.get_native_id()}"


def index_batch(store: Store, settings: Settings, embedder: Embedder, job_id: str, batch_no: int,
                owner: str | None = None, should_stop: Callable[[], bool] = lambda: False) -> BatchResult:
    """Claim one batch with a lease, then read, chunk, embed and write its files, a group at a time.

    Progress is stored (and the lease renewed) with every group's write, in its transaction, so a
    batch taken over after a lost lease resumes at its first unwritten group with the earlier counts.
    Stops between groups when the job is no longer running ("cancelled"), when the lease was taken
    back ("lost"), or when `should_stop()` says the worker is shutting down: the lease is then
    released ("released") and the batch is pending for another worker. A batch someone else holds is
    left alone ("skipped"). A group's files replace their previous chunks in one transaction, so
    redoing a group leaves the same rows.
    """
    owner = owner or lease_owner()
    batch = store.claim_batch(job_id, batch_no, owner, settings.batch_lease_seconds)
    if batch is None:
        status = "cancelled" if store.job_state(job_id) != "running" else "skipped"
        return BatchResult(job_id, batch_no, status=status)
    lease = (job_id, batch_no, owner)
    with _active_lock:
        _active.add(lease)
    try:
        return _run_batch(store, settings, embedder, batch, lease, should_stop)
    finally:
        with _active_lock:
            _active.discard(lease)


def active_leases() -> list[tuple[str, int, str]]:
    """(job_id, batch_no, owner) of the batches this process is working on right now: the only leases
    the rescuer may renew. A lease whose thread gave up (its release failed while the database was
    down) must expire, or its batch would stay `running` for as long as the process lives."""
    with _active_lock:
        return sorted(_active)


def _run_batch(store: Store, settings: Settings, embedder: Embedder, batch: dict[str, Any],
               lease: tuple[str, int, str], should_stop: Callable[[], bool]) -> BatchResult:
    job_id, batch_no, owner = lease
    result = BatchResult(job_id, batch_no, files_indexed=batch["files_indexed"],
                         files_skipped=batch["files_skipped"], chunks_created=batch["chunks_created"])
    repo_id, root, force = str(batch["repository_id"]), Path(batch["repo_path"]), bool(batch["force_reindex"])
    done = int(batch["files_done"])
    entries: list[FileEntry] = [tuple(e) for e in batch["files"]][done:]
    known = {} if force else store.known_files(repo_id, [e[0] for e in entries])
    fresh: dict[str, StoredVector] = {}  # vectors computed since the last progress record
    recorded = time.monotonic()
    for group in _prepared_groups(store, settings, embedder, repo_id, root, entries, known, fresh):
        if should_stop():
            result.status = "released" if store.release_batch(job_id, batch_no, owner) else "lost"
            return result
        for entry, prepared in group:
            result.add(len(prepared[1]) if prepared else -1, entry[1])
        done += len(group)
        progress = Progress(job_id, batch_no, owner, settings.batch_lease_seconds, done, **result.totals())
        written = [prepared for _, prepared in group if prepared]
        if written:
            held = store.write_files(progress, repo_id, written, embedder.model_id, fresh)
        elif not fresh and time.monotonic() - recorded < PROGRESS_INTERVAL_S:
            continue  # unchanged files cost a stat; recording each of them would cost a round trip more
        else:
            held = store.record_progress(progress, embedder.model_id, fresh)
        if not held:
            result.status = "cancelled" if store.job_state(job_id) != "running" else "lost"
            return result
        fresh.clear()
        recorded = time.monotonic()
    if not store.finish_batch(job_id, batch_no, owner, result.totals()):
        result.status = "lost"
    return result


def _prepared_groups(store: Store, settings: Settings, embedder: Embedder, repo_id: str, root: Path,
                     entries: Sequence[FileEntry], known: dict[str, FileRow],
                     fresh: dict[str, StoredVector]) -> Iterator[list[tuple[FileEntry, Prepared | None]]]:
    """The entries in order, in groups, each with its file row and embedded chunks to write (None:
    skipped); the caller writes a group's files in one transaction before asking for the next.

    The chunks of consecutive files are embedded together, EMBED_GROUP_TEXTS or more at a time, so a
    model's sub-batches are full and of similar lengths even where files are small; a group also ends
    after GROUP_FILES files, so a run of unchanged files is recorded (and a cancel noticed) as often.
    Files are read and chunked ahead of the writes by at most one group, and each holds a reservation
    of the process's memory budget (`domain.budget`) from before it is read until it is written.
    """
    group: list[tuple[FileEntry, Chunked | None]] = []
    texts = held = 0
    try:
        for entry in entries:
            previous = known.get(entry[0])
            cost = 0 if _same_stamp(entry, previous) else budget.file_cost(entry[1])
            if not budget.files_in_flight.try_reserve(cost):
                # Never wait while holding: embed and write what this thread has in hand first.
                if group:
                    yield _embedded_group(store, embedder, group, fresh)
                budget.files_in_flight.release(held)
                group, texts, held = [], 0, 0
                budget.files_in_flight.reserve(cost)
            held += cost
            chunked = _chunked_file(store, settings, embedder, repo_id, root, entry, previous)
            if chunked is None:  # nothing of it is held
                budget.files_in_flight.release(cost)
                held -= cost
            group.append((entry, chunked))
            texts += len(chunked[1]) if chunked else 0
            if texts >= EMBED_GROUP_TEXTS or len(group) >= GROUP_FILES:
                yield _embedded_group(store, embedder, group, fresh)
                budget.files_in_flight.release(held)  # the group's files are written by now
                group, texts, held = [], 0, 0
        if group:
            yield _embedded_group(store, embedder, group, fresh)
    finally:  # also when the caller stops early (shutdown, lost lease) or a file fails
        budget.files_in_flight.release(held)


def _same_stamp(entry: FileEntry, previous: FileRow | None) -> bool:
    """Whether the index already holds this file at this size and mtime (it is skipped unread)."""
    return previous is not None and previous.size_bytes == entry[1] and previous.mtime_ns == entry[2]


def _chunked_file(store: Store, settings: Settings, embedder: Embedder, repo_id: str, root: Path,
                  entry: FileEntry, previous: FileRow | None) -> Chunked | None:
    """A file's row and chunks, or None when it is skipped (unchanged or unreadable)."""
    path, size, mtime_ns = entry
    if _same_stamp(entry, previous):
        return None
    text = read_text(root, path, max_file_bytes=settings.max_file_bytes)
    if text is None:
        log.info("skipping %s: unreadable, binary or not UTF-8", path)
        return None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    file = FileRow(path, language_for(path, text[:200].split("\n", 1)[0]), size, mtime_ns, digest)
    if previous and previous.content_hash == digest:
        store.touch_file(repo_id, file)
        return None
    return file, chunks_of(settings, file.path, text, line_token_counter(embedder), file.language)


def _embedded_group(store: Store, embedder: Embedder, group: Sequence[tuple[FileEntry, Chunked | None]],
                    fresh: dict[str, StoredVector]) -> list[tuple[FileEntry, Prepared | None]]:
    texts = [text for _, c in group if c for text in embedded_texts(c[0].path, c[1])]
    embedded = embed_cached(store, embedder, texts, fresh)
    vectors = iter(embedded)
    # Vectors in text form (Ollama's) send the group's rows in COPY's text format (see Store.write_files).
    document = lexical.document_text if any(isinstance(v, str) for v in embedded) else lexical.document

    def rows(file: FileRow, pieces: list[Chunk]) -> list[ChunkRow]:
        return [ChunkRow(p.start_line, p.end_line, p.content,
                         hashlib.sha256(p.content.encode("utf-8", "surrogatepass")).hexdigest(),
                         next(vectors), p.symbol, p.kind, document(file.path, p.symbol, p.content))
                for p in pieces]

    return [(entry, None if chunked is None else (chunked[0], rows(*chunked))) for entry, chunked in group]


#: Whether each chunk is embedded with its enclosing definitions' first lines (`embedded_texts`).
#: A change to what is embedded must re-index old repositories (a migration, as 0008 did).
CONTEXT_HEADERS = True


def embedded_texts(path: str, chunks: Sequence[Chunk]) -> list[str]:
    """What the embedder reads for each chunk of one file (not what is stored): the path, the
    qualified symbol, and the first lines of the definitions that enclose the chunk (a class header,
    the signature of the function a window lies in), then the chunk itself. A method's chunk then
    knows its class and module, and the second window of a long function its signature.

    A definition's first line is that of its first chunk (the one that starts it), found among the
    file's chunks by symbol, so this works for every language the chunker knows."""
    heads: dict[str, str] = {}
    for chunk in chunks:
        if chunk.symbol and chunk.symbol not in heads and ", " not in chunk.symbol:
            heads[chunk.symbol] = _signature(chunk.content)
    return [_embedded_text(path, chunk, heads if CONTEXT_HEADERS else {}) for chunk in chunks]


_SEPARATOR = re.compile(r"\.|::")


def _embedded_text(path: str, chunk: Chunk, heads: Mapping[str, str]) -> str:
    if not chunk.symbol:
        return f"{path}\n{chunk.content}"
    symbol = chunk.symbol.split(", ")[0]
    first = chunk.content.lstrip().split("\n", 1)[0].strip()
    # Its scopes, outermost first, whichever separator the language writes (`geo::Shape::area`).
    scopes = [symbol[:m.start()] for m in _SEPARATOR.finditer(symbol)] + [symbol]
    enclosing = [heads[name] for name in scopes if heads.get(name) and heads[name] != first]
    return "\n".join([path, chunk.symbol, *enclosing, chunk.content])


def _signature(content: str) -> str:
    """A definition's first line that is not a decorator, annotation or comment."""
    lines = [line.strip() for line in content.split("\n") if line.strip()]
    return next((line for line in lines if not is_comment(line)), lines[0] if lines else "")[:200]


def chunks_of(settings: Settings, path: str, text: str,
              count_lines: Callable[[Sequence[str]], list[int]] | None = None,
              language: str | None = None) -> list[Chunk]:
    """How indexing splits one file's text (also what `estimate` counts, with estimated token counts)."""
    limits = Limits(max_tokens=settings.chunk_max_tokens, max_lines=settings.chunk_max_lines,
                    count_lines=count_lines or estimate_line_tokens)
    return chunk_file(text, language or language_for(path, text[:200].split("\n", 1)[0]), limits,
                      window_lines=settings.chunk_max_lines, window_chars=settings.chunk_max_chars,
                      overlap=settings.chunk_overlap_lines)
def _embedded(texts: Sequence[str], embedder: Embedder) -> list[StoredVector]:
    """Vectors in a form the store writes (`StoredVector`): straight from the embedder when it can give
    one (`embed_encoded`).

    Embedded EMBED_SLICE texts at a time, so a file of thousands of chunks never holds all its
    vectors as Python floats (32 bytes each: 25 MB for 1,000 chunks of 768 dimensions; at most
    6 MB a slice)."""
    encoded = getattr(embedder, "embed_encoded", None)
    out: list[StoredVector] = []
    for start in range(0, len(texts), EMBED_SLICE):
        part = texts[start:start + EMBED_SLICE]
        out += encoded(part) if callable(encoded) else halfvecs(np.asarray(embedder.embed(part), dtype=np.float64))
    return out


def embed_cached(store: Store, embedder: Embedder, texts: Sequence[str],
                 fresh: dict[str, StoredVector]) -> list[StoredVector]:
    """One vector per text (`StoredVector`, a form the store writes), embedding only texts with no
    cached vector.

    The cache key is (model id, sha256 of the exact embedded text), so a reverted edit, a re-index with
    force_reindex or an identical chunk elsewhere in the same file costs no embedding. Vectors computed
    here are added to `fresh`, which the caller stores with its next progress record. An embedder
    cheaper than a cache round trip (`cache_vectors = False`, the hashing embedder) skips the cache.

    Raises: as `embedder.embed`.
    """
    if not getattr(embedder, "cache_vectors", True):
        return _embedded(texts, embedder)
    hashes = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
    vectors: dict[str, StoredVector] = {h: fresh[h] for h in hashes if h in fresh}
    vectors.update(store.cached_embeddings(embedder.model_id, [h for h in hashes if h not in vectors]))
    missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in vectors}.items())
    if missing:
        computed = dict(zip((h for h, _ in missing), _embedded([t for _, t in missing], embedder), strict=True))
        fresh.update(computed)
        vectors.update(computed)
    return [vectors[h] for h in hashes]
