"""Structural chunking: definitions with qualified symbols, nothing dropped, nothing twice, any text survives."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import chunking, syntax
from domain.chunker import Chunk
from domain.chunking import SECTION_STARTS, Limits, chunk_file, estimate_tokens
from tests.support import ROOT

SMALL = Limits(max_tokens=12, max_lines=60)


def symbols(chunks: list[Chunk]) -> list[tuple[str | None, str | None]]:
    return [(c.symbol, c.kind) for c in chunks]


def assert_partition(text: str, chunks: list[Chunk]) -> None:
    """Every non-blank line is in exactly one chunk, and each chunk's content is exactly its lines."""
    lines = text.replace("\r\n", "\n").split("\n")
    seen: dict[int, int] = {}
    for chunk in chunks:
        assert chunk.content == "\n".join(lines[chunk.start_line - 1:chunk.end_line])
        for number in range(chunk.start_line, chunk.end_line + 1):
            seen[number] = seen.get(number, 0) + 1
    assert all(count == 1 for count in seen.values()), "a line is in two chunks"
    missing = [n for n, line in enumerate(lines, start=1) if line.strip() and n not in seen]
    assert not missing, f"non-blank lines in no chunk: {missing}"


PYTHON = textwrap.dedent('''\
    """Invoices."""
    import os

    RATE = 0.2


    class Invoice:
        """An invoice with lines."""

        currency = "EUR"

        def total(self, items):
            return sum(items)

        @property
        def tax(self):
            # the tax part
            return self.rate


    def parse_http_date(value):
        return value


    if __name__ == "__main__":
        print(parse_http_date("x"))
''')


def test_python_definitions_get_qualified_symbols_and_module_code_is_kept() -> None:
    chunks = chunk_file(PYTHON, "python", Limits(max_tokens=30))
    assert_partition(PYTHON, chunks)
    named = symbols(chunks)
    assert ("Invoice.total", "method") in named
    assert ("Invoice.tax", "method") in named
    assert ("parse_http_date", "function") in named
    assert (None, "code") in named  # the imports and the __main__ block
    header = next(c for c in chunks if c.symbol == "Invoice" and "class Invoice" in c.content)
    assert "An invoice with lines" in header.content and "return sum" not in header.content
    tax = next(c for c in chunks if c.symbol == "Invoice.tax")
    assert tax.content.lstrip().startswith("@property")  # the decorator belongs to its definition


def test_a_definition_that_fits_is_one_chunk_and_small_neighbours_merge() -> None:
    chunks = chunk_file(PYTHON, "python", Limits(max_tokens=4096))
    assert_partition(PYTHON, chunks)
    assert len(chunks) == 1 and "Invoice" in (chunks[0].symbol or "")


@pytest.mark.parametrize("language, source, expected", [
    ("javascript", "import x from 'y';\n\nexport function parseDate(s) {\n  return s;\n}\n\nclass Cache {\n"
     "  get(key) { return 1; }\n}\n\nconst handler = async (req) => {\n  return req;\n};\n",
     {("parseDate", "function"), ("Cache.get", "method"), ("handler", "function")}),
    ("typescript", "interface User {\n  id: number;\n}\n\nexport class Repo<T> {\n  find(id: number): T | null {"
     " return null; }\n}\n", {("User", "interface"), ("Repo.find", "method")}),
    ("tsx", "export const App = () => {\n  return <div>hi</div>;\n};\n", {("App", "function")}),
    ("go", "package main\n\n// Server serves.\ntype Server struct{}\n\nfunc (s *Server) Serve() error {\n"
     "  return nil\n}\n", {("Server", "type"), ("Server.Serve", "method")}),
    ("rust", "struct Foo { x: i32 }\n\nimpl Foo {\n    pub fn bar(&self) -> i32 {\n        self.x\n    }\n}\n",
     {("Foo", "struct"), ("Foo::bar", "method")}),
    ("java", "public class Invoice {\n  private int x;\n  public int total() {\n    return x;\n  }\n}\n",
     {("Invoice.total", "method")}),
    ("c", "#include <stdio.h>\n\nstatic int add(int a, int b) {\n  return a + b;\n}\n", {("add", "function")}),
    ("cpp", "namespace geo {\nclass Shape {\n public:\n  double area() const {\n    return 0;\n  }\n};\n}\n",
     {("geo::Shape::area", "method")}),
    ("csharp", "namespace App {\n  public class Svc {\n    public void Run() {\n      Go();\n    }\n  }\n}\n",
     {("App.Svc.Run", "method")}),
    ("ruby", "module Billing\n  class Invoice\n    def total\n      1\n    end\n  end\nend\n",
     {("Billing.Invoice.total", "method")}),
    ("php", "<?php\nclass Cart {\n  public function add($x) {\n    return $x;\n  }\n}\n", {("Cart.add", "method")}),
    ("kotlin", "class A {\n  fun b(): Int {\n    return 1\n  }\n}\n", {("A.b", "method")}),
    ("swift", "struct S {\n  func f() -> Int {\n    return 1\n  }\n}\n", {("S.f", "method")}),
    ("scala", "object O {\n  def f(x: Int) = {\n    x + 1\n  }\n}\n", {("O.f", "method")}),
    ("bash", "#!/bin/bash\nset -e\n\ndeploy() {\n  echo hi\n}\n\ndeploy\n", {("deploy", "function")}),
])
def test_each_language_names_its_definitions(language: str, source: str, expected: set[tuple[str, str]]) -> None:
    chunks = chunk_file(source, language, SMALL)
    assert_partition(source, chunks)
    assert expected <= set(symbols(chunks)), symbols(chunks)


RUST_IMPLS = """struct PeekNth<I> { buf: Vec<I> }

impl<I: Iterator> Iterator for PeekNth<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.buf.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl<'a, K, V> IntoIterator for &'a Table<K, V> {
    type Item = (&'a K, &'a V);

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}
"""


def test_rust_methods_are_named_by_their_type_and_no_name_holds_type_arguments() -> None:
    chunks = chunk_file(RUST_IMPLS, "rust", SMALL)
    assert_partition(RUST_IMPLS, chunks)
    named = set(symbols(chunks))
    assert {("PeekNth::next", "method"), ("PeekNth::size_hint", "method"), ("Table::into_iter", "method")} <= named
    # the impl's own lines (its header, `type Item`) keep the impl's name, without type arguments
    assert {"impl Iterator for PeekNth", "impl IntoIterator for &Table"} <= {s for s, _ in named}
    # merged chunks join their symbols with ", ": a name holding one ("PeekNth<K, V>") would split wrongly
    assert not any("<" in (s or "") or "'" in (s or "") for s, _ in named), named


def test_a_go_method_of_a_generic_type_is_named_without_its_type_parameters() -> None:
    source = "package list\n\nfunc (l *List[K, V]) Push(k K, v V) {\n\tl.items = append(l.items, k)\n}\n"
    assert ("List.Push", "method") in symbols(chunk_file(source, "go", SMALL))


def test_a_huge_function_is_split_at_statements_under_the_cap() -> None:
    body = "\n".join(f"    value_{i} = compute_{i}(value_{i - 1})" for i in range(1, 200))
    source = f"def huge(value_0):\n{body}\n    return value_199\n"
    limits = Limits(max_tokens=120, max_lines=30)
    chunks = chunk_file(source, "python", limits)
    assert_partition(source, chunks)
    assert len(chunks) > 5
    assert all(c.symbol == "huge" and c.kind == "function" for c in chunks)
    assert all(estimate_tokens(c.content) <= limits.max_tokens for c in chunks)
    assert all(c.end_line - c.start_line < limits.max_lines for c in chunks)


@pytest.mark.parametrize("language, small, head, line", [
    ("go", "func small() int {\n\treturn 1\n}\n", "// long does many things.\nfunc long(x int) int {\n",
     "\tx = step{i}(x)\n"),
    ("python", "def small():\n    return 1\n", "# long does many things.\ndef long(x):\n", "    x = step{i}(x)\n"),
])
def test_a_long_definitions_first_chunk_starts_at_its_head_and_holds_its_body_not_the_code_above(
        language: str, small: str, head: str, line: str) -> None:
    # Go's body is one statement_list deep; its head was once merged into the chunk of `small`.
    source = small + "\n" + head + "".join(line.format(i=i) for i in range(60)) + ("\treturn x\n}\n"
                                                                                  if language == "go" else "    return x\n")
    chunks = chunk_file(source, language, Limits(max_tokens=200, max_lines=60))
    assert_partition(source, chunks)
    signature = source.split("\n").index(head.split("\n")[1]) + 1
    first = next(c for c in chunks if c.start_line <= signature <= c.end_line)
    assert first.symbol == "long" and first.start_line == signature - 1  # from its doc comment
    assert first.end_line - signature >= 10 and "step0(x)" in first.content
    assert [c.symbol for c in chunks].count("small") == 1 and len(chunks) > 2


def test_markdown_is_cut_at_headings_but_not_inside_code_fences() -> None:
    source = "# Title\n\nintro\n\n## Install\n\nrun it\n\n```\n# not a heading\n```\n"
    chunks = chunk_file(source, "markdown", Limits(max_tokens=20))
    assert_partition(source, chunks)
    assert [c.symbol for c in chunks] == ["Title", "Install"]


def test_unknown_text_falls_back_to_overlapping_line_windows() -> None:
    source = "\n".join(f"word {i}" for i in range(100))
    chunks = chunk_file(source, "text", SMALL, window_lines=40, overlap=4)
    assert [c.symbol for c in chunks] == [None] * len(chunks)
    assert chunks[1].start_line < chunks[0].end_line  # windows overlap


def test_a_grammar_that_fails_falls_back_to_line_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking, "OUTLINED", False)  # Python through its tree-sitter grammar
    monkeypatch.setitem(syntax.GRAMMARS, "python", ("tree_sitter_no_such_grammar", "language"))
    syntax._language.cache_clear()
    try:
        chunks = chunk_file(PYTHON, "python", SMALL)
    finally:
        syntax._language.cache_clear()
    assert chunks and all(c.symbol is None for c in chunks)
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert all(n in covered for n, line in enumerate(PYTHON.split("\n"), 1) if line.strip())


def test_every_grammar_loads_without_the_network() -> None:
    """In a fresh process where opening a socket raises, every grammar still parses."""
    code = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network used")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from domain import syntax
        for name in syntax.GRAMMARS:
            tree = syntax.parser_for(name).parse(b"x = 1\\n")
            assert tree.root_node is not None, name
        print(len(syntax.GRAMMARS))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 16


LANGUAGES = sorted(syntax.GRAMMARS) + sorted(SECTION_STARTS) + ["text"]
CODE_ALPHABET = st.sampled_from(list("abcXY_ (){}[]<>;:=.,'\"#/*\\\n\t$@!?-+0123456789") + ["def ", "class ",
                                 "fn ", "func ", "function ", "end\n", "}\n", "    ", "\r\n", "é", "\u2028"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(language=st.sampled_from(LANGUAGES), pieces=st.lists(CODE_ALPHABET, max_size=120),
       cap=st.integers(min_value=4, max_value=80))
def test_any_text_in_any_language_chunks_and_covers_every_non_blank_line(language: str, pieces: list[str],
                                                                         cap: int) -> None:
    text = "".join(pieces)
    chunks = chunk_file(text, language, Limits(max_tokens=cap, max_lines=12), window_lines=12, overlap=2)
    lines = text.replace("\r\n", "\n").split("\n")
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert all(n in covered for n, line in enumerate(lines, start=1) if line.strip())
    for chunk in chunks:
        assert chunk.content == "\n".join(lines[chunk.start_line - 1:chunk.end_line])
    if language != "text":
        assert_partition(text, chunks)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=400), language=st.sampled_from(LANGUAGES))
def test_arbitrary_unicode_never_raises(text: str, language: str) -> None:
    chunks = chunk_file(text, language, Limits(max_tokens=16, max_lines=8))
    assert all(c.start_line <= c.end_line for c in chunks)


def test_python_chunks_found_through_statement_holders_equal_those_found_by_the_definition_query(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Python descends only into statement nodes (SPECS' holders); the query over the whole tree is the
    # reference. Every file of the standard library's top level, its asyncio, email and lib2to3 (whose
    # test data has Python 2 syntax, so ERROR nodes), cut small so that big definitions are split.
    import dataclasses
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for pattern in ("*.py", "asyncio/*.py", "email/*.py", "lib2to3/**/*.py") for p in root.glob(pattern)]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(files)]
    assert len(texts) > 300
    limits = Limits(max_tokens=64, max_lines=30)
    monkeypatch.setattr(chunking, "OUTLINED", False)  # both through tree-sitter's tree (outline: test_outline.py)
    spec = syntax.SPECS["python"]
    holders = [chunk_file(t, "python", limits) for t in texts]
    syntax.SPECS["python"] = dataclasses.replace(spec, holders=None)
    try:
        queried = [chunk_file(t, "python", limits) for t in texts]
    finally:
        syntax.SPECS["python"] = spec
    assert sum(map(len, holders)) > 10_000
    assert holders == queried
