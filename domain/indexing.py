"""Indexing work, free of Dramatiq: plan a job into file batches, and index one batch."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from domain import lexical
from domain.chunker import Chunk
from domain.chunking import Limits, chunk_file, estimate_line_tokens
from domain.discovery import DiscoveredFile, discover, language_for, read_text
from domain.embedders import Embedder, line_token_counter
from domain.errors import EmbedderMismatch
from domain.secrets import SecretPolicy
from domain.settings import Settings
from domain.store import ChunkRow, FileRow, Store

log = logging.getLogger(__name__)
FileEntry = tuple[str, int, int]  # path, size, mtime_ns: how a batch lists its files


@dataclass
class BatchResult:
    """What a batch did; travels through the pipe to the aggregator and is stored on the batch row."""

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

    def counts(self) -> dict[str, object]:
        keys = ("files_indexed", "files_skipped", "chunks_created", "error_type", "error_message")
        return {k: getattr(self, k) for k in keys}


def split_batches(files: Sequence[DiscoveredFile], max_files: int, max_bytes: int) -> list[list[FileEntry]]:
    """Consecutive groups of files bounded by count and bytes (a single larger file gets its own batch)."""
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
    """Start a pending job: discover files, drop deleted ones, store the batches.

    Returns the numbers of the batches still to run, or None when the job is not ours to plan
    (cancelled, or finished). A redelivered planning message re-plans idempotently.

    Raises:
        EmbedderMismatch: the repository holds vectors of another embedder and force_reindex is off.
    """
    job = store.start_job(job_id) or store.get_job(job_id)
    if job is None or job["status"] != "running":
        return None
    if job["batches_total"] is not None:
        return store.batch_numbers(job_id)
    root = Path(job["repo_path"])
    repo = store.upsert_repository(job["project_id"], job["repo_path"], job["repo_name"])
    _check_embedder(store, repo, embedder, bool(job["force_reindex"]))
    found = discover(root, max_file_bytes=settings.max_file_bytes,
                     secrets=SecretPolicy.configured(settings.secret_files, settings.secret_files_allow))
    removed = store.delete_missing_files(repo["id"], [f.path for f in found.files])
    batches = split_batches(found.files, settings.batch_max_files, settings.batch_max_bytes)
    meta = {"skipped_by_reason": found.skipped, "files_removed": removed, "embedder": embedder.model_id}
    if not store.plan_batches(job_id, repo["id"], batches, len(found.files), meta):
        return None
    return list(range(len(batches)))


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


def index_batch(store: Store, settings: Settings, embedder: Embedder, job_id: str, batch_no: int) -> BatchResult:
    """Read, chunk, embed and write one batch's files; stops between files once the job is not running.

    Each file's chunks replace the previous ones in one transaction, so a redelivered batch leaves the
    same rows. Files that cannot be read or decoded are skipped and counted.
    """
    result = BatchResult(job_id, batch_no)
    batch = store.claim_batch(job_id, batch_no)
    if batch is None:
        result.status = "cancelled"
        return result
    repo_id, root, force = str(batch["repository_id"]), Path(batch["repo_path"]), bool(batch["force_reindex"])
    entries: list[FileEntry] = [tuple(e) for e in batch["files"]]
    known = {} if force else store.known_files(repo_id, [e[0] for e in entries])
    for path, size, mtime_ns in entries:
        if store.job_state(job_id) != "running":
            result.status = "cancelled"
            return result
        outcome = _index_file(store, settings, embedder, job_id, repo_id, root, (path, size, mtime_ns), known.get(path))
        if outcome is None:
            result.status = "cancelled"
            return result
        if outcome < 0:
            result.files_skipped += 1
        else:
            result.files_indexed += 1
            result.chunks_created += outcome
            result.bytes_indexed += size
    store.finish_batch(job_id, batch_no, "completed", result.counts())
    return result


def _index_file(store: Store, settings: Settings, embedder: Embedder, job_id: str, repo_id: str, root: Path,
                entry: FileEntry, previous: FileRow | None) -> int | None:
    """Chunks written for one file, -1 when skipped (unchanged or unreadable), None when the job stopped."""
    path, size, mtime_ns = entry
    if previous and previous.size_bytes == size and previous.mtime_ns == mtime_ns:
        return -1
    text = read_text(root, path, max_file_bytes=settings.max_file_bytes)
    if text is None:
        log.info("skipping %s: unreadable, binary or not UTF-8", path)
        return -1
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    file = FileRow(path, language_for(path, text[:200].split("\n", 1)[0]), size, mtime_ns, digest)
    if previous and previous.content_hash == digest:
        store.touch_file(repo_id, file)
        return -1
    chunks = list(_embedded_chunks(settings, embedder, file, text))
    if not store.write_file(job_id, repo_id, file, chunks, embedder.model_id):
        return None
    return len(chunks)


def _embedded_chunks(settings: Settings, embedder: Embedder, file: FileRow, text: str) -> Iterator[ChunkRow]:
    limits = Limits(max_tokens=settings.chunk_max_tokens, max_lines=settings.chunk_max_lines,
                    count_lines=line_token_counter(embedder) or estimate_line_tokens)
    pieces = chunk_file(text, file.language, limits, window_lines=settings.chunk_max_lines,
                        window_chars=settings.chunk_max_chars, overlap=settings.chunk_overlap_lines)
    # The path (and symbol) lead each embedded text: queries often name the module or function they mean.
    vectors = embedder.embed([_embedded_text(file.path, p) for p in pieces])
    for piece, vector in zip(pieces, vectors, strict=True):
        digest = hashlib.sha256(piece.content.encode("utf-8", "surrogatepass")).hexdigest()
        yield ChunkRow(piece.start_line, piece.end_line, piece.content, digest, vector, piece.symbol, piece.kind,
                       lexical.document(file.path, piece.symbol, piece.content))


def _embedded_text(path: str, chunk: Chunk) -> str:
    return f"{path}\n{chunk.symbol}\n{chunk.content}" if chunk.symbol else f"{path}\n{chunk.content}"
