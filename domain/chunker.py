"""Cut a file's text into overlapping windows of whole lines, the unit that gets embedded.

Lines are what `text.split("\\n")` gives after turning CRLF into LF, so line numbers match what
an editor shows; a chunk's content is always exactly its lines, never cut inside a line.
"""

from __future__ import annotations

from typing import NamedTuple

from domain.errors import InvalidInput

# How far back from a full window to look for a nicer place to end it. Small enough that a window
# keeps most of its size, large enough to reach the blank line between two short functions.
_LOOKBACK_LINES = 8


class Chunk(NamedTuple):
    """Lines `start_line`..`end_line` (1-based, inclusive) of a file, joined with "\\n".

    `symbol` is the qualified name of the definition(s) it holds ("Invoice.total", "Foo::bar",
    several joined with ", " when small neighbours were merged); `kind` what they are ("function",
    "method", "class", ..., "code" for module-level code, "section" for a Markdown section).
    """

    start_line: int
    end_line: int
    content: str
    symbol: str | None = None
    kind: str | None = None


def chunk_lines(text: str, *, max_lines: int = 40, max_chars: int = 1500,
                overlap: int = 4) -> list[Chunk]:
    """Split `text` into chunks of at most `max_lines` lines and `max_chars` characters.

    A single line longer than `max_chars` becomes a chunk of its own rather than being cut.
    Windows prefer to end at a blank line or before a top-level line, so chunks tend to hold
    whole definitions. Each window starts `overlap` lines before the previous one ended (less
    for small windows; none after a blank line), always moving forward. Blank lines at a chunk's edges are trimmed and
    all-blank chunks dropped.

    Raises:
        InvalidInput: a limit is not positive or `overlap` is negative.
    """
    if max_lines < 1 or max_chars < 1 or overlap < 0:
        raise InvalidInput("max_lines and max_chars must be positive and overlap not negative")
    lines = text.replace("\r\n", "\n").split("\n")
    chunks: list[Chunk] = []
    start, prev_end = _skip_blank(lines, 0), 0
    while start < len(lines):
        end = _window_end(lines, start, max_lines, max_chars)
        if end <= prev_end:  # overlapped too far to reach new lines (a long line follows)
            start = prev_end
            end = _window_end(lines, start, max_lines, max_chars)
        chunks.append(_make_chunk(lines, start, end))
        start, prev_end = _next_start(lines, start, end, overlap), end
    return chunks


def _next_start(lines: list[str], start: int, end: int, overlap: int) -> int:
    """Where the window after lines[start:end] begins; len(lines) when nothing is left.

    Overlap is only worth it where a window was cut inside a block: after a blank line the next
    window starts fresh. A small window keeps less overlap so that chunks do not mostly repeat.
    """
    following = _skip_blank(lines, end)
    if following >= len(lines) or _is_blank(lines[end - 1]) or following > end:
        return following
    return _skip_blank(lines, end - min(overlap, (end - start - 1) // 2))


def _is_blank(line: str) -> bool:
    return not line.strip()


def _skip_blank(lines: list[str], index: int) -> int:
    """The first index at or after `index` whose line is not blank (len(lines) if none)."""
    while index < len(lines) and _is_blank(lines[index]):
        index += 1
    return index


def _window_end(lines: list[str], start: int, max_lines: int, max_chars: int) -> int:
    """The exclusive end of the window starting at `start` (always past `start`)."""
    cap, size = start + 1, len(lines[start])
    while cap < len(lines) and cap - start < max_lines:
        size += 1 + len(lines[cap])
        if size > max_chars:
            break
        cap += 1
    if cap >= len(lines):
        return len(lines)
    return _nicer_end(lines, start, cap)


def _nicer_end(lines: list[str], start: int, cap: int) -> int:
    """A window end at or before `cap`: after a blank line, else before a top-level line."""
    lowest = max(start + 1, cap - min(_LOOKBACK_LINES, (cap - start) // 2))
    candidates = range(cap, lowest - 1, -1)
    for end in candidates:
        if _is_blank(lines[end - 1]):
            return end
    for end in candidates:
        if _starts_top_level(lines[end]):
            return end
    return cap


def _starts_top_level(line: str) -> bool:
    """Whether a line begins a new top-level statement (not indented, not a closing bracket)."""
    return bool(line) and not line[0].isspace() and line[0] not in ")]}"


def _make_chunk(lines: list[str], start: int, end: int) -> Chunk:
    """The chunk for lines[start:end] minus trailing blank lines (`start` is never blank)."""
    while end > start + 1 and _is_blank(lines[end - 1]):
        end -= 1
    return Chunk(start_line=start + 1, end_line=end, content="\n".join(lines[start:end]))
