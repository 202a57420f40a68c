"""Identifier tokens of many texts hashed at once, by numpy over their bytes: the hashing embedder's input.

The tokens are `lexical.split_identifiers`'s: each lowercased identifier (outer underscores stripped),
then its camelCase/snake_case parts when it has more than one. ASCII text (nearly all code) is
tokenized here without a Python step per token: byte classes mark where identifiers and parts start
and end, and every token is hashed from prefix sums of a polynomial over its lowercased bytes. Other
text is tokenized by `split_identifiers` (Unicode case and letters) and only hashed here, with the same
function, so a token lands in the same bucket whichever way it was found.

Embedding a chunk (~600 bytes) costs ~9 us this way against ~33 us with a Python step per token
(docs/benchmarks.md, B1). Where `domain._lexemes` was built, its C scan finds and hashes the same
tokens of ASCII text (the numpy code stays the reference, and the path where it was not built).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from domain import lexical
from domain.lexical import split_identifiers

_U64 = np.uint64
_P = 0x100000001B3  # FNV's 64-bit prime: odd, so it has an inverse modulo 2**64
_P_INVERSE = pow(_P, -1, 2**64)

# Byte classes: not a word byte, underscore, upper, lower, digit.
_OTHER, _UNDERSCORE, _UPPER, _LOWER, _DIGIT = range(5)
_CLASSES = np.zeros(256, dtype=np.int8)
_CLASSES[ord("_")] = _UNDERSCORE
_CLASSES[ord("A"):ord("Z") + 1] = _UPPER
_CLASSES[ord("a"):ord("z") + 1] = _LOWER
_CLASSES[ord("0"):ord("9") + 1] = _DIGIT
_LOWERED = np.arange(256, dtype=np.uint64)
_LOWERED[ord("A"):ord("Z") + 1] += 32


class Tokens(NamedTuple):
    """Every token occurrence of a list of texts: which text it is in and its 64-bit hash."""

    text: npt.NDArray[np.intp]
    hash: npt.NDArray[np.uint64]


_NONE = Tokens(np.zeros(0, dtype=np.intp), np.zeros(0, dtype=_U64))


class _Powers:
    """P**i and P**-i modulo 2**64 for i up to the longest input yet, grown on demand and shared by
    threads: both tables are swapped in as one tuple, so a reader never sees one grown and not the other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables = (np.ones(1, dtype=_U64), np.ones(1, dtype=_U64))

    def get(self, n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        tables = self._tables
        if len(tables[0]) <= n:
            with self._lock:
                if len(self._tables[0]) <= n:
                    size = max(n + 1, 2 * len(self._tables[0]))
                    self._tables = (_cumulative(_P, size), _cumulative(_P_INVERSE, size))
                tables = self._tables
        return tables


def _cumulative(base: int, size: int) -> npt.NDArray[np.uint64]:
    """base**0 .. base**(size-1) modulo 2**64 (numpy's unsigned products wrap)."""
    powers = np.full(size, base, dtype=_U64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(powers, dtype=_U64)


_powers = _Powers()

# Bytes of text tokenized in one numpy pass: ~40 bytes of temporaries per byte, so ~2.5 MiB a thread.
WINDOW_BYTES = 64 * 1024


def tokens(texts: list[str]) -> Tokens:
    """The token occurrences of every text, in no particular order."""
    ascii_rows = [i for i, t in enumerate(texts) if t.isascii()]
    other_rows = [i for i, t in enumerate(texts) if not t.isascii()]
    if lexical.compiled():
        found = [_compiled_tokens([texts[i] for i in ascii_rows], ascii_rows)]
    else:
        found = [_ascii_tokens([texts[i] for i in window], window) for window in _windows(texts, ascii_rows)]
    if other_rows:
        found.append(_listed_tokens([split_identifiers(texts[i]) for i in other_rows], other_rows))
    return Tokens(np.concatenate([f.text for f in found]), np.concatenate([f.hash for f in found]))


def _windows(texts: list[str], rows: list[int]) -> list[list[int]]:
    """`rows` cut into consecutive runs of about WINDOW_BYTES of text (a longer text is a run alone), so
    the power tables and each call's temporaries stay the size of a window, not of a whole batch."""
    windows: list[list[int]] = [[]]
    size = 0
    for row in rows:
        if size and size + len(texts[row]) > WINDOW_BYTES:
            windows.append([])
            size = 0
        windows[-1].append(row)
        size += len(texts[row]) + 1
    return windows


def _compiled_tokens(texts: list[str], rows: list[int]) -> Tokens:
    """`_ascii_tokens` by `domain._lexemes` (no windows: it keeps no temporaries per byte)."""
    module = lexical.compiled_module()
    assert module is not None
    owners, hashes = module.token_hashes(texts)
    return Tokens(np.asarray(rows, dtype=np.intp)[np.frombuffer(owners, dtype=np.int64)],
                  np.frombuffer(hashes, dtype=_U64))


def _ascii_tokens(texts: list[str], rows: list[int]) -> Tokens:
    """Identifiers and their parts, found by byte classes (texts joined by a newline, never a word byte)."""
    data = np.frombuffer("\n".join(texts).encode("ascii"), dtype=np.uint8)
    kind = _CLASSES[data]
    upper, lower, digit = kind == _UPPER, kind == _LOWER, kind == _DIGIT
    alnum = kind >= _UPPER
    # Parts start at an alphanumeric byte after a non-alphanumeric one, at a letter/digit change, at
    # lower -> upper, and at the last upper of an upper run that a lower follows ("HTTPServer": HTTP,
    # Server); they end where the next starts or at a non-alphanumeric byte.
    starts_part = alnum.copy()
    starts_part[1:] &= (~alnum[:-1] | (digit[:-1] != digit[1:]) | (upper[1:] & lower[:-1])
                        | (upper[1:] & upper[:-1] & np.append(lower[2:], False)))
    part_starts = np.flatnonzero(starts_part)
    if not part_starts.size:
        return _NONE
    ends_part = alnum.copy()
    ends_part[:-1] &= starts_part[1:] | ~alnum[1:]
    part_ends = np.flatnonzero(ends_part) + 1
    # An identifier is a run of word bytes; its whole token runs from its first part to its last
    # (outer underscores dropped), and its parts are tokens too when there are several.
    word = kind != _OTHER
    runs = np.flatnonzero(word & np.insert(~word[:-1], 0, True))
    run = np.searchsorted(runs, part_starts, side="right") - 1
    first = np.flatnonzero(np.insert(run[1:] != run[:-1], 0, True))
    last = np.append(first[1:], len(run)) - 1
    compound = np.repeat(last > first, last - first + 1)
    starts = np.concatenate((part_starts[first], part_starts[compound]))
    ends = np.concatenate((part_ends[last], part_ends[compound]))
    text_starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    owner = np.asarray(rows, dtype=np.intp)[np.searchsorted(text_starts, starts, side="right") - 1]
    return Tokens(owner, _hashes(_LOWERED[data], starts, ends))


def hashed(found: list[str]) -> npt.NDArray[np.uint64]:
    """The hashes of tokens found elsewhere (as `tokens` hashes them)."""
    return _listed_tokens([found], [0]).hash


def _listed_tokens(token_lists: list[list[str]], rows: list[int]) -> Tokens:
    """Tokens already found (non-ASCII text), hashed alike: joined by spaces, each space-free run whole."""
    counts = [len(t) for t in token_lists]
    data = np.frombuffer(" ".join(" ".join(t) for t in token_lists if t).encode("utf-8", "surrogatepass"),
                         dtype=np.uint8)
    if not data.size:
        return _NONE
    token = data != ord(" ")
    padded = np.concatenate(([False], token, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    owner = np.repeat(np.asarray(rows, dtype=np.intp), counts)
    return Tokens(owner, _hashes(data.astype(_U64), edges[0::2], edges[1::2]))


def _hashes(data: npt.NDArray[np.uint64], starts: npt.NDArray[np.intp],
            ends: npt.NDArray[np.intp]) -> npt.NDArray[np.uint64]:
    """A well-mixed 64-bit hash of each data[start:end], from one prefix sum of data[i] * P**i."""
    up, down = _powers.get(len(data))
    with np.errstate(over="ignore"):
        prefix = np.concatenate(([_U64(0)], np.cumsum(data * up[:len(data)], dtype=_U64)))
        value = (prefix[ends] - prefix[starts]) * down[starts] + (ends - starts).astype(_U64) * _U64(0x9E3779B97F4A7C15)
        return _mixed(value)


def _mixed(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit moves every output bit (buckets and signs stay unbiased)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))
