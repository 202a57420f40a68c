"""Identifier-aware terms and the fusion of rankings: pure functions, no database."""

from __future__ import annotations

import pytest

from pathlib import Path

from domain import lexical
from domain.indexing import chunks_of
from domain.pgbinary import tsvector_text
from domain.search import FIRST_PLACE, LEXICAL_WEIGHT, SEMANTIC_WEIGHT, _fused
from domain.settings import Settings


def test_terms_hold_whole_identifiers_and_their_parts_without_underscores() -> None:
    assert lexical.terms("parseHttpDate(snake_case_name)") == [
        "parsehttpdate", "parse", "http", "date", "snakecasename", "snake", "case", "name"]


def test_a_chunk_document_weighs_symbol_path_and_body_apart() -> None:
    assert tsvector_text(lexical.document("src/http_utils.py", "Client.getJSON", "return get x x")) == (
        "'client':1A 'getjson':1A 'get':1A,2 'json':1A 'src':1B 'httputils':1B 'http':1B 'utils':1B 'py':1B "
        "'return':1 'x':1,2")


def test_a_document_counts_its_lexemes_and_encodes_non_ascii_terms_as_utf8() -> None:
    built = lexical.document("", None, "größe = größe + 1")
    assert tsvector_text(built) == "'1':1 'größe':1,2"
    assert built[:4] == (2).to_bytes(4, "big") and "größe".encode() + b"\0" in built
    assert lexical.document("", None, "") == b"\0\0\0\0"


def test_the_text_form_of_a_document_says_what_its_binary_form_says() -> None:
    root = Path(__file__).resolve().parents[2]
    samples = [(path, c.symbol, c.content) for path in ("domain/store/batches.py", "domain/lexical.py", "domain/search.py", "README.md")
               for c in chunks_of(Settings(CODESEARCH_CHUNK_MAX_TOKENS=256), path, (root / path).read_text())]
    samples.append(("größe.py", "größe", "größe = größe + 'x' * 300 + " + "retry " * 300))
    assert len(samples) > 50
    for path, symbol, content in samples:
        assert lexical.document_text(path, symbol, content) == tsvector_text(lexical.document(path, symbol, content))


def test_queries_drop_stop_words_unless_nothing_else_is_left() -> None:
    assert lexical.query_terms("where is the HTTPServer started") == ["httpserver", "http", "server", "started"]
    assert lexical.query_terms("where is it") == ["where", "is", "it"]
    assert lexical.query_terms("?! ...") == []


def test_without_statistics_every_term_selects_candidates() -> None:
    plan = lexical.plan(["read", "config", "file"], {}, 0.0, 0.0)
    assert plan == lexical.LexicalQuery(match="'config' | 'file' | 'read'", rank="'read' | 'config' | 'file'")


def test_rare_terms_select_candidates_and_common_ones_only_together() -> None:
    # 1M chunks: "get" in 30%, "size" in 3%; "terminal" is unlisted (half the least listed share: 50 rows).
    plan = lexical.plan(["getterminalsize", "get", "terminal", "size"], {"get": 0.3, "size": 0.03}, 0.0001,
                        1_000_000, budget=2000)
    assert plan.match == "'getterminalsize' | 'terminal' | ('get' & 'size')"
    assert plan.rank == "'getterminalsize' | 'get' | 'terminal' | 'size'"  # every term still ranks


def test_rare_terms_stop_selecting_once_their_matches_pass_the_budget() -> None:
    shares = {"alpha": 0.0005, "beta": 0.001, "gamma": 0.0015}  # 500, 1000 and 1500 of 1M chunks
    # The rarest two fit the budget; gamma does not, and a lone common term selects nothing.
    assert lexical.plan(["gamma", "beta", "alpha"], shares, 0.0005, 1_000_000, budget=2000).match == "'alpha' | 'beta'"
    assert lexical.plan(["gamma", "alpha"], shares, 0.0005, 1_000_000, budget=2000).match == "'alpha' | 'gamma'"


def test_when_every_term_is_common_only_chunks_holding_all_of_them_are_candidates() -> None:
    shares = {"open": 0.03, "file": 0.12, "read": 0.05}
    assert lexical.plan(["open", "file", "read"], shares, 0.001, 1_000_000).match == "'open' & 'file' & 'read'"
    assert lexical.plan(["file"], shares, 0.001, 1_000_000).match == "'file'"  # the store caps its matches


def test_identifiers_are_code_like_names_or_a_lone_word() -> None:
    assert lexical.identifiers("how does parseHttpDate handle parse_http_date") == {"parsehttpdate"}
    assert lexical.identifiers("invoice") == {"invoice"}
    assert lexical.identifiers("where are invoices totalled") == set()


def test_qualified_names_are_found_whatever_their_parts_look_like() -> None:
    assert lexical.qualified_names("Console.print") == {("console", "print")}
    assert lexical.qualified_names("where is Itertools::interleave") == {("itertools", "interleave")}
    assert lexical.qualified_names("how does os.path.join treat parse_http_date") == {("os.path", "join")}
    # numbers, file names, hosts, addresses and abbreviations are not qualified names
    assert lexical.qualified_names("a size like 1.5 MB read from config.json") == set()
    assert lexical.qualified_names("fetch https://example.com/a.b or mail me@x.org, e.g. later") == set()


def row(chunk_id: int, file_id: int, start: int, end: int, symbol: str | None = None,
        semantic: bool = True, score: float = 0.5) -> dict[str, object]:
    base: dict[str, object] = {"id": chunk_id, "file_id": file_id, "start_line": start, "end_line": end,
                               "symbol": symbol, "score": score}
    return base | ({"distance": 1 - score} if semantic else {})


def test_fusion_collapses_overlapping_chunks_of_one_file_and_keeps_the_better_one() -> None:
    semantic = [row(1, 10, 1, 20, score=0.9), row(2, 10, 17, 40, score=0.8), row(3, 11, 1, 5, score=0.4)]
    lexical_ranking = [row(2, 10, 17, 40, semantic=False, score=7.0), row(3, 11, 1, 5, semantic=False, score=2.0)]
    fused = _fused([(SEMANTIC_WEIGHT, semantic), (LEXICAL_WEIGHT, lexical_ranking)], set(), limit=10)
    assert [h["id"] for h in fused] == [2, 3]  # chunk 1 overlaps chunk 2, which ranks higher overall
    best = (SEMANTIC_WEIGHT + LEXICAL_WEIGHT) * FIRST_PLACE
    # Scores are min-max normalised in each ranking: chunk 2 is 0.8 of the way from 0.4 to 0.9, and first lexically.
    assert fused[0]["score"] == pytest.approx((SEMANTIC_WEIGHT * 0.8 + LEXICAL_WEIGHT) * FIRST_PLACE / best)
    assert fused[1]["score"] == 0.0  # last in both


def test_rankings_sure_of_their_firsts_outweigh_a_lukewarm_agreement() -> None:
    # Reciprocal rank fusion put chunk 3 first (second in both rankings, far behind either's first).
    semantic = [row(1, 10, 1, 5, score=0.95), row(3, 12, 1, 5, score=0.45), row(4, 13, 1, 5, score=0.40)]
    lexical_ranking = [row(2, 11, 1, 5, semantic=False, score=5.0), row(3, 12, 1, 5, semantic=False, score=3.0),
                       row(5, 14, 1, 5, semantic=False, score=2.9)]
    fused = _fused([(SEMANTIC_WEIGHT, semantic), (LEXICAL_WEIGHT, lexical_ranking)], set(), limit=10)
    assert [h["id"] for h in fused][:3] == [1, 2, 3]


def test_a_definition_of_a_name_in_the_query_comes_first_with_score_one_at_best() -> None:
    semantic = [row(1, 10, 1, 5), row(2, 11, 1, 5, symbol="Dates.parseHttpDate")]
    lexical_ranking = [row(2, 11, 1, 5, "Dates.parseHttpDate", semantic=False)]
    fused = _fused([(SEMANTIC_WEIGHT, semantic), (LEXICAL_WEIGHT, lexical_ranking)], {"parsehttpdate"}, limit=10)
    assert [h["id"] for h in fused] == [2, 1]
    assert 0 < fused[1]["score"] < fused[0]["score"] < 1
    best = _fused([(SEMANTIC_WEIGHT, [row(2, 11, 1, 5, "parseHttpDate")]),
                   (LEXICAL_WEIGHT, [row(2, 11, 1, 5, "parseHttpDate", semantic=False)])], {"parsehttpdate"}, limit=1)
    assert best[0]["score"] == pytest.approx(1.0)  # results carry it rounded to 6 places


def test_a_qualified_name_with_a_chunk_of_its_own_leaves_its_parts_unnamed() -> None:
    """`GroupInner.step` means that method. The type `GroupInner` is a name by itself (camel case)
    and better placed in both rankings, the function `step` too; neither earns the bonus then."""
    query = "GroupInner.step"
    found = [(1, "GroupInner.step", 0.5), (2, "GroupInner", 0.9), (3, "step", 0.8)]
    near = [{**row(n, 10 + n, 1, 5, s, score=v), "path": "a.py", "kind": "method"} for n, s, v in found]
    matched = [{**row(n, 10 + n, 1, 5, s, semantic=False, score=10 * v), "path": "a.py", "kind": "method"}
               for n, s, v in found]
    terms = lexical.weighted(lexical.query_words(query), {}, 100)
    fused = _fused([(SEMANTIC_WEIGHT, near), (LEXICAL_WEIGHT, matched)], lexical.identifiers(query), limit=10,
                   terms=terms, said=lexical.whole_words(query), qualified=lexical.qualified_names(query))
    assert [h["symbol"] for h in fused][0] == "GroupInner.step", [h["symbol"] for h in fused]


def test_a_method_counts_as_named_by_words_of_the_query_not_by_pieces_of_another_name() -> None:
    """"ObservableMap replace" names ObservableMap.replace; "getContentType of AxiosHeaders" does not name
    AxiosHeaders.get, though splitting getContentType gives "get"."""
    def ranked(query: str, symbols: list[str], said: frozenset[str] | None) -> list[object]:
        """The symbols fused, the last one best in both rankings."""
        terms = lexical.weighted(lexical.query_words(query), {}, 100)
        found = [(n, symbol, 0.4 + 0.5 * n / len(symbols)) for n, symbol in enumerate(symbols, 1)]
        near = [{**row(n, 10 + n, 1, 5, s, score=v), "path": "a.js", "kind": "method"} for n, s, v in found]
        matched = [{**row(n, 10 + n, 1, 5, s, semantic=False, score=10 * v), "path": "a.js", "kind": "method"}
                   for n, s, v in found]
        fused = _fused([(SEMANTIC_WEIGHT, near), (LEXICAL_WEIGHT, matched)], lexical.identifiers(query),
                       limit=10, terms=terms, said=said)
        return [h["symbol"] for h in fused]

    query = "ObservableMap replace keeps key order"
    assert ranked(query, ["ObservableMap.replace", "ObservableMap.merge"], lexical.whole_words(query))[0] \
        == "ObservableMap.replace"
    query = "where are AxiosHeaders shortcuts like getContentType made"
    assert ranked(query, ["AxiosHeaders.get", "buildAccessors"], lexical.whole_words(query))[0] == "buildAccessors"
    assert ranked(query, ["AxiosHeaders.get", "buildAccessors"], None)[0] == "AxiosHeaders.get"  # every term's key


def test_ascii_text_splits_into_the_same_identifiers_as_the_unicode_pattern() -> None:
    import random
    import re

    rng = random.Random(3)
    alphabet = "".join(map(chr, range(128)))
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200))) for _ in range(500)]
    samples += ["def f(x_1):\n\treturn x_1 + __y__", "", " \x1c\x1d\x1e\x1f\x0b\x0c ", "_", "a\x00b"]
    for text in samples:
        assert lexical._identifiers(text) == re.findall(r"\w+", text), repr(text)
    assert lexical._identifiers("naïve café_2 x") == ["naïve", "café_2", "x"]


def test_ascii_pieces_split_into_the_same_camel_case_parts_as_their_shape() -> None:
    import random
    import string

    rng = random.Random(5)
    letters = string.ascii_letters + string.digits
    pieces = ["".join(rng.choice(letters) for _ in range(rng.randrange(1, 24))) for _ in range(5000)]
    pieces += ["HTTPServer", "utf8Decode", "getJSON", "ABC", "abc", "A1b2C3", "x", "9", "XMLHttpRequest2"]
    for piece in pieces:
        assert lexical._camel_parts(piece) == lexical._shaped_parts(piece), piece
    assert lexical._camel_parts("HTTPServer") == ["http", "server"]
    assert lexical._camel_parts("naïveÜber") == lexical._shaped_parts("naïveÜber") == ["naïve", "über"]


def test_the_lexicon_prior_starts_with_its_chunk_count_and_knows_common_code_words() -> None:
    counts = dict(lexical.prior_counts())
    total = counts[""]
    assert total > 1000
    assert all(0 < n <= total for n in counts.values())
    # "self" and "return" are in a large share of code; a made-up name is in none of it.
    assert counts["self"] > total / 10 and counts["return"] > total / 10
    assert "frobnicatequux" not in counts


def test_a_word_common_in_code_weighs_less_than_a_rare_one_in_a_project_too_small_to_tell() -> None:
    """In a project of 20 chunks both words are in 2 of them; the prior says which is common in code."""
    words = [("value", ("value",)), ("justify", ("justify",))]
    prior = {"value": 400.0, "justify": 2.0}
    plain = lexical.weighted(words, {"value": 2, "justify": 2}, 20)
    blended = lexical.weighted(words, {"value": 2, "justify": 2}, 20, prior, 1000.0)
    assert plain[0].idf == plain[1].idf
    assert blended[0].idf < blended[1].idf / 2


def test_a_large_projects_own_counts_outweigh_the_prior() -> None:
    """In 200,000 chunks a word the prior calls rare but that the project holds everywhere stays common."""
    words = [("observable", ("observable",)), ("justify", ("justify",))]
    prior = {"observable": 1.0, "justify": 1.0}
    blended = lexical.weighted(words, {"observable": 50_000, "justify": 20}, 200_000, prior, 1000.0)
    plain = lexical.weighted(words, {"observable": 50_000, "justify": 20}, 200_000)
    assert blended[0].idf == pytest.approx(plain[0].idf, rel=0.01)
    assert blended[0].idf < blended[1].idf / 3
