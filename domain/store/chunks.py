"""Chunk rows: their form, the COPY stream that writes them, vector encodings, the embedding cache."""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
from psycopg2.extensions import cursor as Cursor

from domain import pgbinary
from domain.store.base import Connections, StoredVector


class ChunkRow(NamedTuple):
    """A chunk ready to be written, with its embedding. A named tuple: one is made for every chunk
    written, and a frozen dataclass's __init__ cost ~3x as much (it sets each field through
    object.__setattr__)."""

    start_line: int
    end_line: int
    content: str
    content_hash: str
    #: The vector, or a stored form of it (`StoredVector`).
    embedding: Sequence[float] | StoredVector
    symbol: str | None = None
    kind: str | None = None
    #: The chunk's tsvector (`lexical.document`): symbol (A), path (B) and body terms; in binary
    #: form, or in text form (`lexical.document_text`) where the vector is text.
    lexical: bytes | str = b"\x00\x00\x00\x00"  # no lexemes


@dataclass(frozen=True)
class FileRow:
    """A file's identity and change-detection facts."""

    path: str
    language: str
    size_bytes: int
    mtime_ns: int
    content_hash: str


class ChunkQueries(Connections):
    """Reads of the embedding cache."""

    # --- embedding cache ------------------------------------------------------------------------

    def cached_embeddings(self, model: str, text_hashes: Sequence[str]) -> dict[str, bytes]:
        """Vectors already computed by `model` for these text hashes, in halfvec's binary form."""
        if not text_hashes:
            return {}
        rows = self._all(
            "SELECT text_hash, halfvec_send(embedding) AS embedding FROM embedding_cache "
            "WHERE model = %s AND text_hash = ANY(%s)",
            (model, list(text_hashes)),
        )
        return {r["text_hash"]: bytes(r["embedding"]) for r in rows}


def _cached_vectors(cur: Cursor, vectors: Mapping[str, Sequence[float] | StoredVector]) -> str:
    """A CTE (", cached AS (...)") adding `vectors` of `%(model)s` to the embedding cache while the batch
    is held, or ""."""
    if not vectors:
        return ""
    rows = b",".join(cur.mogrify("(%s, %s)", (h, encode_vector(vectors[h]))) for h in sorted(vectors)).decode()
    return f""", cached AS (
        INSERT INTO embedding_cache (model, text_hash, embedding)
        SELECT %(model)s, v.text_hash, v.embedding::halfvec
        FROM progress, (VALUES {rows.replace("%", "%%")}) AS v(text_hash, embedding)
        ORDER BY v.text_hash  -- one order: no deadlocks
        ON CONFLICT DO NOTHING)"""


#: Chunk rows go in by COPY, in its binary format where they can (`_ChunkStream`). A multi-row INSERT
#: made PostgreSQL lex and parse every row's ~5 KB of SQL literals first: ~100 us a row against ~36
#: us for inserting the same typed rows (docs/benchmarks.md, B1).
_COPY_CHUNKS = """COPY chunks (file_id, repository_id, path, language, symbol, kind, start_line, end_line, content,
                               content_hash, embedding, embedding_model, lexemes) FROM STDIN"""
_COPY_FIELDS = b"\x00\x0d"  # each row's field count in binary: the 13 columns of _COPY_CHUNKS
_LINES = struct.Struct(">iiii")  # start_line and end_line in binary: length 4 and value, each
_HASH = pgbinary.LENGTH.pack(64)  # content_hash: 64 hexadecimal digits


class _ChunkStream:
    """The chunk rows of several files as one COPY stream, produced as copy_expert reads it: a read
    returns a few rows (~8 KiB, copy_expert's default), so neither this nor libpq's output buffer ever
    holds more. Each file's first four fields are encoded once for all its chunks.

    Binary (`pgbinary`) unless some vector or tsvector is in text form (Ollama's vectors, and the
    tsvectors `indexing` builds beside them): numpy parses decimal text ~10x slower than PostgreSQL
    (~170 against ~15 us for 768 components), and a statement converting text vectors for binary
    rows cost ~150 us of the server's CPU a vector, most of it reading the array literal.
    """

    def __init__(self, ids: Mapping[str, int], repository_id: str, files: Sequence[tuple[FileRow, Sequence[ChunkRow]]],
                 model: str) -> None:
        self.binary = not any(isinstance(c.embedding, str) or isinstance(c.lexical, str)
                              for _, chunks in files for c in chunks)
        # Every vector in the stream's form before COPY starts: a ValueError raised inside a read
        # would reach the caller as psycopg2's QueryCanceled, a transient error, and be retried.
        self._vectors = iter([_binary_vector(c.embedding) if self.binary else encode_vector(c.embedding)
                              for _, chunks in files for c in chunks])
        self._rows = self._chunks(ids, repository_id, files)
        self._model = pgbinary.text_field(model) if self.binary else _copy_field(model).encode()
        self._started = self._ended = False

    @property
    def statement(self) -> str:
        return _COPY_CHUNKS + (" (FORMAT binary)" if self.binary else "")

    def _chunks(self, ids: Mapping[str, int], repository_id: str,
                files: Sequence[tuple[FileRow, Sequence[ChunkRow]]]) -> Iterator[tuple[bytes, ChunkRow]]:
        repository = pgbinary.field(uuid.UUID(repository_id).bytes)
        for file, chunks in files:
            if self.binary:
                fixed = (_COPY_FIELDS + pgbinary.bigint_field(ids[file.path]) + repository
                         + pgbinary.text_field(file.path) + pgbinary.text_field(file.language))
            else:
                fixed = f"{ids[file.path]}\t{repository_id}\t{_copy_field(file.path)}\t{_copy_field(file.language)}".encode()
            for chunk in chunks:
                yield fixed, chunk

    def read(self, size: int = 8192) -> bytes:
        parts: list[bytes] = []
        if not self._started and self.binary:
            parts.append(pgbinary.HEADER)
        self._started, length = True, 0
        row = self._binary_row if self.binary else self._text_row
        for fixed, chunk in self._rows:
            parts.append(row(fixed, chunk))
            length += len(parts[-1])
            if length >= size:
                return b"".join(parts)
        if not self._ended and self.binary:
            parts.append(pgbinary.TRAILER)
        self._ended = True
        return b"".join(parts)

    def _binary_row(self, fixed: bytes, c: ChunkRow) -> bytes:
        content, vector, lexemes = c.content.encode(), cast(bytes, next(self._vectors)), cast(bytes, c.lexical)
        length_of = pgbinary.LENGTH.pack
        return b"".join((fixed, pgbinary.text_field(c.symbol), pgbinary.text_field(c.kind),
                         _LINES.pack(4, c.start_line, 4, c.end_line), length_of(len(content)), content,
                         _HASH, c.content_hash.encode(), length_of(len(vector)), vector, self._model,
                         length_of(len(lexemes)), lexemes))

    def _text_row(self, fixed: bytes, c: ChunkRow) -> bytes:
        lexemes = c.lexical if isinstance(c.lexical, str) else pgbinary.tsvector_text(c.lexical)
        return (fixed + f"\t{_copy_field(c.symbol)}\t{_copy_field(c.kind)}\t{c.start_line}\t{c.end_line}\t"
                f"{_copy_field(c.content)}\t{c.content_hash}\t{next(self._vectors)!s}\t".encode()
                + self._model + f"\t{lexemes}\n".encode())


def _binary_vector(vector: Sequence[float] | StoredVector) -> bytes:
    """A vector that is not text in halfvec's binary form. Raises: ValueError as `pgbinary.halfvecs`."""
    if isinstance(vector, bytes):
        return vector
    return pgbinary.halfvecs(np.asarray(vector, dtype=np.float64).reshape(1, -1))[0]


def _copy_field(value: str | None) -> str:
    """A text value in COPY's text format: \\N for NULL; backslash, tab, newline and CR escaped."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def encode_vector(values: Sequence[float] | StoredVector) -> str:
    """A vector in pgvector's text form, for a statement's parameter; a text form passes through, a
    binary one (`pgbinary.halfvecs`) is decoded.

    Raises: ValueError for a vector with NaN or infinite components.
    """
    if isinstance(values, str):
        return values
    if isinstance(values, bytes):
        return encode_vectors(pgbinary.halfvec_components(values).reshape(1, -1))[0]
    return encode_vectors(np.asarray(values, dtype=np.float64).reshape(1, -1))[0]


#: Components are laid out through a table of every integer of 1e-5 in [-1, 1] (1.6 MB, built on
#: first use); vectors with larger components take the slow path.
_TABLE_LIMIT = 100_000
_FIELD = np.dtype([("number", "S8"), ("tail", "S3")])


@functools.cache
def _number_table() -> npt.NDArray[np.bytes_]:
    """"-012345e" for -12345, "0012345e" for 12345: eight bytes for each integer of the table."""
    values = np.arange(-_TABLE_LIMIT, _TABLE_LIMIT + 1)
    magnitude = np.abs(values)
    table = np.empty((values.size, 8), dtype=np.uint8)
    table[:, 0] = np.where(values < 0, ord("-"), ord("0"))
    for place in range(6, 0, -1):
        table[:, place] = magnitude % 10 + ord("0")
        magnitude //= 10
    table[:, 7] = ord("e")
    return table.view("S8").ravel()


def encode_vectors(matrix: npt.NDArray[np.floating[Any]]) -> list[str]:
    """Each row of `matrix` in pgvector's text form, components as integers of 1e-5 ("0012345e-5" is
    0.12345): five decimals exceed halfvec's precision for unit-vector components.

    Fixed-width fields are gathered by numpy for the whole matrix at once instead of formatting each
    number: ~2 us a 256-d row instead of ~30 us, while PostgreSQL parses the longer text within ~2 us a
    row of the shorter (docs/benchmarks.md). Indexing encodes each new vector once, for its chunk and
    the embedding cache alike.

    Raises: ValueError for a vector with NaN or infinite components.
    """
    rows, dim = matrix.shape
    if not np.isfinite(matrix).all():
        raise ValueError("a vector has NaN or infinite components")
    if not rows or not dim:
        return ["[]"] * rows
    ints = np.rint(matrix * 1e5).astype(np.int64)
    if np.abs(ints).max() > _TABLE_LIMIT:
        return ["[" + "e-5,".join(map(str, row)) + "e-5]" for row in ints.tolist()]
    fields = np.empty((rows, dim), dtype=_FIELD)
    fields["number"] = _number_table()[ints + _TABLE_LIMIT]
    fields["tail"] = b"-5,"
    fields["tail"][:, -1] = b"-5]"
    text = fields.tobytes().decode("ascii")
    width = dim * _FIELD.itemsize
    return ["[" + text[start:start + width] for start in range(0, rows * width, width)]
