"""Find the text files of a source tree worth indexing, honouring .gitignore, and read them safely.

Nothing here follows a symlink out of the root or opens a file that is not a regular file: opening
a FIFO blocks forever, and a symlink to `/etc` must not leak into an index.
"""

from __future__ import annotations

import codecs
import functools
import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pathspec

from domain.errors import InvalidInput
from domain.secrets import SKIP_REASON as SECRET, SecretPolicy

SKIP_REASONS = ("ignored", "excluded", "generated", "binary", "too_large", "symlink_outside", "unreadable",
                "special", "undecodable_name", SECRET)
#: What each skip reason means, for `codesearch estimate` and the job's metadata.
SKIP_REASON_HELP = {
    "ignored": ".gitignore, .git/info/exclude, .codesearchignore, or a built-in ignore (VCS, dependencies, build output, lock files, binary extensions)",
    "excluded": "matched CODESEARCH_EXCLUDE, or did not match CODESEARCH_INCLUDE",
    "generated": "minified or generated: a line longer than CODESEARCH_MAX_LINE_CHARS near the top, or a .min.js/.min.css/.map name",
    "binary": "binary content",
    "too_large": "larger than CODESEARCH_MAX_FILE_BYTES",
    "symlink_outside": "a symlink pointing outside the repository",
    "unreadable": "could not be read",
    "special": "not a regular file (FIFO, socket, device)",
    "undecodable_name": "a file or directory name that is not UTF-8: it could not be stored, shown or searched as text",
    SECRET: "a secret (dotenv, private key, certificate, credentials file); see CODESEARCH_SECRET_FILES",
}
_GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".js.map", ".css.map")

_IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", "build", "dist", "target", ".next", ".nuxt",
    ".gradle", ".idea", ".vscode", "coverage", ".cache", ".eggs",
})
_IGNORED_SUFFIXES = frozenset({
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "pdf", "zip", "gz", "bz2", "xz", "7z", "tar",
    "tgz", "so", "dylib", "dll", "exe", "o", "a", "class", "jar", "war", "pyc", "pyo", "woff",
    "woff2", "ttf", "otf", "eot", "mp4", "mp3", "wav", "mov", "avi", "sqlite", "db",
})
# Lock files are text but generated and huge; they drown real code in search results.
_IGNORED_NAMES = frozenset({"package-lock.json", "yarn.lock", "poetry.lock", "Cargo.lock", "uv.lock"})
_SNIFF_BYTES = 8192
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Bytes that plain text is made of; anything else is "odd" for the binary sniff (Perl's -B rule).
_TEXT_BYTES = bytes({7, 8, 9, 10, 11, 12, 13, 27} | set(range(0x20, 0x7F)))

# A layer of ignore rules: the root-relative directory it applies to ("" or "a/b/") and its spec.
_Layer = tuple[str, pathspec.GitIgnoreSpec]


@dataclass(frozen=True)
class Rules:
    """What discovery keeps besides the ignore files: size and line caps, and settings' globs
    (gitignore syntax, matched against the root-relative path)."""

    max_file_bytes: int
    max_line_chars: int = 1000
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def selects(self, rel: str) -> bool:
        """Whether settings' globs let a file through: not excluded, and included if includes are set."""
        if self.exclude and _compiled(self.exclude).match_file(rel):
            return False
        return not self.include or _compiled(self.include).match_file(rel)


@functools.lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


@dataclass(frozen=True)
class DiscoveredFile:
    """A candidate text file; `path` is relative to the root with POSIX separators."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    """The files found (sorted by path) and how many entries were skipped, by reason.

    An ignored directory counts once, not once per file inside it.
    """

    files: list[DiscoveredFile]
    skipped: dict[str, int]

    def changes(self, stored: Mapping[str, tuple[int, int]]) -> Changes:
        """These files against the index's stored (size, mtime_ns) stamps, by path."""
        changed = [f for f in self.files if stored.get(f.path) != (f.size, f.mtime_ns)]
        present = {f.path for f in self.files}
        return Changes(changed, len(self.files) - len(changed), sorted(p for p in stored if p not in present))


@dataclass
class Changes:
    """What differs between a discovery and the index: the same size and mtime mean unchanged (as in
    rsync and make; an edit that keeps both is missed until a forced re-index)."""

    changed: list[DiscoveredFile]  # new, or another size or mtime than stored
    unchanged: int
    missing: list[str]  # stored paths discovery no longer finds


@dataclass(frozen=True)
class Scope:
    """Part of a tree: root-relative files or directories (a directory stands for everything below it).

    A watcher's job covers only what changed; discovery walks down to each of these paths, reading
    every ignore file on the way, so the same rules decide as for the whole tree."""

    paths: frozenset[str]

    @classmethod
    def of(cls, paths: Iterable[str]) -> Scope:
        """Raises: InvalidInput for a path that is absolute, empty or leaves the root ("..")."""
        clean: set[str] = set()
        for raw in paths:
            parts = raw.strip("/").split("/")
            if raw.startswith("/") or not raw.strip("/") or any(p in ("", ".", "..") for p in parts):
                raise InvalidInput(f"not a path relative to the repository root: {raw!r}")
            clean.add("/".join(parts))
        return cls(frozenset(clean))

    @functools.cached_property
    def ancestors(self) -> frozenset[str]:
        """The directories above the paths ("a/" and "a/b/" for "a/b/c")."""
        out: set[str] = set()
        for path in self.paths:
            parts = path.split("/")
            out.update("/".join(parts[:n]) + "/" for n in range(1, len(parts)))
        return frozenset(out)

    def covers(self, path: str) -> bool:
        """Whether a root-relative file is one of the paths or below one of them."""
        if path in self.paths:
            return True
        parts = path.split("/")
        return any("/".join(parts[:n]) in self.paths for n in range(1, len(parts)))


def discover(root: Path, *, max_file_bytes: int, rules: Rules | None = None,
             secrets: SecretPolicy | None = None, known: Mapping[str, tuple[int, int]] | None = None,
             scope: Scope | None = None) -> Discovery:
    """Walk `root` and return its indexable files.

    Honours the root and nested `.gitignore` and `.codesearchignore` files and `.git/info/exclude`
    (a deeper file's rules win, as in git; in one directory `.codesearchignore` wins over
    `.gitignore`), plus a built-in list of tool and dependency directories and binary or lock-file
    names. `rules` adds settings' include/exclude globs and the minified/generated check. Symlinks are never followed: a link resolving outside the root is counted as
    "symlink_outside", any other link as "ignored" (its target, if inside, is found on its own).
    Files that `secrets` (default: the built-in list) names as secrets are dropped as "secret".
    A file whose (size, mtime_ns) equals its stamp in `known` (the index's, read by planning) is kept
    without reading its head again: it passed the binary and generated sniff when it was indexed, and
    the sniff was two thirds of discovery's time (0.33 of 0.49 s for 10k files). So a lowered
    CODESEARCH_MAX_LINE_CHARS reaches unchanged files only with force_reindex, which passes no stamps.
    With a `scope`, only the files it covers are visited (and counted as skipped).

    Raises:
        InvalidInput: `root` is not a directory.
    """
    rules = rules or Rules(max_file_bytes=max_file_bytes)
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise InvalidInput(f"not a directory: {root}")
    files: list[DiscoveredFile] = []
    skipped: Counter[str] = Counter()
    stack: list[tuple[str, str, list[_Layer]]] = [(real_root, "", _exclude_layers(real_root))]
    while stack:
        abs_dir, rel_dir, layers = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except OSError:
            skipped["unreadable"] += 1
            continue
        layers = layers + _gitignore_layer(entries, rel_dir, ".gitignore") + _gitignore_layer(
            entries, rel_dir, ".codesearchignore")
        whole = scope is None or (bool(rel_dir) and scope.covers(rel_dir.rstrip("/")))
        for entry in entries:
            if whole or _in_scope(entry, rel_dir, scope):
                _visit(entry, rel_dir, layers, real_root, rules, known or {}, files, skipped, stack)
    files, skipped[SECRET] = (secrets or SecretPolicy()).split(files, [f.path for f in files])
    files.sort(key=lambda f: f.path)
    return Discovery(files=files, skipped={r: skipped[r] for r in SKIP_REASONS if skipped[r]})


def _visit(entry: os.DirEntry[str], rel_dir: str, layers: list[_Layer], real_root: str,
           rules: Rules, known: Mapping[str, tuple[int, int]], files: list[DiscoveredFile],
           skipped: Counter[str], stack: list[tuple[str, str, list[_Layer]]]) -> None:
    """Classify one directory entry: queue it, keep it, or count why it was skipped."""
    rel = rel_dir + entry.name
    if not entry.name.isascii() and not _utf8(entry.name):
        skipped["undecodable_name"] += 1  # the database takes only text; such a path would fail the job
    elif entry.is_symlink():  # never followed; only where it points decides the reason
        inside = _is_inside(os.path.realpath(entry.path), real_root)
        skipped["ignored" if inside or _is_ignored(rel, layers) else "symlink_outside"] += 1
    elif entry.is_dir(follow_symlinks=False):
        if _is_ignored_dir(entry) or _is_ignored(rel + "/", layers):
            skipped["ignored"] += 1
        else:
            stack.append((entry.path, rel + "/", layers))
    elif _is_ignored_name(entry.name) or _is_ignored(rel, layers):
        skipped["ignored"] += 1
    elif not rules.selects(rel):
        skipped["excluded"] += 1
    else:
        found = _classify_file(entry, rel, rules, known.get(rel))
        if isinstance(found, str):
            skipped[found] += 1
        else:
            files.append(found)


def _in_scope(entry: os.DirEntry[str], rel_dir: str, scope: Scope | None) -> bool:
    """Whether an entry of a directory the scope only passes through is one of its paths or above one."""
    rel = rel_dir + entry.name
    return scope is None or rel in scope.paths or (rel + "/" in scope.ancestors and entry.is_dir(follow_symlinks=False))


def _utf8(name: str) -> bool:
    """Whether a name read from the file system is text (os.fsdecode keeps undecodable bytes as
    lone surrogates, which UTF-8 cannot encode)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _exclude_layers(real_root: str) -> list[_Layer]:
    """The rules in `.git/info/exclude`, which rank below every `.gitignore`."""
    spec = _read_spec(os.path.join(real_root, ".git", "info", "exclude"))
    return [("", spec)] if spec is not None else []


def _gitignore_layer(entries: list[os.DirEntry[str]], rel_dir: str, name: str) -> list[_Layer]:
    """The rules of this directory's ignore file `name`, if it has a regular one."""
    for entry in entries:
        if entry.name == name and entry.is_file(follow_symlinks=False):
            spec = _read_spec(entry.path)
            return [(rel_dir, spec)] if spec is not None else []
    return []


def _read_spec(path: str) -> pathspec.GitIgnoreSpec | None:
    """Compile an ignore file; None if it is missing, unreadable, not regular or has no rules."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())
    except OSError:
        return None
    return spec if any(p.include is not None for p in spec.patterns) else None


def _is_ignored(rel: str, layers: list[_Layer]) -> bool:
    """Whether git would ignore `rel` (a trailing "/" marks a directory); deepest rule wins."""
    for base, spec in reversed(layers):
        if rel.startswith(base):
            include = spec.check_file(rel[len(base):]).include
            if include is not None:
                return include
    return False


def is_builtin_ignored(rel: str) -> bool:
    """Whether a root-relative path lies in a directory discovery always skips (.git, node_modules, ...)."""
    dirs = rel.split("/")[:-1]
    return any(d in _IGNORED_DIRS or d.endswith(".egg-info") for d in dirs)


def _is_ignored_dir(entry: os.DirEntry[str]) -> bool:
    """Whether a directory is a built-in skip: VCS, caches, dependencies, build output."""
    name = entry.name
    if name in _IGNORED_DIRS or name.endswith(".egg-info"):
        return True
    return name == "env" and os.path.isfile(os.path.join(entry.path, "pyvenv.cfg"))


def _is_ignored_name(name: str) -> bool:
    """Whether a file name is a lock file or has a known binary extension."""
    return name in _IGNORED_NAMES or name.rpartition(".")[2].lower() in _IGNORED_SUFFIXES


def _is_inside(real_path: str, real_root: str) -> bool:
    """Whether a resolved path is the root or below it."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _classify_file(entry: os.DirEntry[str], rel: str, rules: Rules,
                   indexed_as: tuple[int, int] | None) -> DiscoveredFile | str:
    """The file if it is a readable, small-enough, hand-written text file, else the skip reason.
    `indexed_as`: the (size, mtime_ns) the index holds for it; unchanged, its head is not sniffed."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return "special"
    if st.st_size > rules.max_file_bytes:
        return "too_large"
    if indexed_as == (st.st_size, st.st_mtime_ns) and not rel.lower().endswith(_GENERATED_SUFFIXES):
        return DiscoveredFile(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)
    head = _read_regular(entry.path, _SNIFF_BYTES)
    if head is None:
        return "unreadable"
    if _looks_binary(head):
        return "binary"
    if rel.lower().endswith(_GENERATED_SUFFIXES) or _has_long_line(head, rules.max_line_chars):
        return "generated"
    return DiscoveredFile(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _has_long_line(head: bytes, max_chars: int) -> bool:
    """Whether the sniffed head holds a line longer than max_chars (bytes approximate characters;
    minified bundles have lines of tens of thousands). A head without any newline counts when it is
    itself longer than max_chars."""
    return max(map(len, head.split(b"\n"))) > max_chars  # in C: a generator cost ~30 µs a file


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to `limit` bytes of a regular file; None if it cannot be opened or is not regular.

    O_NONBLOCK and O_NOFOLLOW guard the race where the file is swapped for a FIFO or a symlink
    between the caller's stat and this open.
    """
    try:
        with open(path, "rb", opener=lambda p, _: os.open(p, _OPEN_FLAGS)) as f:
            return f.read(limit) if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else None
    except (OSError, ValueError):
        return None


def _looks_binary(head: bytes) -> bool:
    """Sniff the first bytes: NUL, or not UTF-8 and over a third odd bytes, means binary."""
    if head.startswith(tuple(bom for bom, _ in _BOMS)):
        return False
    if b"\0" in head:
        return True
    try:
        # final=False: the sniff window may cut a multi-byte character in half.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return False
    except UnicodeDecodeError:
        odd = len(head.translate(None, _TEXT_BYTES))
        return odd * 3 > len(head)


def read_text(root: Path, relpath: str, *, max_file_bytes: int) -> str | None:
    """The decoded text of `root/relpath`, or None if it cannot be indexed as text.

    None when the path escapes the root (directly or through a symlink), is missing, is not a
    regular file, is larger than `max_file_bytes`, or is binary or undecodable. Decoding is
    deliberately strict: UTF-8 (a BOM is dropped), or UTF-16/UTF-32 when a BOM says so. Legacy
    8-bit encodings are not guessed (latin-1 would "decode" any bytes into mojibake), and text
    containing NUL is refused because PostgreSQL text columns cannot hold it.
    """
    real_root = os.path.realpath(root)
    if os.path.isabs(relpath):
        return None
    try:
        real_path = os.path.realpath(os.path.join(real_root, relpath))
    except ValueError:
        return None
    if not _is_inside(real_path, real_root):
        return None
    data = _read_regular(real_path, max_file_bytes + 1)
    if data is None or len(data) > max_file_bytes:
        return None
    return _decode(data)


def _decode(data: bytes) -> str | None:
    """Decode by BOM or as strict UTF-8; None if that fails or the text holds NUL."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8-sig")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return None if "\0" in text else text


_LANGUAGES = {
    "py": "python", "pyi": "python", "js": "javascript", "mjs": "javascript", "cjs": "javascript",
    "jsx": "javascript", "ts": "typescript", "mts": "typescript", "cts": "typescript",
    "tsx": "tsx", "go": "go", "rs": "rust", "java": "java", "c": "c", "h": "c", "cc": "cpp",
    "cpp": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "cs": "csharp",
    "rb": "ruby", "php": "php", "kt": "kotlin", "kts": "kotlin", "swift": "swift",
    "scala": "scala", "sh": "bash", "bash": "bash", "zsh": "bash", "md": "markdown",
    "markdown": "markdown", "yaml": "yaml", "yml": "yaml", "toml": "toml", "json": "json",
    "sql": "sql", "html": "html", "htm": "html", "css": "css", "scss": "css", "less": "css",
    "dockerfile": "dockerfile", "mk": "makefile", "lua": "lua", "pl": "perl", "r": "r",
    "txt": "text", "rst": "text",
}
_FILENAMES = {"dockerfile": "dockerfile", "containerfile": "dockerfile", "makefile": "makefile",
              "gnumakefile": "makefile", "gemfile": "ruby", "rakefile": "ruby"}
_INTERPRETERS = {"python": "python", "node": "javascript", "deno": "typescript", "bash": "bash",
                 "sh": "bash", "zsh": "bash", "dash": "bash", "ksh": "bash", "ruby": "ruby",
                 "php": "php", "perl": "perl", "lua": "lua"}


#: What users call languages, mapped to the names codesearch stores (filters accept either).
LANGUAGE_ALIASES = {"py": "python", "js": "javascript", "ts": "typescript", "golang": "go", "rs": "rust",
                    "c++": "cpp", "cxx": "cpp", "c#": "csharp", "cs": "csharp", "rb": "ruby", "kt": "kotlin",
                    "sh": "bash", "shell": "bash", "md": "markdown", "yml": "yaml", "docker": "dockerfile",
                    "make": "makefile", "plaintext": "text"}


def known_languages() -> frozenset[str]:
    """Every language name `language_for` can give."""
    return frozenset(_LANGUAGES.values()) | frozenset(_FILENAMES.values()) | frozenset(_INTERPRETERS.values()) | {
        "text"}


def language_for(path: str, first_line: str = "") -> str:
    """The language of a file from its name, or from a shebang when it has no extension.

    Unknown files are "text".
    """
    name = path.rpartition("/")[2]
    lower = name.lower()
    stem, dot, ext = lower.rpartition(".")
    if lower in _FILENAMES:
        return _FILENAMES[lower]
    if dot and stem:  # a leading dot (".bashrc") is a hidden name, not an extension
        return _LANGUAGES.get(ext) or _FILENAMES.get(stem, "text")  # "Dockerfile.dev"
    return _shebang_language(first_line)


def _shebang_language(first_line: str) -> str:
    """The language named by a `#!` line ("#!/usr/bin/env python3" is python), else "text"."""
    if not first_line.startswith("#!"):
        return "text"
    words = first_line[2:].split()
    if words and words[0].endswith("/env"):
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not words:
        return "text"
    program = words[0].rpartition("/")[2].rstrip("0123456789.")
    return _INTERPRETERS.get(program, "text")
