"""Python's outline (domain/outline.py, domain/_outline.c): the C scanner against its Python reference,
and the chunks it gives against those of tree-sitter's tree."""

from __future__ import annotations

import sysconfig
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import chunking, outline
from domain.chunking import Limits, chunk_file

needs_compiled = pytest.mark.skipif(not outline.compiled(), reason="domain._outline was not built (no C compiler)")

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _stdlib_sources() -> list[bytes]:
    files = [p for pattern in ("*.py", "asyncio/*.py", "email/*.py", "lib2to3/**/*.py") for p in STDLIB.glob(pattern)]
    return [p.read_bytes() for p in sorted(files)]


@needs_compiled
def test_the_c_scanner_gives_the_python_scanners_lines_for_the_standard_library() -> None:
    sources = _stdlib_sources()
    assert len(sources) > 300
    for source in sources:
        assert outline.logical_lines(source) == outline._logical_lines(source)


# Python-shaped text: keywords, names, quotes of every kind, brackets, comments, continuations, tabs.
_TOKEN = st.sampled_from(["def", "class", "async", "@", "elif", "else:", "except", "finally", "if", "x", "f(",
                          ")", "[", "]", "{", "}", "'", '"', "'''", '"""', "#", "\\", "\\\n", "\n", "\n    ",
                          "\n\t", "\n  ", " ", ":", "é", "r'", "\f"])


@needs_compiled
@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(_TOKEN, max_size=80))
def test_the_c_scanner_gives_the_python_scanners_lines_for_any_text(pieces: list[str]) -> None:
    source = "".join(pieces).encode()
    assert outline.logical_lines(source) == outline._logical_lines(source)


def test_the_scanner_refuses_what_is_not_bytes() -> None:
    assert outline._logical_lines(b"") == []
    if outline.compiled():
        assert outline.logical_lines(b"") == []
        with pytest.raises(TypeError):
            outline._outline.logical_lines("def f(): pass")


SOURCE = textwrap.dedent('''\
    """A module; this docstring says def fake(): and # not a comment."""
    import os  # def not_this()

    @decorator(
        "#", x)
    async def first(a,
                    b):  # the signature spans lines
        text = """
    def inside_a_string():
        pass
    """
        if a:
            def nested():
                return [
    def not_a_def_either]
        elif b:
            pass
        else:
            return \\
                1
        # still first's
    # the module's

    class Second(Base):
    \tdef tabbed(self):
    \t\treturn 1

    \t@property
    \tdef prop(self): return 2
        # after prop, at column 4

    try:
        def in_try(): pass
    except ImportError:
        def in_except(): pass
    ''')


def _definitions(text: str, outlined: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str | None]]:
    monkeypatch.setattr(chunking, "OUTLINED", outlined)
    return [(c.start_line, c.end_line, c.symbol) for c in chunk_file(text, "python", Limits(max_tokens=8, max_lines=4))]


@needs_compiled
def test_definitions_strings_comments_and_continuations_are_read_as_tree_sitter_reads_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = _definitions(SOURCE, True, monkeypatch)
    assert found == _definitions(SOURCE, False, monkeypatch)
    symbols = {s for _, _, s in found if s}
    assert {"first", "Second", "Second.tabbed", "Second.prop", "in_try", "in_except"} <= symbols
    assert not any("fake" in s or "not_this" in s or "inside_a_string" in s or "not_a_def" in s for s in symbols)


@needs_compiled
def test_the_standard_librarys_chunks_are_nearly_all_those_of_tree_sitters_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    # The outline differs from tree-sitter's tree only in where a long definition without members is cut
    # (comments before an elif, say), never in which definitions there are.
    texts = [s.decode("utf-8", "replace") for s in _stdlib_sources()]
    limits = Limits(max_tokens=64, max_lines=30)  # small: many definitions are cut at statements
    monkeypatch.setattr(chunking, "OUTLINED", False)
    reference = [chunk_file(t, "python", limits) for t in texts]
    monkeypatch.setattr(chunking, "OUTLINED", True)
    outlined = [chunk_file(t, "python", limits) for t in texts]
    total = sum(map(len, reference))
    shared = sum(len({(c.start_line, c.end_line, c.symbol) for c in a} & {(c.start_line, c.end_line, c.symbol) for c in b})
                 for a, b in zip(reference, outlined, strict=True))
    assert total > 10_000 and shared / total > 0.98
    for a, b in zip(reference, outlined, strict=True):  # the same definitions, file by file
        assert {s for c in a if c.symbol for s in c.symbol.split(", ")} == {
            s for c in b if c.symbol for s in c.symbol.split(", ")}


def test_without_the_c_scanner_python_is_chunked_through_tree_sitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outline, "_outline", None)
    assert not outline.compiled()
    monkeypatch.setattr(chunking, "OUTLINED", outline.compiled())
    chunks = chunk_file(SOURCE, "python", Limits())
    assert {"first", "Second"} <= {s for c in chunks if c.symbol for s in c.symbol.split(", ")}


def test_doctor_warns_when_the_outline_scanner_was_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from domain import health, lexical

    monkeypatch.setattr(outline, "_outline", None)
    check = health._lexer()
    assert check.state == "warning" and "domain/_outline.c" in check.detail and "tree-sitter" in check.detail
    assert check.remedy is not None and "make install" in check.remedy
    assert ("domain/_lexemes.c" in check.detail) == (not lexical.compiled())
