"""Python's statement structure from its logical lines and their indentation, for the chunker.

Python's definitions are statements, and a statement's extent follows from the indentation of the
logical lines after it, so the chunker needs no parse of every expression to find them: for Python
it walks the tree `tree` builds here, shaped as tree-sitter's is where the chunker looks (`module`,
`function_definition` / `class_definition` with a `name` and a `body` block, `decorated_definition`,
compound statements holding blocks, comments), rather than tree-sitter's. tree-sitter's parse cost
~49 us a chunk against ~9 for everything else chunking did (docs/benchmarks.md, B1).

The scanner (`logical_lines`) is C where `domain/_outline.c` was built, else the Python code below,
the reference the C code is tested against. Comments go where tree-sitter-python puts them: in the
block of the statements around them, and, after a block's last statement, in the deepest block that
is still open at their column.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

#: The `domain._outline` this code calls (see lexical.LEXEMES_API).
OUTLINE_API = 1
try:
    from domain import _outline
except ImportError:  # pragma: no cover - a machine without a C compiler
    _outline = None  # type: ignore[assignment]
if getattr(_outline, "API_VERSION", None) != OUTLINE_API:
    _outline = None  # type: ignore[assignment]

OTHER, DEF, CLASS, DECORATOR, COMMENT, CLAUSE = range(6)
#: first row, last row, indentation, kind, name's first byte, name's end byte (-1, -1: none)
Line = tuple[int, int, int, int, int, int]


def compiled() -> bool:
    """Whether `domain._outline` (C) scans the lines."""
    return _outline is not None


def logical_lines(source: bytes) -> list[Line]:
    """The logical lines of Python source, in order (see the module's C twin for the rules)."""
    if _outline is not None:
        flat = _outline.logical_lines(source)
        return list(struct.iter_unpack("6i", flat))
    return _logical_lines(source)


_BLANK = b" \t\f"
_CLAUSES = (b"elif", b"else", b"except", b"finally")
_OPEN, _CLOSE = b"([{", b")]}"


def _is_name(c: int) -> bool:
    return c == 95 or 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 0x80


def _keyword(p: bytes, i: int, word: bytes) -> bool:
    return p.startswith(word, i) and (i + len(word) == len(p) or not _is_name(p[i + len(word)]))


def _skip_blanks(p: bytes, i: int) -> int:
    while i < len(p) and p[i] in _BLANK:
        i += 1
    return i


def _skip_string(p: bytes, i: int, row: int) -> tuple[int, int]:
    n, quote = len(p), p[i]
    triple = i + 2 < n and p[i + 1] == quote and p[i + 2] == quote
    i += 3 if triple else 1
    while i < n:
        c = p[i]
        if c == 92 and i + 1 < n:  # backslash
            row += p[i + 1] == 10
            i += 2
        elif c == quote and (not triple or (i + 2 < n and p[i + 1] == quote and p[i + 2] == quote)):
            return i + (3 if triple else 1), row
        elif c == 10:
            if not triple:
                return i, row
            row += 1
            i += 1
        else:
            i += 1
    return n, row


def _logical_lines(p: bytes) -> list[Line]:
    """The reference scanner (what domain/_outline.c does, a byte at a time in Python)."""
    out: list[Line] = []
    n, i, row = len(p), 0, 0
    while i < n:
        indent = 0
        while i < n and p[i] in _BLANK:
            indent = indent + 1 if p[i] == 32 else (indent // 8 + 1) * 8 if p[i] == 9 else 0
            i += 1
        if i >= n:
            break
        if p[i] == 10:
            row += 1
            i += 1
            continue
        if p[i] == 35:  # a comment line
            out.append((row, row, indent, COMMENT, -1, -1))
            while i < n and p[i] != 10:
                i += 1
            continue
        first, kind, name = row, OTHER, (-1, -1)
        at = _skip_blanks(p, i + 5) if _keyword(p, i, b"async") else i
        if _keyword(p, at, b"def") or _keyword(p, i, b"class"):
            kind = CLASS if _keyword(p, i, b"class") else DEF
            s = e = _skip_blanks(p, at + (5 if kind == CLASS else 3))
            while e < n and _is_name(p[e]):
                e += 1
            name = (s, e)
        elif p[i] == 64:  # @
            kind = DECORATOR
        elif any(_keyword(p, i, word) for word in _CLAUSES):
            kind = CLAUSE
        depth = 0
        while i < n:
            c = p[i]
            if c == 35:
                while i < n and p[i] != 10:
                    i += 1
            elif c in (34, 39):
                i, row = _skip_string(p, i, row)
            elif c == 92 and i + 1 < n and p[i + 1] == 10:
                row += 1
                i += 2
            elif c == 10:
                i += 1
                if depth == 0:
                    break
                row += 1
            else:
                if c in _OPEN:
                    depth += 1
                elif c in _CLOSE and depth > 0:
                    depth -= 1
                i += 1
        out.append((first, row, indent, kind, *name))
        row += 1
    return out


# -- the tree ----------------------------------------------------------------------------------


class Point(NamedTuple):
    row: int
    column: int


class Node:
    """What the chunker reads of a tree-sitter node, for the statements it looks at.

    Simple statements and comments get no node: a block keeps their first rows (`rows`), which is
    all the chunker asks of them (where a long definition may be cut). A plain class with slots: a
    file makes about one node for every two logical lines, and a dataclass's __init__ (its default
    factories) was a quarter of `tree`'s time."""

    __slots__ = ("type", "first", "last", "children", "rows", "body", "name")

    def __init__(self, type: str, first: int, last: int, children: list[Node] | None = None,
                 name: tuple[int, int] | None = None) -> None:
        self.type = type
        self.first = first
        self.last = last
        self.children: list[Node] = [] if children is None else children
        self.rows: list[int] = []  # a block's statements' first rows, nodes' included
        self.body: Node | None = None
        self.name = name

    def __repr__(self) -> str:
        return f"Node({self.type!r}, {self.first}, {self.last}, children={len(self.children)})"

    @property
    def start_point(self) -> Point:
        return Point(self.first, 0)

    @property
    def end_point(self) -> Point:
        return Point(self.last, 1)  # never column 0: the last row is the node's own

    @property
    def named_children(self) -> list[Node]:
        return self.children

    @property
    def id(self) -> int:
        return id(self)

    @property
    def start_byte(self) -> int:
        assert self.name is not None
        return self.name[0]

    @property
    def end_byte(self) -> int:
        assert self.name is not None
        return self.name[1]

    def child_by_field_name(self, name: str) -> Any:
        if name == "body":
            return self.body
        if name == "name" and self.name is not None and self.name[1] > self.name[0]:
            return Node("identifier", self.first, self.first, name=self.name)
        return None


_TYPES = {DEF: "function_definition", CLASS: "class_definition"}


def tree(source: bytes) -> Node:
    """The statement tree of Python source: defs, classes, decorated definitions and compound
    statements (those a deeper block follows) as nodes under `block` nodes, the module at the root.

    The loop runs once a logical line, so its common case (a simple statement, or a compound one's
    head, with no decorator waiting) is written out inline."""
    module = Node("module", 0, 0)
    # Open blocks, innermost last: (indentation of their statements, block, the statement owning it).
    blocks: list[tuple[int, Node, Node | None]] = [(-1, module, None)]
    # The innermost block's latest statement: its node (None: a simple statement, no node yet), first and
    # last rows. None when a comment or nothing came since.
    latest: tuple[Node | None, int, int] | None = None
    decorators: list[Line] = []
    comments: list[Line] = []
    wrapped: list[Node] = []  # decorated definitions: they end where their definition does, known at the end

    def close(to_indent: int) -> None:
        while len(blocks) > 1 and blocks[-1][0] > to_indent:
            _, block, owner = blocks.pop()
            assert owner is not None
            if block.last > owner.last:
                owner.last = block.last
            outer = blocks[-1][1]
            if owner.last > outer.last:
                outer.last = owner.last

    def add(node: Node | None, first: int, last: int) -> None:
        block = blocks[-1][1]
        block.rows.append(first)
        if last > block.last:
            block.last = last
        if node is not None:
            block.children.append(node)

    def place_comments(next_indent: int) -> None:
        """The comments waiting for a statement at `next_indent`: those after a block's last statement
        leave it, by their column, when that statement closes it."""
        for comment in comments:
            while len(blocks) > 1 and blocks[-1][0] > next_indent and comment[2] < blocks[-1][0]:
                close(blocks[-2][0])
            add(None, comment[0], comment[1])
        comments.clear()

    for line in logical_lines(source):
        first, last, indent, kind, name_start, name_end = line
        if kind == COMMENT:
            comments.append(line)
            continue
        if latest is not None and indent > blocks[-1][0]:
            # A deeper line after a statement opens that statement's block (a definition's, or a
            # compound statement's: if, for, while, with, try and their clauses, match, case).
            owner = latest[0]
            if owner is None:
                owner = Node("compound_statement", latest[1], latest[2])
                blocks[-1][1].children.append(owner)
            block = Node("block", first, first)
            owner.body = block
            owner.children.append(block)
            blocks.append((indent, block, owner))
        if comments:
            place_comments(indent)
        if blocks[-1][0] > indent:
            close(indent)
        if kind == OTHER and not decorators:
            block = blocks[-1][1]
            block.rows.append(first)
            if last > block.last:
                block.last = last
            latest = (None, first, last)
            continue
        if kind == DECORATOR:
            decorators.append(line)
            latest = None
            continue
        if kind == DEF or kind == CLASS:
            node = Node(_TYPES[kind], first, last, name=(name_start, name_end))
            if decorators:
                wrapper = Node("decorated_definition", decorators[0][0], last, children=[node])
                wrapped.append(wrapper)
                add(wrapper, decorators[0][0], last)
            else:
                add(node, first, last)
            latest = (node, first, last)
        else:
            for decorator in decorators:  # decorators of no definition (a syntax error): plain statements
                add(None, decorator[0], decorator[1])
            if kind == CLAUSE:  # part of the statement above (tree-sitter's elif_clause, ...): no cut here
                if last > blocks[-1][1].last:
                    blocks[-1][1].last = last
            else:
                add(None, first, last)
            latest = (None, first, last)
        decorators.clear()
    place_comments(-1)  # the end of the file closes every block
    for decorator in decorators:
        add(None, decorator[0], decorator[1])
    close(-1)
    for wrapper in wrapped:
        wrapper.last = wrapper.children[0].last
    return module

