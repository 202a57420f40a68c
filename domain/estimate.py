"""A dry run of indexing: what a repository would cost, by top-level directory, before spending it."""

from __future__ import annotations

from domain.discovery import SKIP_REASON_HELP, discover, read_text
from domain.indexing import chunks_of
from domain.secrets import SecretPolicy
from domain.models import DirectoryEstimate, IndexEstimate
from domain.paths import validate_repo_path
from domain.settings import Settings

# Chunks embedded per second on a 2-core machine. "local" is measured (docs FACTS: all-MiniLM-L6-v2
# int8 at 256 tokens, batch 8: ~22/s); "ollama" depends on the server's hardware and model and is
# an assumption (nomic-embed-text on a small CPU); "hashing" is a test embedder, effectively free.
EMBED_CHUNKS_PER_SECOND = {"local": 22.0, "ollama": 30.0, "hashing": 5000.0}


def estimate(settings: Settings, repo_path: str) -> IndexEstimate:
    """Discover and chunk a repository as indexing would, without writing or embedding anything.

    Files that discovery keeps but that cannot be decoded as text are counted under "undecodable".

    Raises:
        InvalidInput: a bad repository path.
    """
    root = validate_repo_path(repo_path)
    found = discover(root, max_file_bytes=settings.max_file_bytes, rules=settings.discovery_rules,
                     secrets=SecretPolicy.configured(settings.secret_files, settings.secret_files_allow))
    rate = EMBED_CHUNKS_PER_SECOND[settings.embedder]
    dirs: dict[str, DirectoryEstimate] = {}
    skipped = dict(found.skipped)
    for f in found.files:
        text = read_text(root, f.path, max_file_bytes=settings.max_file_bytes)
        if text is None:
            skipped["undecodable"] = skipped.get("undecodable", 0) + 1
            continue
        top = f.path.split("/", 1)[0] if "/" in f.path else "."
        entry = dirs.setdefault(top, DirectoryEstimate(directory=top))
        entry.files += 1
        entry.bytes += f.size
        entry.estimated_chunks += len(chunks_of(settings, f.path, text))
    for entry in dirs.values():
        entry.estimated_embedding_seconds = round(entry.estimated_chunks / rate, 1)
    by_dir = sorted(dirs.values(), key=lambda d: (-d.estimated_chunks, d.directory))
    chunks = sum(d.estimated_chunks for d in by_dir)
    return IndexEstimate(
        repo_path=str(root), embedder=settings.embedder, embedding_chunks_per_second=rate,
        files=sum(d.files for d in by_dir), bytes=sum(d.bytes for d in by_dir), estimated_chunks=chunks,
        estimated_embedding_seconds=round(chunks / rate, 1), by_directory=by_dir, skipped_by_reason=skipped,
        skip_reasons={r: SKIP_REASON_HELP.get(r, "decoding as UTF-8 (or UTF-16/32 with a BOM) failed")
                      for r in skipped},
    )
