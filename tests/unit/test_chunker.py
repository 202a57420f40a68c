from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.chunker import Chunk, chunk_lines
from domain.errors import InvalidInput


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def numbered(count: int) -> str:
    return "\n".join(f"line {i}" for i in range(1, count + 1))


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert chunk_lines("") == []
    assert chunk_lines("\n  \n\t\n") == []


def test_line_numbers_are_one_based_and_content_is_exactly_those_lines() -> None:
    text = "\n\nfirst\nsecond\n\n"
    assert chunk_lines(text) == [Chunk(start_line=3, end_line=4, content="first\nsecond")]


def test_crlf_line_endings_are_not_part_of_the_content() -> None:
    chunks = chunk_lines("a = 1\r\nb = 2\r\n")
    assert chunks == [Chunk(start_line=1, end_line=2, content="a = 1\nb = 2")]


def test_windows_never_exceed_max_lines() -> None:
    chunks = chunk_lines(numbered(100), max_lines=10, overlap=0)
    assert [(c.start_line, c.end_line) for c in chunks] == [(i, i + 9) for i in range(1, 100, 10)]


def test_windows_never_exceed_max_chars_unless_one_line_is_longer() -> None:
    text = "\n".join(["x" * 30] * 10 + ["y" * 500] + ["z" * 30] * 10)
    chunks = chunk_lines(text, max_lines=40, max_chars=100, overlap=0)
    long_chunks = [c for c in chunks if len(c.content) > 100]
    assert [c.content for c in long_chunks] == ["y" * 500]
    assert all(len(c.content) <= 100 for c in chunks if c not in long_chunks)


def test_each_window_starts_overlap_lines_before_the_previous_end() -> None:
    chunks = chunk_lines(numbered(30), max_lines=10, overlap=4)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 10), (7, 16), (13, 22), (19, 28), (25, 30)]


def test_a_window_prefers_to_end_at_a_blank_line_and_then_starts_fresh() -> None:
    functions = "\n".join(f"def f{i}():\n    a = {i}\n    return a\n" for i in range(10))
    chunks = chunk_lines(functions, max_lines=10, overlap=4)
    assert all(c.content.startswith("def ") for c in chunks)
    assert all(c.content.endswith("return a") for c in chunks)


def test_a_long_line_after_overlap_still_moves_forward() -> None:
    text = "a\nb\nc\nd\n" + "x" * 300 + "\ne"
    chunks = chunk_lines(text, max_lines=10, max_chars=100, overlap=4)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 4), (5, 5), (6, 6)]


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        chunk_lines("a", max_lines=0)
    with pytest.raises(InvalidInput):
        chunk_lines("a", overlap=-1)


texts = st.lists(
    st.one_of(st.just(""), st.just("   "), st.text(max_size=120), st.text("ab \t{}", max_size=8)),
    max_size=200,
).map("\n".join) | st.text()


@settings(max_examples=300, deadline=None)
@given(
    text=texts,
    max_lines=st.integers(1, 50),
    max_chars=st.integers(1, 400),
    overlap=st.integers(0, 10),
)
def test_chunks_cover_every_non_blank_line_with_exact_ordered_content(
    text: str, max_lines: int, max_chars: int, overlap: int
) -> None:
    lines = lines_of(text)
    chunks = chunk_lines(text, max_lines=max_lines, max_chars=max_chars, overlap=overlap)
    covered: set[int] = set()
    for chunk in chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        assert chunk.content == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert lines[chunk.start_line - 1].strip() and lines[chunk.end_line - 1].strip()
        assert chunk.end_line - chunk.start_line < max_lines
        assert chunk.start_line == chunk.end_line or len(chunk.content) <= max_chars
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    starts = [c.start_line for c in chunks]
    ends = [c.end_line for c in chunks]
    assert starts == sorted(set(starts)) and ends == sorted(set(ends))
    assert {i for i, line in enumerate(lines, 1) if line.strip()} <= covered
