"""Identifier-aware terms for the lexical index and its queries, shared by both sides.

Code names are found whole and in parts: `parseHttpDate` gives parsehttpdate, parse, http, date;
`snake_case_name` gives snakecasename, snake, case, name. Underscores are dropped from whole names
because PostgreSQL's text-search parser would split on them; both sides drop them alike, so an exact
identifier still matches exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

_IDENTIFIER = re.compile(r"\w+")
# Camel-case parts, matched on the shape of a piece (A upper, a other letters, 0 digits) so that
# any script works: "HTTPServer" -> HTTP, Server; "utf8Decode" -> utf, 8, Decode.
_PART = re.compile(r"A+(?!a)|A?a+|0+")
# Dropped from queries only: they say nothing about which code is meant.
STOP_WORDS = frozenset(
    "a an and are as at be by can code do does find for from function given how i in is it its me of on "
    "or show that the this to what when where which who why with".split()
)
# A lexeme longer than this is not a name anyone searches for (PostgreSQL's own limit is 2 KB).
MAX_TERM_CHARS = 64
#: Lexical search ranks about this many candidate chunks at most (the store caps it at twice this).
#: Ranking costs ~10 us a chunk (its tsvector is read and ts_rank computed): 2,000 keep lexical
#: search near 25 ms on 2 cores at any index size (docs/benchmarks.md, B4).
CANDIDATE_BUDGET = 1000


def _camel_parts(piece: str) -> list[str]:
    shape = "".join("A" if c.isupper() else "0" if c.isdigit() else "a" for c in piece)
    return [piece[m.start() : m.end()].lower() for m in _PART.finditer(shape)]


def split_identifiers(text: str) -> list[str]:
    """Lowercased identifiers of `text`, each followed by its camelCase/snake_case parts.

    "parseHttpDate(x)" -> ["parsehttpdate", "parse", "http", "date", "x"]. Tokens repeat as
    often as they occur, so callers can count them.
    """
    tokens: list[str] = []
    for identifier in _IDENTIFIER.findall(text):
        tokens.extend(_split(identifier))
    return tokens


@lru_cache(maxsize=200_000)
def _split(identifier: str) -> tuple[str, ...]:
    """One identifier's tokens; cached, since code repeats its names (half the indexing time without)."""
    whole = identifier.strip("_").lower()
    if not whole:
        return ()
    parts = [part for piece in identifier.split("_") for part in _camel_parts(piece)]
    return (whole, *parts) if len(parts) > 1 else (whole,)


def terms(text: str) -> list[str]:
    """The lexical terms of `text`, in order, repeated as they occur (for the index side)."""
    found: list[str] = []
    for identifier in _IDENTIFIER.findall(text):
        found.extend(_terms(identifier))
    return found


@lru_cache(maxsize=200_000)
def _terms(identifier: str) -> tuple[str, ...]:
    return tuple(t for t in (tok.replace("_", "") for tok in _split(identifier)) if t and len(t) <= MAX_TERM_CHARS)


def document(path: str, symbol: str | None, content: str) -> tuple[str, str, str]:
    """Space-joined terms of a chunk by weight: symbol (A), path (B), body (D)."""
    return " ".join(terms(symbol or "")), " ".join(terms(path)), " ".join(terms(content))


def query_terms(query: str) -> list[str]:
    """Distinct terms of a query, stop words removed (unless nothing else is left)."""
    found = list(dict.fromkeys(terms(query)))
    kept = [t for t in found if t not in STOP_WORDS]
    return kept or found


@dataclass(frozen=True)
class LexicalQuery:
    """How the lexical ranking runs: `match` selects the candidate chunks (a bounded number of them),
    `rank` orders them (every query term counts)."""

    match: str
    rank: str


def plan(found: Sequence[str], share: Mapping[str, float], least: float, chunks: float,
         budget: int = CANDIDATE_BUDGET) -> LexicalQuery:
    """Choose which terms select candidates so that about `budget` chunks are ranked, rarest terms first.

    `share` is the fraction of chunks holding a term, from the planner's statistics of the most
    common terms; `least` is the smallest share listed there, and an unlisted term counts as half of
    it (as PostgreSQL's own estimate does). `chunks` is the number of chunks. Rare terms
    select candidates until their estimated matches would pass the budget; the remaining common
    terms select only chunks holding all of them. When every term is common, only chunks holding all
    of them are candidates. Like IDF, this keeps words such as "get" or "file" from flooding the
    ranking; with few chunks (under `budget`) every term selects, as a plain OR would.
    """
    rows = {t: share.get(t, least / 2) * chunks for t in found}
    ordered = sorted(found, key=lambda t: (rows[t], t))
    rank = " | ".join(found)
    if len(ordered) > 1 and rows[ordered[0]] > budget:
        return LexicalQuery(" & ".join(found), rank)
    rare: list[str] = []
    spent = 0.0
    for term in ordered:
        if rare and spent + rows[term] > budget:
            break
        rare.append(term)
        spent += rows[term]
    common = [t for t in found if t not in rare]
    selectors = list(rare)
    if len(common) > 1:
        selectors.append("(" + " & ".join(common) + ")")
    return LexicalQuery(" | ".join(selectors), rank)


def identifiers(query: str) -> set[str]:
    """Names in the query that look like code (or the whole query when it is one word), lowercased
    and without underscores, so `parse_http_date` and `parseHttpDate` are the same name.

    A chunk whose symbol is one of them is the definition the user asked for.
    """
    words = _IDENTIFIER.findall(query)
    if len(words) != 1:
        words = [w for w in words if "_" in w.strip("_") or re.search(r"[a-z][A-Z]|[A-Z]{2,}[a-z]", w)]
    return {w.lower().replace("_", "") for w in words if w.strip("_")}
