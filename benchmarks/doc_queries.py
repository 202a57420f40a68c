"""Doc-comment queries over a code tree: a definition's doc comment is the query, searched in a copy of
the tree where that comment is blank.

Python files go through benchmarks/retrieval.py's `candidates` and `blanked` (public functions and
methods, docstrings of at least 8 words). JavaScript and TypeScript files: a `/** ... */` block on
lines of its own, directly followed (decorator lines aside) by a line declaring a function, a class,
a method, or `const name = function` / `(...) =>`; the query is the comment's first sentence with
its tags (`@param ...` onwards) left out, at least 3 words; the block's lines become empty lines, so
line numbers stay the same. Queries are unique among the candidates (case-insensitive), sampled with
a seed, and dropped when still found verbatim in the blanked tree.

Go, Rust and Ruby files: a run of line comments (`//` in Go, `///` in Rust, `#` in Ruby; Rust's
attribute lines such as `#[inline]` may follow it) directly followed by a line declaring a function
or method (Go `func`, Rust `fn`, Ruby `def`) or a type (Go `type`, Rust `struct`, `enum`, `trait`,
`type`, Ruby `class`, `module`); the query is the first
sentence of the comment's first paragraph, at least 3 words, without the declared name where the
comment opens with it (Go's convention, "Mount attaches another ...": the name would make the query
an exact lookup). Rust's code examples (```) come after the first paragraph, so never in a query.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.retrieval import (
    MIN_QUERY_WORDS,
    Target,
    blanked,
    candidates,
    first_sentence,
)

SCRIPT_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")
_MODIFIERS = (r"(?:(?:export|default|declare|async|abstract|public|private|protected|static|readonly|override"
              r"|get|set)\s+)*")
_DECLARATIONS = (
    re.compile(rf"^\s*{_MODIFIERS}function\s*\*?\s*(?P<name>[\w$]+)\s*[<(]"),
    re.compile(rf"^\s*{_MODIFIERS}class\s+(?P<name>[\w$]+)"),
    re.compile(rf"^\s*{_MODIFIERS}(?:const|let|var)\s+(?P<name>[\w$]+)\s*(?::[^=]+)?=\s*(?:async\s+)?"
               r"(?:function\b|\([^()]*\)\s*(?::[^=]+)?=>|[\w$]+\s*=>)"),
    # A method: indented, a name and its parameters opening a body or continuing on the next line.
    re.compile(rf"^\s+{_MODIFIERS}\*?(?P<name>[\w$]+)\s*(?:<[^>]*>)?\s*\((?:.*(?:\{{\}}?|\())?\s*$"),
)
# Words that open a statement, not a method declaration (`if (x) {`).
_KEYWORDS = frozenset({"if", "for", "while", "switch", "catch", "return", "function", "new", "await", "typeof",
                       "super", "this", "do", "else", "try", "with", "yield", "throw", "delete", "void"})
_INLINE_TAG = re.compile(r"\{@\w+\s+([^}|\s]+)[^}]*\}")


def declared_name(line: str) -> str | None:
    """The function, class or method a declaration line names; None for any other line."""
    for pattern in _DECLARATIONS:
        found = pattern.match(line)
        if found and found["name"] not in _KEYWORDS:
            return found["name"]
    return None


def comment_query(block: list[str]) -> str:
    """The first sentence of a `/** ... */` block's text, its tags left out."""
    body = "\n".join(block).strip()[3:-2]
    kept = []
    for line in body.split("\n"):
        text = re.sub(r"^\s*\*? ?", "", line)
        if text.lstrip().startswith("@"):
            break
        kept.append(_INLINE_TAG.sub(r"\1", text))
    return first_sentence("\n".join(kept))


def script_candidates(path: str, text: str) -> list[Target]:
    """The JSDoc-commented declarations of one JavaScript or TypeScript file."""
    lines = text.split("\n")
    found = []
    n = 0
    while n < len(lines):
        first = n
        n += 1
        if not lines[first].lstrip().startswith("/**"):
            continue
        last = next((k for k in range(first, len(lines)) if "*/" in lines[k]), None)
        if last is None or not lines[last].rstrip().endswith("*/") or lines[last].count("*/") != 1:
            continue
        n = last + 1
        decl = n
        while decl < len(lines) and lines[decl].lstrip().startswith("@"):
            decl += 1
        name = declared_name(lines[decl]) if decl < len(lines) else None
        query = comment_query(lines[first:last + 1])
        if name and len(query.split()) >= MIN_QUERY_WORDS:
            found.append(Target(path, name, decl + 1, (first + 1, last + 1), query))
    return found


LINE_COMMENTS = {".go": "//", ".rs": "///", ".rb": "#"}
_LINE_DECLARATIONS = {
    ".go": re.compile(r"^(?:func\s+(?:\([^)]*\)\s*)?|type\s+)(?P<name>\w+)"),
    ".rs": re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|async|unsafe|default)\s+)*"
                      r"(?:extern\s+\"\w+\"\s+)?(?:fn|struct|enum|trait|type|union)\s+(?P<name>\w+)"),
    ".rb": re.compile(r"^\s*(?:def\s+(?:self\.)?|class\s+|module\s+)(?P<name>[A-Za-z_][\w:]*[?!=]?)"),
}
# Ruby comments that are not documentation: a shebang, magic comments, RDoc's markers.
_NOT_DOC = re.compile(r"^#(?:!|\s*(?:frozen_string_literal|encoding|-\*-|:nodoc:)|--|\+\+)")


def line_comment_candidates(path: str, text: str) -> list[Target]:
    """The declarations of one Go or Rust file under a run of doc line comments."""
    suffix = Path(path).suffix
    marker, declaration = LINE_COMMENTS[suffix], _LINE_DECLARATIONS[suffix]
    lines = text.split("\n")
    found = []
    n = 0
    while n < len(lines):
        first = n
        if not _is_comment(lines[n], marker):
            n += 1
            continue
        while n < len(lines) and _is_comment(lines[n], marker):
            n += 1
        last = n - 1
        decl = n
        while suffix == ".rs" and decl < len(lines) and lines[decl].lstrip().startswith("#["):
            decl += 1
        declared = declaration.match(lines[decl]) if decl < len(lines) else None
        if declared is None:
            continue
        comment = "\n".join(_comment_text(line, marker) for line in lines[first:last + 1])
        query = _without_name(first_sentence(comment), declared["name"])
        if len(query.split()) >= MIN_QUERY_WORDS:
            found.append(Target(path, declared["name"], decl + 1, (first + 1, last + 1), query))
    return found


def _is_comment(line: str, marker: str) -> bool:
    """A doc line comment: Rust's `///` but not `////` (a plain comment), Go's `//` (not `//go:`),
    Ruby's `#` (not a magic comment or RDoc marker)."""
    text = line.lstrip()
    return (text.startswith(marker) and not text.startswith(marker + "/") and not text.startswith("//go:")
            and not (marker == "#" and _NOT_DOC.match(text)))


def _comment_text(line: str, marker: str) -> str:
    return line.lstrip()[len(marker):].removeprefix(" ")


def _without_name(query: str, name: str) -> str:
    """`query` without the declared name it opens with ("A Mux is ..." -> "is ..."), capitalised."""
    words = query.split()
    at = 1 if len(words) > 1 and words[0] in ("A", "An", "The") else 0
    if len(words) > at and words[at].strip("`[]()") == name:
        rest = words[at + 1:]
        return " ".join(rest)[:1].upper() + " ".join(rest)[1:] if rest else ""
    return query


def doc_candidates(path: str, text: str) -> list[Target]:
    """The definitions of one file whose doc comment makes a query, by the file's language."""
    if path.endswith(".py"):
        return candidates(path, text)
    if path.endswith(SCRIPT_SUFFIXES) and not path.endswith(".d.ts"):
        return script_candidates(path, text)
    if Path(path).suffix in LINE_COMMENTS:
        return line_comment_candidates(path, text)
    return []


def blank(path: str, text: str, targets: list[Target]) -> str:
    """`text` without the targets' doc comments, line numbers unchanged."""
    if path.endswith(".py"):
        return blanked(text, targets)
    lines = text.split("\n")
    for t in targets:
        first, last = t.doc_lines
        lines[first - 1:last] = [""] * (last - first + 1)
    return "\n".join(lines)


def doc_queries(texts: dict[str, str], cap: int, seed: int) -> tuple[list[Target], dict[str, str], dict[str, Any]]:
    """Up to `cap` sampled queries (sorted by place), the blanked texts, and what was dropped why."""
    pool = [t for path in sorted(texts) for t in doc_candidates(path, texts[path])]
    counts = Counter(t.query.lower() for t in pool)
    unique = [t for t in pool if counts[t.query.lower()] == 1]
    sampled = random.Random(seed).sample(unique, min(cap, len(unique)))
    by_file: dict[str, list[Target]] = {}
    for t in sampled:
        by_file.setdefault(t.path, []).append(t)
    out = {path: blank(path, text, by_file.get(path, [])) for path, text in texts.items()}
    flat = [" ".join(text.split()).lower() for text in out.values()]
    kept = [t for t in sampled if not any(" ".join(t.query.split()).lower() in f for f in flat)]
    meta = {"candidates": len(pool), "unique": len(unique), "sampled": len(sampled),
            "dropped_verbatim_elsewhere": len(sampled) - len(kept), "queries": len(kept)}
    return sorted(kept, key=lambda t: (t.path, t.def_line)), out, meta
