"""Files that hold secrets are never read, whatever a client asks to index.

A prompt-injected client could otherwise index a home directory and search its way to `.env` or
`id_rsa`. Matching is on the file's name (and, for globs with a "/", its root-relative path),
case-insensitive; matches are skipped with the reason "secret". CODESEARCH_SECRET_FILES widens the
list, CODESEARCH_SECRET_FILES_ALLOW narrows it (an allowed name is indexed even if a secret glob
matches it).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

SKIP_REASON = "secret"
SECRET_FILES: tuple[str, ...] = (
    # dotenv files
    ".env", ".env.*", "*.env", ".envrc",
    # private keys, certificates and key stores
    "*.pem", "*.key", "*.crt", "*.cer", "*.der", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", "*.gpg", "*.asc",
    # credential and token files
    ".npmrc", ".pypirc", ".netrc", "_netrc", ".pgpass", ".git-credentials", ".dockercfg", ".htpasswd",
    "credentials", "credentials*.json", "client_secret*.json", "service-account*.json", "*.tfvars",
    "*.tfstate", "secrets.yml", "secrets.yaml", "secrets.json", ".aws/*", ".ssh/*", ".docker/config.json",
    ".kube/config",
)
#: Conventional templates that document settings without holding them.
ALLOWED_FILES: tuple[str, ...] = (".env.example", ".env.sample", ".env.template", "*.env.example")
T = TypeVar("T")


@dataclass(frozen=True)
class SecretPolicy:
    """Which files count as secrets: `patterns` unless a name matches `allowed`."""

    patterns: tuple[str, ...] = SECRET_FILES
    allowed: tuple[str, ...] = ALLOWED_FILES

    @classmethod
    def configured(cls, extra: str = "", allow: str = "") -> SecretPolicy:
        """The built-in lists widened by `extra` and narrowed by `allow` (comma-separated globs)."""
        return cls(SECRET_FILES + _globs(extra), ALLOWED_FILES + _globs(allow))

    def is_secret(self, rel_path: str) -> bool:
        """Whether the file at this root-relative POSIX path must not be read."""
        path = rel_path.lower()
        name = path.rpartition("/")[2]
        return _matches(self.patterns, path, name) and not _matches(self.allowed, path, name)

    def split(self, items: Sequence[T], path_of: Iterable[str]) -> tuple[list[T], int]:
        """The items whose path is not a secret, and how many were."""
        kept = [item for item, path in zip(items, path_of, strict=True) if not self.is_secret(path)]
        return kept, len(items) - len(kept)


def _matches(globs: tuple[str, ...], path: str, name: str) -> bool:
    by_name, by_path = _compiled(globs)
    return bool(by_name.match(name) or by_path.match(path))


@functools.lru_cache(maxsize=16)
def _compiled(globs: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two regexes for a glob list (one per file instead of one fnmatch a glob: discovery of 10k files
    spent 0.4 s here): globs without "/" match the name, the others the path or any path suffix."""
    lowered = [g.lower() for g in globs]
    names = [fnmatch.translate(g) for g in lowered if "/" not in g]
    paths = [fnmatch.translate(p) for g in lowered if "/" in g for p in (g, "*/" + g)]
    return re.compile("|".join(names) or "(?!)"), re.compile("|".join(paths) or "(?!)")


def _globs(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip())
