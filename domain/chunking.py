"""Chunking a file: by its structure (tree-sitter definitions, sections of prose and config), else line windows.

A file becomes a list of *units* — non-overlapping line ranges that together cover every non-blank
line — and units become chunks:

- a definition that fits the size cap is one unit, named by its qualified symbol;
- a larger one that holds definitions (a class, an impl, a namespace) becomes its header (signature,
  docstring, fields) plus its members, each recursively; code between members stays with the header's
  symbol, so nothing is dropped and no text is indexed twice;
- a larger one without members (a long function) is cut at statement boundaries;
- code between definitions is a unit of its own (`kind` "code");
- small neighbours are then merged while they stay under half the cap.

Anything still over the cap is cut into windows of whole lines. Sizes are the embedder's tokens, counted
once per line (or estimated), with a line cap as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from domain import outline, syntax
from domain.chunker import Chunk, chunk_lines

log = logging.getLogger(__name__)

#: Python's structure from its logical lines (domain/outline.py) rather than tree-sitter's parse, where
#: the outline's C scanner was built: 99.7% of the standard library's chunks are the same either way
#: (tests/unit/test_outline.py), at ~24 us a chunk for chunking against ~57 (docs/benchmarks.md, B1).
OUTLINED = outline.compiled()

#: Characters per token assumed when turning a token cap into the character cap of line windows.
CHARS_PER_TOKEN = 3


def estimate_line_tokens(lines: Sequence[str]) -> list[int]:
    """Roughly how many word pieces a BERT-style tokenizer makes of each line: one per 3 characters."""
    return [len(text) // CHARS_PER_TOKEN + 1 if (text := line.strip()) else 0 for line in lines]


def estimate_tokens(text: str) -> int:
    """`estimate_line_tokens` summed over the lines of `text`."""
    return sum(estimate_line_tokens(text.split("\n")))


@dataclass(frozen=True)
class Limits:
    """The size cap of a chunk: tokens (as `count_lines` counts them, line by line), and lines.

    Tokens are counted once per line and summed, so a file is tokenized once however it is cut.
    """

    max_tokens: int = 256
    max_lines: int = 80
    count_lines: Callable[[Sequence[str]], list[int]] = estimate_line_tokens

    @property
    def merge_tokens(self) -> int:
        return self.max_tokens // 2


@dataclass
class _Unit:
    start: int  # 0-based row, inclusive
    end: int  # 0-based row, inclusive
    symbols: list[str]
    kind: str
    definition: bool  # a definition's own text, not code around it
    tokens: int
    head: bool = False  # the first window of a definition cut in several: nothing is merged into it


#: Cheap structure for text without a grammar: the line patterns that start a new section.
SECTION_STARTS: dict[str, re.Pattern[str]] = {
    "markdown": re.compile(r"^#{1,6}\s+\S"),
    "toml": re.compile(r"^\[\[?[^\]]+\]\]?\s*$"),
    "yaml": re.compile(r"^[A-Za-z_\"'][^:#]*:(\s|$)"),
    "sql": re.compile(r"^(create|alter|insert|select|update|delete|with|drop|grant|begin|comment)\b", re.I),
    "dockerfile": re.compile(r"^FROM\s", re.I),
    "makefile": re.compile(r"^[A-Za-z0-9_.%/$(){}-]+\s*:(?!=)"),
}


def structured_chunks(lines: Sequence[str], language: str, limits: Limits) -> list[Chunk] | None:
    """Chunks of a file by its structure, or None when its language has none we know."""
    if language in syntax.GRAMMARS:
        units = _Builder(lines, language, limits).build()
    elif language in SECTION_STARTS:
        units = _sections(lines, language, limits)
    else:
        return None
    return [Chunk(u.start + 1, u.end + 1, "\n".join(lines[u.start:u.end + 1]),
                  ", ".join(dict.fromkeys(u.symbols)) or None, u.kind) for u in units]


class _Builder:
    def __init__(self, lines: Sequence[str], language: str, limits: Limits) -> None:
        self.lines, self.limits = lines, limits
        self.sizes = _prefix_sums(limits.count_lines(lines))
        self.spec = syntax.SPECS[language]
        self.source = "\n".join(lines).encode("utf-8", "surrogatepass")
        if language == "python" and OUTLINED:
            self.root: Any = outline.tree(self.source)
        else:
            parser = syntax.parser_for(language)
            assert parser is not None
            self.root = parser.parse(self.source).root_node
        self.holders = self.spec.may_hold()
        self.paths = syntax.definition_paths(language, self.root) if self.holders is None else None

    def build(self) -> list[_Unit]:
        return self._container(self.root, 0, len(self.lines) - 1, None, "code")

    # -- definitions and what lies between them -------------------------------------------------

    def _container(self, node: Any, lo: int, hi: int, scope: str | None, scope_kind: str,
                   header: str | None = None) -> list[_Unit]:
        """The units of `node`'s lines lo..hi: its member definitions, qualified by `scope`, and the code
        between them, named `header` (the enclosing definition's name; `scope` when not given)."""
        units: list[_Unit] = []
        named = header or scope
        cursor = lo
        for outer, (kind, name, inner) in self._members(node):
            start, end = outer.start_point.row, _end_row(outer)
            if start < cursor or end > hi:  # shares a line with what came before: stay with it
                if units:
                    units[-1].end = max(units[-1].end, min(end, hi))
                cursor = max(cursor, min(end, hi) + 1)
                continue
            start = self._leading_comments(start, cursor)
            units += self._gap(cursor, start - 1, named, scope_kind)
            if kind == "function" and syntax.is_classy(scope_kind):
                kind = "method"
            qualified = f"{scope}{self.spec.separator}{name}" if scope else name
            units += self._definition(inner, start, end, qualified, kind)
            cursor = end + 1
        units += self._gap(cursor, hi, named, scope_kind)
        return self._merge(units)

    def _members(self, node: Any) -> list[tuple[Any, tuple[str, str, Any]]]:
        """Definitions below `node` that are not inside another definition, in order."""
        found: list[tuple[Any, tuple[str, str, Any]]] = []
        stack = self._below(node)
        while stack:
            child = stack.pop()
            info = syntax.definition(child, self.spec, self.source)
            if info is not None:
                found.append((child, info))
            else:
                stack.extend(self._below(child))
        return found

    def _below(self, node: Any) -> list[Any]:
        """`node`'s named children that may hold a definition, last first."""
        children = reversed(node.named_children)
        if self.holders is not None:
            return [c for c in children if c.type in self.holders]
        return list(children) if self.paths is None else [c for c in children if c.id in self.paths]

    def _definition(self, inner: Any, start: int, end: int, symbol: str, kind: str) -> list[_Unit]:
        unit = self._unit(start, end, [symbol], kind, definition=True)
        if unit is None or self._fits(unit):
            return [unit] if unit else []
        if self._members(inner):
            return self._container(inner, start, end, syntax.member_scope(symbol, kind, self.spec.separator), kind,
                                   header=symbol)
        return self._statements(inner, start, end, symbol, kind)

    def _statements(self, node: Any, start: int, end: int, symbol: str, kind: str) -> list[_Unit]:
        """A long definition without members, cut where its body's statements begin.

        Its head (doc comment and signature) starts a window together with the body's first lines (the
        first window takes pieces until it holds a quarter of the cap), and nothing above it is merged
        into that window: the definition's first window, where a result of it is shown
        (`search._at_definitions`), holds its signature."""
        body = node.child_by_field_name("body") or node
        rows = body.rows if isinstance(body, outline.Node) else _statement_rows(body)
        cuts = sorted({row for row in rows if start < row <= end})
        bounds = [start, *cuts, end + 1]
        units: list[_Unit] = []
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            piece = self._unit(lo, hi - 1, [symbol], kind, definition=True)
            if piece is None:
                continue
            if units and (len(units) == 1 and units[0].tokens < self.limits.max_tokens // 4
                          or self._fits_with(units[-1], piece, self.limits.max_tokens)):
                units[-1] = self._joined(units[-1], piece)
            else:
                units.append(piece)
        windows = [u for unit in units for u in self._windows(unit)]
        if len(windows) > 1:
            windows[0].head = True
        return windows

    def _gap(self, lo: int, hi: int, scope: str | None, scope_kind: str) -> list[_Unit]:
        unit = self._unit(lo, hi, [scope] if scope else [], scope_kind if scope else "code", definition=False)
        return self._windows(unit) if unit else []

    def _leading_comments(self, start: int, floor: int) -> int:
        """Move a definition's start up over the comment lines right above it (doc comments)."""
        while start - 1 >= floor and is_comment(self.lines[start - 1]):
            start -= 1
        return start

    # -- sizes ---------------------------------------------------------------------------------

    def _unit(self, lo: int, hi: int, symbols: list[str], kind: str, definition: bool) -> _Unit | None:
        return _trimmed(self.lines, self.sizes, lo, hi, symbols, kind, definition)

    def _fits(self, unit: _Unit) -> bool:
        return unit.tokens <= self.limits.max_tokens and unit.end - unit.start < self.limits.max_lines

    def _fits_with(self, a: _Unit, b: _Unit, cap: int) -> bool:
        return a.tokens + b.tokens <= cap and b.end - a.start < self.limits.max_lines

    def _joined(self, a: _Unit, b: _Unit) -> _Unit:
        return _join(a, b)

    def _merge(self, units: list[_Unit]) -> list[_Unit]:
        return _merge(units, self.limits)

    def _windows(self, unit: _Unit) -> list[_Unit]:
        return _windows(self.lines, self.sizes, unit, self.limits)


def _sections(lines: Sequence[str], language: str, limits: Limits) -> list[_Unit]:
    pattern = SECTION_STARTS[language]
    sizes = _prefix_sums(limits.count_lines(lines))
    fence = False
    starts = [0]
    for row, line in enumerate(lines):
        if language == "markdown" and line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and row and pattern.match(line):
            starts.append(row)
    bounds = [*starts, len(lines)]
    units: list[_Unit] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        title = lines[lo].strip().lstrip("#").strip()[:120] if pattern.match(lines[lo]) else ""
        unit = _trimmed(lines, sizes, lo, hi - 1, [title] if title else [], "section", True)
        if unit is not None:
            units.extend(_windows(lines, sizes, unit, limits))
    return _merge(units, limits)


#: Grammar nodes that hold a body's statements and nothing else.
STATEMENT_WRAPPERS = frozenset({"statement_list", "statements"})


def _statement_rows(body: Any) -> list[int]:
    """First rows of a body's statements, through a lone node that only wraps them (Go's block holds
    one statement_list)."""
    children = body.named_children
    while len(children) == 1 and children[0].type in STATEMENT_WRAPPERS:
        children = children[0].named_children
    return [c.start_point.row for c in children]


def _prefix_sums(counts: Sequence[int]) -> list[int]:
    return list(accumulate(counts, initial=0))


def _trimmed(lines: Sequence[str], sizes: Sequence[int], lo: int, hi: int, symbols: list[str], kind: str,
             definition: bool) -> _Unit | None:
    """The unit for rows lo..hi without blank rows at its edges; None if all blank."""
    while lo <= hi and not lines[lo].strip():
        lo += 1
    while hi >= lo and not lines[hi].strip():
        hi -= 1
    if lo > hi:
        return None
    return _Unit(lo, hi, symbols, kind, definition, sizes[hi + 1] - sizes[lo])


def _join(a: _Unit, b: _Unit) -> _Unit:
    if a.definition and b.definition:
        symbols, kind = a.symbols + b.symbols, a.kind
    elif b.definition:
        symbols, kind = b.symbols or a.symbols, b.kind
    else:
        symbols, kind = a.symbols or b.symbols, a.kind
    return _Unit(a.start, b.end, symbols, kind, a.definition or b.definition, a.tokens + b.tokens)


def _merge(units: list[_Unit], limits: Limits) -> list[_Unit]:
    """Neighbours merged while the result stays under half the cap (so chunks stay focused)."""
    merged: list[_Unit] = []
    for unit in units:
        last = merged[-1] if merged else None
        if (last is not None and not unit.head and last.tokens + unit.tokens <= limits.merge_tokens
                and unit.end - last.start < limits.max_lines):
            merged[-1] = _join(last, unit)
        else:
            merged.append(unit)
    return merged


def _windows(lines: Sequence[str], sizes: Sequence[int], unit: _Unit, limits: Limits) -> list[_Unit]:
    """The unit itself if it fits the cap, else consecutive windows of whole lines that do (same symbol
    and kind). A single line over the cap is a window of its own: lines are never cut."""
    if unit.tokens <= limits.max_tokens and unit.end - unit.start < limits.max_lines:
        return [unit]
    windows: list[_Unit] = []
    lo = unit.start
    while lo <= unit.end:
        hi = lo
        while (hi + 1 <= unit.end and hi + 1 - lo < limits.max_lines
               and sizes[hi + 2] - sizes[lo] <= limits.max_tokens):
            hi += 1
        window = _trimmed(lines, sizes, lo, hi, unit.symbols, unit.kind, unit.definition)
        if window is not None:
            windows.append(window)
        lo = hi + 1
    return windows


def _end_row(node: Any) -> int:
    row, column = node.end_point
    return int(row - 1 if column == 0 and row > node.start_point.row else row)


_COMMENT = re.compile(r"^\s*(//|/\*|\*|#(?!include|define|if|endif|pragma|!)|--|;;|@\w)")


def is_comment(line: str) -> bool:
    """A comment or annotation/decorator line, which belongs to the definition below it."""
    return bool(_COMMENT.match(line))


def chunk_file(text: str, language: str, limits: Limits, *, window_lines: int = 40, window_chars: int = 1500,
               overlap: int = 4) -> list[Chunk]:
    """A file's chunks: by structure when its language has one here, else overlapping line windows.

    Never raises for any text: a grammar that fails (or is missing from this install) falls back to
    line windows, logged, so one odd file never fails a batch.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    try:
        chunks = structured_chunks(lines, language, limits)
    except Exception:  # a broken grammar install or a parser bug must not cost the file
        log.warning("structured chunking of a %s file failed; using line windows", language, exc_info=True)
        chunks = None
    if chunks is not None:
        return chunks
    return chunk_lines(text, max_lines=window_lines, max_chars=window_chars, overlap=overlap)
