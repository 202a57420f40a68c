"""Answering queries from the chunks and embeddings of one project."""

from __future__ import annotations

import time
from collections import defaultdict

from domain.embedders import Embedder
from domain.errors import EmbedderMismatch, InvalidInput
from domain.models import SearchHit, SearchResponse, parse_project_id
from domain.store import Row, Store

CONTEXT_LINES = 3
MAX_QUERY_CHARS = 2000


def search(store: Store, embedder: Embedder, query: str, project_id: str, limit: int = 10,
           file_type: str | None = None, directory: str | None = None,
           repository: str | None = None) -> SearchResponse:
    """The `limit` chunks of the project closest in meaning to `query`, best first.

    Raises:
        InvalidInput: empty or oversized query, limit outside 1..50, bad filter.
        EmbedderMismatch: the project's vectors come from another embedder.
    """
    started = time.perf_counter()
    text = _check_query(query, limit)
    project = parse_project_id(project_id)
    suffix, prefix = _suffix(file_type), _prefix(directory)
    _check_models(store, embedder, project, repository)
    vector = embedder.embed([text])[0]
    rows = store.semantic_search(project, embedder.model_id, vector, limit, suffix, prefix, repository or None)
    hits = _with_context(store, rows)
    elapsed = (time.perf_counter() - started) * 1000
    return SearchResponse(query=text, project_id=project, mode="semantic", results=hits, latency_ms=round(elapsed, 2))


def _check_query(query: str, limit: int) -> str:
    text = query.strip() if isinstance(query, str) else ""
    if not text:
        raise InvalidInput("query is empty: describe the code you are looking for, or give an identifier")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not 1 <= limit <= 50:
        raise InvalidInput(f"limit {limit} is out of range 1..50")
    return text


def _suffix(file_type: str | None) -> str | None:
    """`py`, `.py` or `*.py` → `.py`."""
    if file_type is None or not file_type.strip():
        return None
    ext = file_type.strip().lstrip("*").lstrip(".").lower()
    if not ext or "/" in ext or any(c.isspace() for c in ext):
        raise InvalidInput(f"file_type {file_type!r} is not a file extension such as 'py' or '.ts'")
    return "." + ext


def _prefix(directory: str | None) -> str | None:
    """A repository-relative directory as a path prefix ending in '/'."""
    if directory is None or not directory.strip().strip("/").strip():
        return None
    parts = [p for p in directory.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts or directory.strip().startswith("/"):
        raise InvalidInput(f"directory {directory!r} must be relative to the repository root, without '..'")
    return "/".join(parts) + "/" if parts else None


def _check_models(store: Store, embedder: Embedder, project: str, repository: str | None) -> None:
    others = [r for r in store.repository_models(project, repository) if r["embedding_model"] != embedder.model_id]
    if others:
        names = ", ".join(f"{r['name']} ({r['embedding_model']})" for r in others[:5])
        raise EmbedderMismatch(
            f"the configured embedder is {embedder.model_id}, but these repositories were indexed with another: "
            f"{names}. Set CODESEARCH_EMBEDDER to match, or re-index them with force_reindex."
        )


def _with_context(store: Store, rows: list[Row]) -> list[SearchHit]:
    spans = [(r["file_id"], max(1, r["start_line"] - CONTEXT_LINES), r["end_line"] + CONTEXT_LINES) for r in rows]
    lines: dict[int, dict[int, str]] = defaultdict(dict)
    for chunk in store.neighbour_chunks(spans):
        for offset, line in enumerate(chunk["content"].split("\n")):
            lines[chunk["file_id"]][chunk["start_line"] + offset] = line
    hits = []
    for r in rows:
        known = lines[r["file_id"]]
        before = [known[n] for n in range(r["start_line"] - CONTEXT_LINES, r["start_line"]) if n in known]
        after = [known[n] for n in range(r["end_line"] + 1, r["end_line"] + 1 + CONTEXT_LINES) if n in known]
        hits.append(SearchHit(
            file_path=r["path"], repository=r["repository"], repository_path=r["repository_path"],
            language=r["language"], symbol=r["symbol"], kind=r["kind"], start_line=r["start_line"],
            end_line=r["end_line"], score=round(float(r["score"]), 6), content=r["content"],
            context_before="\n".join(before), context_after="\n".join(after),
        ))
    return hits
