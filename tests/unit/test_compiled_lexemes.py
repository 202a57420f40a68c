"""lexical.document and the hashing embedder's tokens in C (domain/_lexemes.c) against the Python and
numpy code they replace for ASCII content."""

from __future__ import annotations

import shutil
from collections import Counter
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np

from domain import health, lexical, token_hashing
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


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(text=_ASCII_TEXT)
def test_a_symbols_or_paths_terms_are_counted_the_same_both_ways(text: str) -> None:
    assert compiled is not None
    counted = compiled.counted_terms(text)
    reference = Counter(lexical.terms(text))
    assert counted == reference and list(counted) == list(reference)  # the order of first occurrence too
    with pytest.raises(ValueError, match="ASCII"):
        compiled.counted_terms("größe")


def compiled_and_numpy_tokens(texts: list[str]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(text, hash) of every token of ASCII `texts`, sorted: found by the C module, and by numpy."""
    rows = list(range(len(texts)))
    built = token_hashing._compiled_tokens(texts, rows)
    reference = [token_hashing._ascii_tokens([texts[i] for i in w], w) for w in token_hashing._windows(texts, rows)]
    return (sorted(zip(built.text.tolist(), built.hash.tolist(), strict=True)),
            sorted(zip(np.concatenate([r.text for r in reference]).tolist(),
                       np.concatenate([r.hash for r in reference]).tolist(), strict=True)))


@needs_compiled
def test_the_hashing_embedders_tokens_of_real_code_are_the_same_both_ways() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [chunk.content for file in sorted(stdlib.glob("*.py"))[:60]
             for chunk in chunks_of(Settings(), file.name, file.read_text(encoding="utf-8", errors="replace"))
             if chunk.content.isascii()]
    built, reference = compiled_and_numpy_tokens(texts)
    assert len(texts) > 1000 and len(built) > 50 * len(texts)
    assert built == reference


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_ASCII_TEXT, max_size=6))
def test_the_hashing_embedders_tokens_of_generated_text_are_the_same_both_ways(texts: list[str]) -> None:
    built, reference = compiled_and_numpy_tokens(texts)
    assert built == reference


@needs_compiled
def test_the_hashing_embedder_gets_the_same_vectors_with_and_without_the_c_module() -> None:
    from domain.embedders import HashingEmbedder

    texts = ["def parse(x): return x", "", "class HTTPServer(BaseServer): utf8Decode = __x__", "__", "naïve = 1"] * 3
    built = HashingEmbedder().embed_encoded(texts)
    with python_only():
        assert HashingEmbedder().embed_encoded(texts) == built
    assert compiled is not None
    assert compiled.token_hashes([]) == (b"", b"") and compiled.token_hashes(["__ (_)"]) == (b"", b"")
    with pytest.raises(ValueError, match=r"texts\[1\] must be ASCII"):
        compiled.token_hashes(["x", "größe"])
    with pytest.raises(TypeError, match=r"texts\[0\] must be str"):
        compiled.token_hashes([b"x"])
    with pytest.raises(TypeError):
        compiled.token_hashes(("x",))


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
