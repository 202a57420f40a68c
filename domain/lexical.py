"""Identifier-aware terms for the lexical index and its queries, shared by both sides.

Code names are found whole and in parts: `parseHttpDate` gives parsehttpdate, parse, http, date;
`snake_case_name` gives snakecasename, snake, case, name. Underscores are dropped from whole names
because PostgreSQL's text-search parser would split on them; both sides drop them alike, so an exact
identifier still matches exactly.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from types import ModuleType

#: The `domain._lexemes` this code calls; a module built from another version of _lexemes.c (an
#: editable install not rebuilt since a pull) is not used, and `codesearch doctor` says so.
LEXEMES_API = 2
try:  # lexical.document and the hashing embedder's tokens in C (domain/_lexemes.c), where it was built: see `document`
    from domain import _lexemes
except ImportError:  # pragma: no cover - a machine without a C compiler
    _lexemes = None  # type: ignore[assignment]


def _usable(module: object) -> bool:
    """Whether a built `_lexemes` module takes the arguments this code passes."""
    return getattr(module, "API_VERSION", None) == LEXEMES_API


if not _usable(_lexemes):
    _lexemes = None  # type: ignore[assignment]

_IDENTIFIER = re.compile(r"\w+")
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ASCII_BLANKS = bytes(b if b in _WORD_BYTES else 32 for b in range(256))
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
#: Positions kept per lexeme of a chunk, as PostgreSQL's `to_tsvector` keeps (its MAXNUMPOS - 1).
MAX_POSITIONS = 255
#: Identifiers whose tokens and terms are cached. The caches must not grow with the corpus (a
#: worker's memory would): the stdlib's 78,000 identifiers held 43 MB at the earlier 200,000, and
#: 16,384 entries made indexing ~2% slower than that (docs/benchmarks.md, B5).
IDENTIFIER_CACHE = 16_384
#: Lexical search ranks about this many candidate chunks at most (the store caps it at twice this).
#: Ranking costs ~10 us a chunk (its tsvector is read and ts_rank computed): 2,000 keep lexical
#: search near 25 ms on 2 cores at any index size (docs/benchmarks.md, B4).
CANDIDATE_BUDGET = 500


# The same parts matched on an ASCII piece itself (no underscores: pieces are split on them), where
# "other letters" are the lowercase ones: no shape string to build, ~4x faster on identifiers the
# caches miss (tests/unit/test_lexical.py checks it against the shape on every ASCII piece).
_ASCII_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _camel_parts(piece: str) -> list[str]:
    if piece.isascii():
        return [part.lower() for part in _ASCII_PART.findall(piece)]
    return _shaped_parts(piece)


def _shaped_parts(piece: str) -> list[str]:
    shape = "".join("A" if c.isupper() else "0" if c.isdigit() else "a" for c in piece)
    return [piece[m.start() : m.end()].lower() for m in _PART.finditer(shape)]


def split_identifiers(text: str) -> list[str]:
    """Lowercased identifiers of `text`, each followed by its camelCase/snake_case parts.

    "parseHttpDate(x)" -> ["parsehttpdate", "parse", "http", "date", "x"]. Tokens repeat as
    often as they occur, so callers can count them.
    """
    return list(chain.from_iterable(map(_split, _identifiers(text))))


def _identifiers(text: str) -> list[str]:
    """The \\w+ runs of `text`. ASCII text (nearly all code) is split by a byte translation that
    blanks every non-word byte, 2.6x faster than the regular expression, with the same result."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_BLANKS).decode("ascii").split()
    found: list[str] = _IDENTIFIER.findall(text)
    return found


@lru_cache(maxsize=IDENTIFIER_CACHE)
def _split(identifier: str) -> tuple[str, ...]:
    """One identifier's tokens; cached, since code repeats its names (half the indexing time without)."""
    whole = identifier.strip("_").lower()
    if not whole:
        return ()
    parts = [part for piece in identifier.split("_") for part in _camel_parts(piece)]
    return (whole, *parts) if len(parts) > 1 else (whole,)


def terms(text: str) -> list[str]:
    """The lexical terms of `text`, in order, repeated as they occur (for the index side)."""
    return list(chain.from_iterable(map(_terms, _identifiers(text))))


@lru_cache(maxsize=IDENTIFIER_CACHE)
def _terms(identifier: str) -> tuple[str, ...]:
    return tuple(t for t in (tok.replace("_", "") for tok in _split(identifier)) if t and len(t) <= MAX_TERM_CHARS)


def compiled() -> bool:
    """Whether `domain._lexemes` (C) was built and builds the documents of ASCII text."""
    return _lexemes is not None


def compiled_module() -> ModuleType | None:
    """`domain._lexemes` where it was built from this version of its source, else None (the callers'
    Python or numpy code does the work)."""
    return _lexemes


def document(path: str, symbol: str | None, content: str) -> bytes:
    """A chunk's tsvector in PostgreSQL's binary form (what `tsvector_send` gives and COPY's binary
    format reads), its terms weighted by where they occur: symbol (A), path (B), body (D).

    Built here rather than by `to_tsvector` in the database, which cost ~50 us a chunk more there
    than this costs here, and whose parser could split a term differently from how the query side
    quotes it. ts_rank of an OR of terms (the only ranking search does, `plan`'s `rank`) reads each
    lexeme's weights in position order and the count of positions, not the positions themselves: a
    lexeme gets positions 1..n, its symbol occurrences first, then path, then body, which is the weight
    sequence and count that `setweight(to_tsvector(symbol), 'A') || setweight(to_tsvector(path), 'B')
    || to_tsvector(body)` gives (tests/integration/test_lexemes.py). Ranking an AND or a phrase, or
    ts_rank_cd, would need the real positions.

    The form: the lexeme count (int32), then each lexeme as UTF-8 ending in a NUL byte, its position
    count (uint16) and its positions (uint16, the weight in the top two bits). Lexemes need not be
    sorted: PostgreSQL sorts them as it receives them.

    ASCII content (nearly all code) is done by `domain._lexemes` where it was built: the same bytes
    at 11.8 us a chunk against 43.4 here (tests/unit/test_compiled_lexemes.py compares the two).
    """
    if _lexemes is not None and content.isascii():
        return _lexemes.document(content, _fixed_terms(symbol or ""), _fixed_terms(path), False)
    body = Counter(terms(content))
    named, located = _fixed_terms(symbol or ""), _fixed_terms(path)
    fixed = {**named, **located}
    parts = [t.encode() + _positions(named.get(t, 0), located.get(t, 0), body.pop(t, 0)) for t in fixed]
    count = _COUNT.pack(len(fixed) + len(body))
    # Most body terms occur once: those are joined and encoded in one call (the NUL and the two
    # uint16 of one position 1 of weight D are ASCII bytes, so they can be joined as text).
    once = [t for t, n in body.items() if n == 1]
    if once:
        parts.append((_ONCE.join(once) + _ONCE).encode())
    parts += [t.encode() + _positions(0, 0, n) for t, n in body.items() if n > 1]
    return count + b"".join(parts)


def document_text(path: str, symbol: str | None, content: str) -> str:
    """`document` in PostgreSQL's text form, for rows that go in by COPY's text format (those whose
    vectors are in text form): ~20 us a chunk (8.7 for ASCII content in `domain._lexemes`), where
    decoding the binary form took ~64. It counts terms as `document` does; a helper shared by both
    (returning the counts as tuples) made `document`, the hot path, ~2 us a chunk slower (44.2
    against 46.4 us, alternating runs)."""
    if _lexemes is not None and content.isascii():
        return _lexemes.document(content, _fixed_terms(symbol or ""), _fixed_terms(path), True)
    body = Counter(terms(content))
    named, located = _fixed_terms(symbol or ""), _fixed_terms(path)
    parts = [f"'{t}':{_text_positions(named.get(t, 0), located.get(t, 0), body.pop(t, 0))}" for t in {**named, **located}]
    # Most body terms occur once: those are joined in one call (terms are \w+, never quotes).
    once = [t for t, n in body.items() if n == 1]
    if once:
        parts.append("'" + "':1 '".join(once) + "':1")
    parts += [f"'{t}':{_text_positions(0, 0, n)}" for t, n in body.items() if n > 1]
    return " ".join(parts)


_COUNT = struct.Struct(">i")
# After a term that occurs once in the body alone: its NUL, one position, position 1 of weight D.
_ONCE = "\x00\x00\x01\x00\x01"
_WEIGHTS = {"A": 3, "B": 2, "D": 0}


@lru_cache(maxsize=4096)
def _fixed_terms(text: str) -> Mapping[str, int]:
    """Terms of a path or symbol and their counts, in order of first occurrence (every chunk of a file
    repeats its path; a symbol is mostly new, and its terms in C took ~1 us a chunk against ~5)."""
    if _lexemes is not None and text.isascii():
        return _lexemes.counted_terms(text)
    return Counter(terms(text))


@lru_cache(maxsize=4096)
def _positions(symbol: int, path: int, body: int) -> bytes:
    """The NUL ending a lexeme, then positions 1..n weighted A for the symbol's occurrences, B for the
    path's, then D for the body's; at most MAX_POSITIONS of them, as `to_tsvector` keeps."""
    weights = (["A"] * symbol + ["B"] * path + ["D"] * body)[:MAX_POSITIONS]
    words = [_WEIGHTS[w] << 14 | n for n, w in enumerate(weights, 1)]
    return b"\x00" + struct.pack(f">H{len(words)}H", len(words), *words)


@lru_cache(maxsize=4096)
def _text_positions(symbol: int, path: int, body: int) -> str:
    """`_positions` in the text form: "1A,2B,3" (D is written without its letter)."""
    weights = (["A"] * symbol + ["B"] * path + [""] * body)[:MAX_POSITIONS]
    return ",".join([f"{n}{w}" for n, w in enumerate(weights, 1)])


def quoted(term: str) -> str:
    """A term as a quoted lexeme of PostgreSQL's tsvector and tsquery text forms, taken as it is (no
    parser, no dictionary), as `document` stores it."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def query_terms(query: str) -> list[str]:
    """Distinct terms of a query, stop words removed (unless nothing else is left)."""
    found = list(dict.fromkeys(terms(query)))
    kept = [t for t in found if t not in STOP_WORDS]
    return kept or found


#: BM25's term-frequency saturation and length normalisation (the textbook values).
BM25_K1 = 1.2
BM25_B = 0.75
#: BM25F: an occurrence in the symbol (A), the path (B) and the body (D) counts this many times.
FIELD_WEIGHTS = (3.0, 1.0, 1.0)
#: BM25's average chunk length (distinct lexemes) when the store has none to sample.
TYPICAL_LEXEMES = 50.0
#: Query words of natural language (of MIN_WORD letters or more) also match their other forms
#: ("parsed" -> parse, parser, parsing, ...) when their root keeps MIN_STEM letters: the index holds
#: words as written.
MIN_WORD = 4
MIN_STEM = 3
#: Endings stripped from a query word to find its root (longest first), and endings put back on the
#: root to spell the forms looked up. Explicit forms rather than a prefix query: a prefix also matched
#: whole identifiers ("parsehttpdate"), and counting its chunks read every lexeme it starts (111 ms
#: for "parse an http date header" at 321k chunks).
_ENDINGS = ("ations", "ation", "ments", "ment", "ings", "ing", "ions", "ion", "ers", "ors", "ies", "ied",
            "ates", "ated", "ate", "ity", "able", "es", "ed", "er", "or", "ly", "al", "s", "e", "y")
_FORMS = ("", "s", "e", "es", "ed", "ing", "er", "ers", "or", "ors", "ion", "ions", "ation", "ations", "ate",
          "ates", "ated", "ator", "ment", "y", "ies")


@dataclass(frozen=True)
class QueryTerm:
    """A term of the lexical ranking: a query word (`key`), the lexemes that count as it (the word
    itself, or its forms), and its IDF."""

    key: str
    lexemes: tuple[str, ...]
    idf: float


def forms(word: str) -> tuple[str, ...]:
    """The lexemes a query word matches: itself, and for a word of natural language (lowercase
    letters) the forms of its root ("validated" -> validate, validation, validator, ...)."""
    if not word.isalpha() or not word.islower() or len(word) < MIN_WORD:
        return (word,)
    root = next((word[: -len(e)] for e in _ENDINGS if word.endswith(e) and len(word) - len(e) >= MIN_STEM), word)
    roots = [root] + ([root[:-1]] if len(root) > MIN_WORD and root[-1] == root[-2] else [])  # wrapp -> wrap
    found = dict.fromkeys([word] + [r + f for r in roots for f in _FORMS])
    for r in roots:  # a doubled final consonant before an ending: wrap -> wrapped, wrapping, wrapper
        if r[-1] not in "aeiouy" and r[-2] in "aeiou":
            found.update(dict.fromkeys(r + r[-1] + f for f in ("ed", "ing", "er")))
    return tuple(t for t in found if len(t) <= MAX_TERM_CHARS)


def query_words(query: str, stemming: bool = True) -> list[tuple[str, tuple[str, ...]]]:
    """The query's terms for BM25 (`query_terms`), each with the lexemes that count as it (`forms`
    where `stemming`, else the term alone)."""
    return [(term, forms(term) if stemming else (term,)) for term in query_terms(query)]


#: How many chunks of code at large (the lexicon prior, `prior_counts`) join each project's own counts
#: when IDF is computed: a word common in code in general ("value", "error", "self") then weighs little
#: in a project of 150 chunks too, where its own count says little; a project of far more chunks
#: outweighs them. On the dev questions of benchmarks/corpora.py, lexical file MRR@10 .721 -> .769 and
#: symbol MRR@10 .644 -> .717, hybrid .836 -> .844 and .731 -> .744; 500 and 2,000 gave about the same,
#: 250 and 16,000 less (docs/benchmarks.md, twelfth session).
PRIOR_CHUNKS = 1000.0
PRIOR_FILE = Path(__file__).resolve().parent / "data" / "lexicon_prior.tsv.gz"


def prior_counts() -> Iterator[tuple[str, int]]:
    """The lexicon prior of PRIOR_FILE (built by benchmarks/lexicon_prior.py): the empty lexeme with the
    chunk count of its sources, then each lexeme with the chunks holding it. Loaded into PostgreSQL by
    migration 0011 (`Store.term_statistics` reads it there)."""
    with gzip.open(PRIOR_FILE, "rt", encoding="utf-8") as f:
        for line in f:
            lexeme, chunks = line.rstrip("\n").split("\t")
            yield lexeme, int(chunks)


def idf(df: float, chunks: float) -> float:
    """BM25's inverse document frequency (the Lucene form, never negative)."""
    return math.log(1 + (chunks - df + 0.5) / (df + 0.5))


def weighted(words: Sequence[tuple[str, tuple[str, ...]]], df: Mapping[str, float], chunks: float,
             prior: Mapping[str, float] | None = None, prior_chunks: float = 0.0) -> list[QueryTerm]:
    """The query words with their IDF, from the document frequencies `df` of lexemes among `chunks`
    chunks, blended with the lexicon prior (`prior` chunks of `prior_chunks` holding each lexeme), which
    counts as PRIOR_CHUNKS chunks more; a word of several forms counts the chunks of all of them (an
    overestimate of their union)."""
    counts = [min(sum(df.get(t, 0.0) for t in lexemes), max(chunks, 1.0)) for _, lexemes in words]
    if prior and prior_chunks > 0:
        shares = [min(1.0, sum(prior.get(t, 0.0) for t in lexemes) / prior_chunks) for _, lexemes in words]
        counts = [n + PRIOR_CHUNKS * share for n, share in zip(counts, shares, strict=True)]
        chunks += PRIOR_CHUNKS
    total = max([chunks, 1.0, *counts])
    return [QueryTerm(key, lexemes, idf(n, total)) for (key, lexemes), n in zip(words, counts, strict=True)]


def tsquery_any(lexemes: Sequence[str]) -> str:
    """tsquery text matching any of `lexemes`."""
    return quoted(lexemes[0]) if len(lexemes) == 1 else "(" + " | ".join(map(quoted, lexemes)) + ")"


@dataclass(frozen=True)
class LexicalQuery:
    """How the lexical ranking runs, as tsquery text of quoted terms: `match` selects the candidate
    chunks (a bounded number of them), `rank` orders them (every query term counts)."""

    match: str
    rank: str


def plan(found: Sequence[str], share: Mapping[str, float], least: float, chunks: float,
         budget: int = CANDIDATE_BUDGET, spelled: Mapping[str, str] | None = None) -> LexicalQuery:
    """Choose which terms select candidates so that about `budget` chunks are ranked, rarest terms first.

    `share` is the fraction of chunks holding a term, from the planner's statistics of the most
    common terms; `least` is the smallest share listed there, and an unlisted term counts as half of
    it (as PostgreSQL's own estimate does). `chunks` is the number of chunks. Rare terms
    select candidates until their estimated matches would pass the budget; the remaining common
    terms select only chunks holding all of them. When every term is common, only chunks holding all
    of them are candidates. Like IDF, this keeps words such as "get" or "file" from flooding the
    ranking; with few chunks (under `budget`) every term selects, as a plain OR would. `spelled`
    gives a term's tsquery text where it is not the quoted term itself (a word and its forms); common
    terms select together by the word itself: its forms' long posting lists made "open a file and
    read lines" cost 41 ms at 321k chunks.
    """
    def quote(term: str) -> str:
        return spelled[term] if spelled and term in spelled else quoted(term)

    rows = {t: share.get(t, least / 2) * chunks for t in found}
    ordered = sorted(found, key=lambda t: (rows[t], t))
    rank = " | ".join(map(quote, found))
    if len(ordered) > 1 and rows[ordered[0]] > budget:
        return LexicalQuery(" & ".join(map(quoted, found)), rank)
    rare: list[str] = []
    spent = 0.0
    for term in ordered:
        if rare and spent + rows[term] > budget:
            break
        rare.append(term)
        spent += rows[term]
    common = [t for t in found if t not in rare]
    selectors = [quote(t) for t in rare]
    if len(common) > 1:
        selectors.append("(" + " & ".join(map(quoted, common)) + ")")
    return LexicalQuery(" | ".join(selectors), rank)


def whole_words(query: str) -> frozenset[str]:
    """The query's words as written (\\w+ runs), lowercased and without underscores, none split:
    "getContentType of AxiosHeaders" -> {getcontenttype, of, axiosheaders}."""
    return frozenset(w.lower().replace("_", "") for w in _IDENTIFIER.findall(query) if w.strip("_"))


# A qualified name as code writes it: `Console.print`, `Itertools::interleave`, `os.path.join`; not a
# number (1.5), a file name (config.json) or a host (example.com).
_QUALIFIED = re.compile(r"(?<![\w.:/@-])[A-Za-z_]\w*(?:(?:::|\.)[A-Za-z_]\w*)+(?![\w/@-])")
_NOT_MEMBERS = frozenset("c cc cfg com cpp cs css csv db go h html ini io java js json jsx log md mjs net org "
                         "php py pyi rb rs sh sql toml ts tsx txt xml yaml yml".split())


def identifiers(query: str) -> set[str]:
    """Names in the query that look like code (or the whole query when it is one word), lowercased
    and without underscores, so `parse_http_date` and `parseHttpDate` are the same name.

    A chunk whose symbol is one of them is the definition the user asked for.
    """
    words = _IDENTIFIER.findall(query)
    if len(words) != 1:
        words = [w for w in words if "_" in w.strip("_") or re.search(r"[a-z][A-Z]|[A-Z]{2,}[a-z]", w)]
    return {w.lower().replace("_", "") for w in words if w.strip("_")}


def qualified_names(query: str) -> set[tuple[str, str]]:
    """The qualified names in the query as (qualifier, member), lowercased, without underscores and
    "::" written ".": `Console.print` -> (console, print), `Itertools::interleave` -> (itertools,
    interleave), `os.path.join` -> (os.path, join). Their parts need not look like code: the dot or
    the colons say they are."""
    found = set()
    for name in _QUALIFIED.findall(query):
        qualifier, _, member = name.lower().replace("_", "").replace("::", ".").rpartition(".")
        if len(member) > 1 and member not in _NOT_MEMBERS and qualifier.strip("."):
            found.add((qualifier, member))
    return found
