"""benchmarks/doc_queries.py on Go and Rust: which doc line comments become queries, and what blanking
them leaves (the same line numbers, the code untouched)."""

from __future__ import annotations

from benchmarks.doc_queries import blank, doc_candidates, doc_queries

GO = """package chi

// Mount attaches another http.Handler along the given pattern.
// It panics on a duplicate pattern.
func (mx *Mux) Mount(pattern string, handler http.Handler) {
\tmx.handle(pattern, handler)
}

// A Context is the routing state of one request, kept between handlers.
type Context struct{}

// too short
func short() {}

// A comment above something else
var x = 1

//go:generate stringer -type=Kind
func generated() {}
"""

RUST = """/// An iterator adaptor that may join together adjacent elements.
///
/// ```
/// let v = coalesce(x);
/// ```
#[must_use = "iterator adaptors are lazy"]
pub struct Coalesce<I> {
    iter: I,
}

impl<I> Coalesce<I> {
    /// Look at the element n positions ahead without consuming it.
    pub(crate) fn peek_nth(&mut self, n: usize) -> Option<&I> {
        None
    }
}

//// Not a doc comment, just a plain one with many words.
fn plain() {}

/// Build the table of every lookup key in one pass.
pub const unsafe fn build() {}
"""


def test_go_doc_comments_become_queries_without_the_name_they_open_with() -> None:
    found = {t.symbol: t for t in doc_candidates("mux.go", GO)}
    assert set(found) == {"Mount", "Context"}
    mount = found["Mount"]
    assert mount.query == "Attaches another http.Handler along the given pattern."
    assert (mount.def_line, mount.doc_lines) == (5, (3, 4))
    assert found["Context"].query == "Is the routing state of one request, kept between handlers."


def test_rust_doc_comments_skip_attributes_examples_and_plain_comments() -> None:
    found = {t.symbol: t for t in doc_candidates("src/coalesce.rs", RUST)}
    assert set(found) == {"Coalesce", "peek_nth", "build"}
    assert found["Coalesce"].query == "An iterator adaptor that may join together adjacent elements."
    assert (found["Coalesce"].def_line, found["Coalesce"].doc_lines) == (7, (1, 5))
    assert (found["peek_nth"].def_line, found["peek_nth"].doc_lines) == (13, (12, 12))


RUBY = """# frozen_string_literal: true

module Rack
  # Parses a query string into a hash of its keys and values,
  # nested by the brackets in the keys.
  class QueryParser
    # Build the nested hash of one query string.
    def parse_nested_query(qs, separator = nil)
      {}
    end

    # :nodoc:
    def helper
    end

    # too short
    def self.make_default(depth)
    end
  end
end
"""


def test_ruby_comments_above_a_def_class_or_module_become_queries() -> None:
    found = {t.symbol: t for t in doc_candidates("lib/rack/query_parser.rb", RUBY)}
    assert set(found) == {"QueryParser", "parse_nested_query"}
    assert found["QueryParser"].query == ("Parses a query string into a hash of its keys and values, nested by the "
                                          "brackets in the keys.")
    assert (found["parse_nested_query"].def_line, found["parse_nested_query"].doc_lines) == (8, (7, 7))


def test_blanking_empties_the_comment_lines_and_keeps_every_other_line() -> None:
    targets = doc_candidates("src/coalesce.rs", RUST)
    out = blank("src/coalesce.rs", RUST, targets).split("\n")
    original = RUST.split("\n")
    assert len(out) == len(original)
    blanked = {n for t in targets for n in range(t.doc_lines[0], t.doc_lines[1] + 1)}
    for n, (was, now) in enumerate(zip(original, out, strict=True), 1):
        assert now == ("" if n in blanked else was)


def test_a_query_still_written_elsewhere_in_the_tree_is_dropped() -> None:
    copy = "// Attaches another http.Handler along the given pattern.\nvar doc = 1\n"
    kept, _, meta = doc_queries({"mux.go": GO, "README.go": copy}, cap=10, seed=1)
    assert "Mount" not in {t.symbol for t in kept}
    assert meta["dropped_verbatim_elsewhere"] == 1
