"""The reranking features and BM25's query side: pure functions."""

from __future__ import annotations

from domain import lexical, rerank
from domain.chunker import Chunk
from domain.indexing import embedded_texts
from domain.lexical import QueryTerm


def test_a_word_matches_its_forms_and_an_identifier_only_itself() -> None:
    assert {"validate", "validation", "validator", "valid"} <= set(lexical.forms("validated"))
    assert {"wrap", "wrapped", "wrapper", "wrapping"} <= set(lexical.forms("wrapping"))
    assert {"job", "jobs"} <= set(lexical.forms("jobs"))
    assert lexical.forms("parseHttpDate") == ("parseHttpDate",)
    assert lexical.forms("http2") == ("http2",) and lexical.forms("get") == ("get",)


def test_idf_falls_as_a_term_gets_common_and_never_goes_negative() -> None:
    assert lexical.idf(1, 1000) > lexical.idf(100, 1000) > lexical.idf(1000, 1000) >= 0


def test_a_word_of_several_forms_counts_the_chunks_of_all_of_them() -> None:
    words = [("cached", ("cached", "cache")), ("value", ("value",))]
    terms = lexical.weighted(words, {"cached": 1, "cache": 9, "value": 90}, 100)
    assert terms[0].idf == lexical.idf(10, 100) and terms[1].idf == lexical.idf(90, 100)


def test_the_rerank_bonus_rewards_the_symbol_then_the_path_and_definitions() -> None:
    terms = [QueryTerm("width", ("width",), 2.0), QueryTerm("terminal", ("terminal",), 1.0)]
    named = rerank.bonus(terms, "Console.width", "rich/console.py", "method")
    located = rerank.bonus(terms, "Console.size", "rich/terminal/width.py", "method")
    neither = rerank.bonus(terms, "Console.size", "rich/console.py", "method")
    code = rerank.bonus(terms, None, "rich/console.py", "code")
    assert named > located > neither > code == 0.0
    assert named <= rerank.best_bonus()
    assert rerank.bonus([], "Console.width", "a.py", "method") == 0.0


def test_a_chunk_of_several_definitions_is_named_by_its_best_named_one() -> None:
    """Small neighbours are merged ("Directory.get, Directory.check_forbidden"): a query for the
    second names that chunk as much as a chunk of its own."""
    terms = [QueryTerm("forbidden", ("forbidden",), 2.0), QueryTerm("check", ("check",), 1.0)]
    merged = rerank.bonus(terms, "Directory.get, Directory.check_forbidden", "lib/directory.rb", "method")
    alone = rerank.bonus(terms, "Directory.check_forbidden", "lib/directory.rb", "method")
    other = rerank.bonus(terms, "Directory.get, Directory.list_path", "lib/directory.rb", "method")
    assert merged == alone > other


def test_a_method_is_embedded_with_its_class_header_and_a_window_with_its_signature() -> None:
    chunks = [Chunk(1, 2, "class Console(Base):\n    x = 1", "Console", "class"),
              Chunk(3, 9, "    @property\n    def width(self) -> int:\n        a = 1", "Console.width", "method"),
              Chunk(10, 12, "        b = 2\n        return a + b", "Console.width", "method"),
              Chunk(13, 14, "print(1)", None, "code")]
    texts = embedded_texts("rich/console.py", chunks)
    assert texts[0] == "rich/console.py\nConsole\nclass Console(Base):\n    x = 1"  # its own first line is not repeated
    assert texts[1].split("\n")[:3] == ["rich/console.py", "Console.width", "class Console(Base):"]
    assert texts[2].split("\n")[:4] == ["rich/console.py", "Console.width", "class Console(Base):",
                                        "def width(self) -> int:"]
    assert texts[3] == "rich/console.py\nprint(1)"


def test_scopes_written_with_colons_find_their_headers_too() -> None:
    """Rust and C++ qualify with "::": `geo::Shape::area` knows its namespace and its class."""
    chunks = [Chunk(1, 1, "namespace geo {", "geo", "namespace"),
              Chunk(2, 3, "class Shape {\n public:", "geo::Shape", "class"),
              Chunk(4, 6, "  double area() const {\n    return 0;\n  }", "geo::Shape::area", "method")]
    texts = embedded_texts("src/shape.cpp", chunks)
    assert texts[2].split("\n")[:4] == ["src/shape.cpp", "geo::Shape::area", "namespace geo {", "class Shape {"]
