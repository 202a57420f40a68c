"""lexical.document in C (domain/_lexemes.c) against the Python code it replaces for ASCII content."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import health, lexical
from domain.indexing import chunks_of
from domain.settings import Settings

compiled = lexical._lexemes
needs_compiled = pytest.mark.skipif(compiled is None, reason="domain._lexemes was not built (no C compiler)")


@contextmanager
def python_only() -> Iterator[None]:
    """lexical's own Python code, as on a machine where the C module was not built."""
    lexical._lexemes = None
    try:
        yield
    finally:
        lexical._lexemes = compiled


def both_ways(path: str, symbol: str | None, content: str) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
    built = (lexical.document(path, symbol, content), lexical.document_text(path, symbol, content))
    with python_only():
        reference = (lexical.document(path, symbol, content), lexical.document_text(path, symbol, content))
    return built, reference


def test_the_c_module_is_built_wherever_a_c_compiler_is() -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) on this machine")
    assert compiled is not None, "pip install -e . should have built domain/_lexemes.c"


@needs_compiled
def test_every_chunk_of_real_code_gets_the_same_document_both_ways() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[:60] + [Path(__file__).resolve().parents[2] / "domain" / "_lexemes.c"]
    checked = 0
    for file in files:
        path = str(file.relative_to(file.parents[1]))
        for chunk in chunks_of(Settings(), path, file.read_text(encoding="utf-8", errors="replace")):
            built, reference = both_ways(path, chunk.symbol, chunk.content)
            assert built == reference, (path, chunk.start_line)
            checked += chunk.content.isascii()
    assert checked > 1000


# Identifier-shaped text: letter cases, digits and underscores in runs, so camelCase, ACRONYMS, snake_case,
# __dunder__, 1digit, lone underscores and the rest of the shapes occur often.
_PIECE = st.sampled_from(["a", "b", "z", "A", "B", "Z", "HTTP", "Server", "x1", "9", "0", "_", "__", "utf8"])
_WORD = st.lists(_PIECE, min_size=1, max_size=12).map("".join)
_GAP = st.sampled_from([" ", "\n", "(", ").", " = ", "\t", "'", "\\", "-", "$"])
_ASCII_TEXT = st.one_of(st.lists(st.tuples(_WORD, _GAP), max_size=60).map(lambda ws: "".join(w + g for w, g in ws)),
                        st.text(st.characters(max_codepoint=127), max_size=300))  # any ASCII, NUL included


@needs_compiled
@settings(max_examples=400, deadline=None)
@given(content=_ASCII_TEXT, symbol=st.one_of(st.none(), _WORD, st.text(max_size=20)),
       path=st.one_of(_WORD.map(lambda w: f"src/{w}.py"), st.text(max_size=30)))
def test_generated_identifiers_get_the_same_document_both_ways(content: str, symbol: str | None, path: str) -> None:
    built, reference = both_ways(path, symbol, content)
    assert built == reference


@needs_compiled
@pytest.mark.parametrize("content", [
    "",
    "+-*/ ... !!",
    "___ _ __init__ _private trailing_",
    "a" * 64 + " " + "b" * 65 + " " + "Long" * 17 + "_x",  # terms of 64 characters are kept, longer ones not
    "x " * 300,  # more than 255 positions
    "veryLongIdentifierWithManyParts" * 80,  # one identifier past the stack's room for 1,024 parts
    "a1" * 512 + " " + "a1" * 512 + "b",  # 1,024 and 1,025 one-byte parts: the stack's room, and one more
    " ".join(f"name{i}" for i in range(2000)),  # a term table that grows many times
])
def test_edge_cases_get_the_same_document_both_ways(content: str) -> None:
    built, reference = both_ways("pkg/some_module.py", "Some.thing_x", content)
    assert built == reference


@needs_compiled
def test_the_c_module_refuses_what_it_cannot_handle() -> None:
    assert compiled is not None
    with pytest.raises(ValueError, match="ASCII"):
        compiled.document("größe", {}, {}, False)
    with pytest.raises(TypeError):
        compiled.document("x", {1: 1}, {}, False)
    with pytest.raises(TypeError):
        compiled.document("x", {"x": "1"}, {}, True)
    with pytest.raises(TypeError):
        compiled.document("x", [], {}, True)
    with pytest.raises(TypeError, match="non-negative"):
        compiled.document("x", {}, {"x": -1}, False)
    with pytest.raises(TypeError, match="non-negative"):
        compiled.document("x", {"x": -2}, {}, True)
    with pytest.raises(OverflowError):
        compiled.document("x", {}, {"x": 2**70}, False)


def test_a_c_module_built_from_another_version_of_the_source_is_left_unused() -> None:
    from types import SimpleNamespace

    assert not lexical._usable(SimpleNamespace(API_VERSION=lexical.LEXEMES_API + 1))
    assert not lexical._usable(SimpleNamespace())  # built before the version existed
    assert not lexical._usable(None)
    if compiled is not None:
        assert lexical._usable(compiled)


def test_doctor_warns_when_documents_are_built_in_python_and_says_how_to_build_the_c_module() -> None:
    with python_only():
        check = health._lexer()
    assert check.state == "warning" and "Python fallback" in check.detail
    assert check.remedy is not None and "C compiler" in check.remedy and "make install" in check.remedy
    if compiled is not None:
        assert health._lexer().state == "ok"
