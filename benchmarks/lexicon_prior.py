"""Build domain/data/lexicon_prior.tsv.gz: how common each lexeme is in code at large.

    python benchmarks/lexicon_prior.py [--cache DIR] [--out FILE]

BM25 weighs a query word by how few chunks hold it. In a small repository those counts say little: in
a project of 150 chunks, "value" and "observable" may each be in a handful, and so look as rare as the
one name a question means. Search blends each project's own counts with this prior (`domain.lexical`,
`PRIOR_CHUNKS`), which a large project outweighs.

The prior is counted the way a project's lexicon is: the sources below are indexed in-process with
the hashing embedder (the lexemes do not depend on the embedder), and the lexicon's counts summed over
them are written out, lexemes of fewer than MIN_CHUNKS chunks left out. The sources are Python,
JavaScript/TypeScript, Go, Rust and C libraries from the package registries (Debian's for Go and Rust;
`apt-get update` first), none of them a corpus that benchmarks/corpora.py or benchmarks/retrieval.py
measures (rich, mobx, axios, chi, the standard library; the Go sources were chosen before chi was).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora  # noqa: E402
import retrieval  # noqa: E402

#: (registry, package, version, directories of the archive that are indexed). Debian's packages bring
#: Go and Rust libraries' sources (its -dev packages ship them), psutil C as well as Python.
SOURCES = [
    ("pypi", "requests", "2.32.3", ["src", "tests"]),
    ("pypi", "flask", "3.1.0", ["src", "tests"]),
    ("pypi", "click", "8.1.7", ["src", "tests"]),
    ("pypi", "werkzeug", "3.1.3", ["src", "tests"]),
    ("pypi", "httpx", "0.28.1", ["httpx", "tests"]),
    ("pypi", "attrs", "24.2.0", ["src", "tests"]),
    ("pypi", "jinja2", "3.1.4", ["src", "tests"]),
    ("pypi", "psutil", "6.1.0", ["psutil"]),
    ("npm", "rxjs", "7.8.1", ["src"]),
    ("npm", "preact", "10.25.0", ["src", "hooks/src", "compat/src"]),
    ("npm", "express", "4.21.1", ["lib"]),
    ("npm", "immer", "10.1.1", ["src"]),
    ("npm", "redux", "5.0.1", ["src"]),
    ("debian", "golang-github-spf13-cobra-dev", "1.6.1-1", ["usr/share/gocode/src/github.com/spf13/cobra"]),
    ("debian", "golang-github-gorilla-mux-dev", "1.8.0-1", ["usr/share/gocode/src/github.com/gorilla/mux"]),
    ("debian", "golang-github-sirupsen-logrus-dev", "1.9.0-1", ["usr/share/gocode/src/github.com/sirupsen/logrus"]),
    ("debian", "golang-github-gin-gonic-gin-dev", "1.8.1-1", ["usr/share/gocode/src/github.com/gin-gonic/gin"]),
    ("debian", "librust-clap-dev", "4.0.32-1", ["usr/share/cargo/registry/clap-4.0.32/src"]),
    ("debian", "librust-serde-dev", "1.0.152-2", ["usr/share/cargo/registry/serde-1.0.152/src"]),
    ("debian", "librust-tokio-dev", "1.24.2-1", ["usr/share/cargo/registry/tokio-1.24.2/src/sync"]),
]
#: Lexemes held by fewer chunks than this are left out (a lexeme the prior lacks counts as in none).
MIN_CHUNKS = 2
OUT = Path(__file__).resolve().parent.parent / "domain" / "data" / "lexicon_prior.tsv.gz"


def trees(cache: Path, work: Path) -> list[Path]:
    """Each source's indexed directories, copied under `work`."""
    found = []
    for registry, package, version, include in SOURCES:
        extracted = corpora.fetch({"registry": registry, "package": package, "version": version}, cache)
        # A Debian package's files stand at their installed paths; an sdist or npm tarball has one top folder.
        root = extracted if registry == "debian" else next(p for p in extracted.iterdir() if p.is_dir())
        tree = work / f"{package}-{version}"
        for sub in include:
            shutil.copytree(root / sub, tree / sub)
        found.append(tree)
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--cache", default="~/.cache/codesearch-corpora", help="downloaded and extracted packages")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cs-prior-"))
    os.environ["CODESEARCH_HOME"] = str(work / "home")
    from domain.database import database_url, migrate, stop_embedded
    from domain.settings import Settings
    from domain.store import Store

    settings = Settings()
    store = None
    try:
        sources = trees(Path(args.cache).expanduser(), work / "trees")
        url = database_url(settings)
        migrate(url)
        store = Store(url)
        for tree in sources:
            retrieval.index(store, tree, "hashing", "lexicon-prior")
        rows = store._all("SELECT lexeme, sum(chunks)::bigint AS n FROM lexicon GROUP BY lexeme ORDER BY lexeme")
        total = next(int(r["n"]) for r in rows if r["lexeme"] == "")
        kept = [r for r in rows if r["lexeme"] and int(r["n"]) >= MIN_CHUNKS]
        text = f"\t{total}\n" + "".join(f"{r['lexeme']}\t{r['n']}\n" for r in kept)
        with open(args.out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as out:
            out.write(text.encode("utf-8"))  # mtime 0: the same counts give the same bytes
        print(f"{args.out}: {len(kept)} lexemes of {len(rows) - 1}, {total} chunks, {len(sources)} sources")
    finally:
        if store is not None:
            store.close()
        if not settings.database_url:
            stop_embedded(settings)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
