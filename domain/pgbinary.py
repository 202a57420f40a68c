"""PostgreSQL's binary forms: COPY rows, halfvec and tsvector values, as their receive functions read them.

Chunks are written in COPY's binary format because PostgreSQL then has no text to split and unescape,
no halfvec components to parse with strtof and no tsvector text to parse and sort: one COPY of 20,102
stdlib chunks into an empty indexed copy of `chunks` took 45 us of backend CPU a row in binary
against 65 us in text (docs/benchmarks.md, fifth session). Nothing here runs SQL.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

#: The signature, flags and header-extension length that start a binary COPY stream.
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
#: A field count of -1 ends the stream.
TRAILER = struct.pack(">h", -1)
#: A NULL field: length -1, no bytes.
NULL = struct.pack(">i", -1)
#: halfvec's largest finite component: a larger one would become infinite, which halfvec refuses.
HALF_MAX = 65504.0
LENGTH = struct.Struct(">i")
_INT8 = struct.Struct(">iq")
_HALFVEC_HEAD = struct.Struct(">hh")


def field(value: bytes) -> bytes:
    """A field: its length, then its bytes."""
    return LENGTH.pack(len(value)) + value


def text_field(value: str | None) -> bytes:
    """A text field in UTF-8 (the store's connections talk UTF8), or NULL."""
    return NULL if value is None else field(value.encode())


def bigint_field(value: int) -> bytes:
    """A bigint field: length 8, then the big-endian value."""
    return _INT8.pack(8, value)


def halfvecs(matrix: npt.NDArray[np.floating[Any]]) -> list[bytes]:
    """Each row of `matrix` in halfvec's binary form, as `halfvec_send` gives it: the dimension count
    and an unused int16, then each component as a big-endian IEEE half.

    Raises: ValueError for a component that is NaN, infinite, or too large for a half.
    """
    rows, dim = matrix.shape
    if not np.isfinite(matrix).all():
        raise ValueError("a vector has NaN or infinite components")
    if rows and dim and float(np.abs(matrix).max()) > HALF_MAX:
        raise ValueError(f"a vector has a component beyond halfvec's range (±{HALF_MAX:g})")
    head = _HALFVEC_HEAD.pack(dim, 0)
    data = matrix.astype(">f2").tobytes()
    width = 2 * dim
    return [head + data[start:start + width] for start in range(0, rows * width, width)]


def halfvec_components(payload: bytes) -> npt.NDArray[np.float32]:
    """The components of one halfvec in binary form (`halfvecs`' inverse)."""
    return np.frombuffer(payload, dtype=">f2", offset=_HALFVEC_HEAD.size).astype(np.float32)


_U16 = struct.Struct(">H")
_WEIGHT_LETTERS = ("", "C", "B", "A")  # by the top two bits of a position; D is written without one


def tsvector_text(binary: bytes) -> str:
    """A tsvector in binary form (`lexical.document`) in PostgreSQL's text form: for rows that go in
    by COPY's text format. Lexemes are quoted as `lexical.quoted` does."""
    count, offset, lexemes = LENGTH.unpack_from(binary)[0], LENGTH.size, []
    for _ in range(count):
        end = binary.index(b"\0", offset)
        quoted = "'" + binary[offset:end].decode().replace("\\", "\\\\").replace("'", "''") + "'"
        npos = _U16.unpack_from(binary, end + 1)[0]
        words = struct.unpack_from(f">{npos}H", binary, end + 1 + _U16.size)
        offset = end + 1 + _U16.size * (npos + 1)
        positions = ",".join([f"{w & 0x3FFF}{_WEIGHT_LETTERS[w >> 14]}" for w in words])
        lexemes.append(f"{quoted}:{positions}" if positions else quoted)
    if offset != len(binary):
        raise ValueError("bytes after the last lexeme of a binary tsvector")
    return " ".join(lexemes)
