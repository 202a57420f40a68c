"""Retrieval quality on the running interpreter's standard library: does search find the function a
docstring describes, once that docstring is gone from the index?

    python benchmarks/retrieval.py [--embedders local,hashing] [--modules 150] [--queries 300] [--seed 4]
                                   [--json-out FILE] [--append] [--variant SEMANTIC_WEIGHT=1.2 ...]

Evaluation. The stdlib (sysconfig's 'stdlib', without site-packages/, test/, tests/, idlelib/,
__pycache__/) is shuffled with a fixed seed and the first `--modules` .py files of at most
`--max-file-bytes` become the corpus (copied to a temp dir; the rest of the stdlib is not indexed).
Every public function or method (name not starting with "_") in them whose docstring has at least
8 words, whose first sentence has at least 3 and is unique among those candidates, is a candidate;
`--queries` of them are sampled with the seed (those in files that codesearch's discovery skips,
such as venv/, are then dropped). A query is the docstring's first sentence; the
relevant chunk is the one containing the function's `def` line, the relevant file its file. In the
corpus copy the sampled docstrings are replaced by `""""""` and blank lines (line numbers stay the
same; every file is re-parsed to check), and a query still found verbatim in the corpus is dropped.

Default size. The local model embeds ~5-20 chunks/s on the project's shared 2-core machines, so
the defaults (150 modules of at most 100 kB: ~4,500 chunks; 300 queries) keep one run with both
embedders to about 10 minutes (local-model indexing: ~6-7 of them). Figures from different `--modules`/`--seed` are not comparable.

Measured, per embedder (each its own index build, in-process: plan_job and index_batch as the
actors run them) and mode (lexical, semantic, hybrid; `domain.search.search`, limit 10):
Recall@1/5/10 and MRR@10 at chunk and file level, and the median query latency; plus BM25
baselines (rank-bm25, tokens from `domain.lexical.terms`) over whole files (what an agent's keyword
search gives; the issue's baseline) and over chunks cut as codesearch cuts them. `--variant NAME=VALUE,...` re-runs hybrid with search-module constants
changed (FIRST_PLACE, CANDIDATES_PER_RESULT, EXACT_BONUS_RANKINGS, SEMANTIC_WEIGHT, LEXICAL_WEIGHT); chunking knobs are settings
(CODESEARCH_CHUNK_MAX_TOKENS, ...) read from the environment. Prints one JSON object; `--append`
adds the table to docs/benchmarks.md. Not a test: figures vary with the machine and the Python.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests", "idlelib", "__pycache__"})
MIN_DOC_WORDS, MIN_QUERY_WORDS = 8, 3
KS = (1, 5, 10)
LIMIT = 10
MODES = ("lexical", "semantic", "hybrid")
KNOBS = ("FIRST_PLACE", "CANDIDATES_PER_RESULT", "EXACT_BONUS_RANKINGS", "SEMANTIC_WEIGHT", "LEXICAL_WEIGHT")


@dataclass(frozen=True)
class Target:
    """One query and where its answer is."""

    path: str  # relative to the corpus root
    symbol: str
    def_line: int  # 1-based line of `def`
    doc_lines: tuple[int, int]  # 1-based first and last line of the docstring
    query: str


# -- building the evaluation ---------------------------------------------------------------------

def stdlib_modules(stdlib: Path, max_bytes: int) -> list[str]:
    """Relative paths of the stdlib's .py files (sorted), excluded directories and big files left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            if name.endswith(".py") and path.stat().st_size <= max_bytes:
                found.append(str(path.relative_to(stdlib)))
    return sorted(found)


def first_sentence(doc: str) -> str:
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
    return re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]


def candidates(path: str, text: str) -> list[Target]:
    """The public functions of one file whose docstring can be blanked and makes a query."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.split("\n")
    found = []
    for scope, node in _functions(tree, ""):
        doc = ast.get_docstring(node, clean=False)
        if node.name.startswith("_") or doc is None or len(doc.split()) < MIN_DOC_WORDS:
            continue
        expr = node.body[0]
        start, end = expr.lineno, expr.end_lineno or expr.lineno
        head = lines[start - 1].encode()[: expr.col_offset].decode(errors="replace")
        tail = lines[end - 1].encode()[expr.end_col_offset or 0:].decode(errors="replace")
        query = first_sentence(doc)
        if start > node.lineno and not head.strip() and not tail.strip() and len(query.split()) >= MIN_QUERY_WORDS:
            found.append(Target(path, scope + node.name, node.lineno, (start, end), query))
    return found


def _functions(node: ast.AST, scope: str) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((scope, child))
            found += _functions(child, f"{scope}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            found += _functions(child, f"{scope}{child.name}.")
        else:
            found += _functions(child, scope)
    return found


def blanked(text: str, targets: list[Target]) -> str:
    """`text` with the targets' docstrings replaced by an empty one plus blank lines (same line count)."""
    lines = text.split("\n")
    for t in targets:
        first, last = t.doc_lines
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        lines[first - 1] = indent + '""""""'
        for n in range(first, last):
            lines[n] = ""
    out = "\n".join(lines)
    ast.parse(out)  # a blanking that breaks the file is a bug here, not a result
    return out


def build_corpus(stdlib: Path, corpus: Path, args: argparse.Namespace) -> tuple[list[Target], dict[str, Any]]:
    """Write the seeded subset, sampled docstrings blanked, into `corpus`; return the queries."""
    rng = random.Random(args.seed)
    modules = stdlib_modules(stdlib, args.max_file_bytes)
    rng.shuffle(modules)
    chosen = sorted(modules[: args.modules])
    texts = {p: (stdlib / p).read_text(encoding="utf-8", errors="replace") for p in chosen}
    pool = [t for p in chosen for t in candidates(p, texts[p])]
    counts = Counter(t.query.lower() for t in pool)
    unique = [t for t in pool if counts[t.query.lower()] == 1]
    sampled = rng.sample(unique, min(args.queries, len(unique)))
    by_file: dict[str, list[Target]] = {}
    for t in sampled:
        by_file.setdefault(t.path, []).append(t)
    flat = {}
    for p in chosen:
        out = blanked(texts[p], by_file.get(p, []))
        (corpus / p).parent.mkdir(parents=True, exist_ok=True)
        (corpus / p).write_text(out, encoding="utf-8")
        flat[p] = " ".join(out.split()).lower()
    kept = [t for t in sampled if not any(" ".join(t.query.split()).lower() in f for f in flat.values())]
    indexed = set(indexed_files(corpus))
    findable = [t for t in kept if t.path in indexed]
    meta = {"stdlib": str(stdlib), "modules": len(chosen), "indexed_modules": len(indexed),
            "candidates": len(unique), "sampled": len(sampled),
            "dropped_verbatim_elsewhere": len(sampled) - len(kept),
            "dropped_not_indexed": len(kept) - len(findable), "queries": len(findable)}
    return sorted(findable, key=lambda t: (t.path, t.def_line)), meta


def indexed_files(corpus: Path) -> list[str]:
    """The corpus files codesearch indexes (its discovery skips some stdlib directories, such as venv/)."""
    from domain.discovery import discover
    from domain.settings import Settings

    return [f.path for f in discover(corpus, max_file_bytes=Settings().max_file_bytes).files]


# -- indexing and searching ----------------------------------------------------------------------

def index(store: Any, corpus: Path, embedder_name: str, project: str,
          force: bool = False) -> tuple[Any, dict[str, Any]]:
    """Index the corpus in-process as the actors would (`force`: force_reindex); returns the embedder
    and what the job did."""
    from domain import indexing, jobs
    from domain.embedders import make_embedder
    from domain.settings import Settings

    settings = Settings(CODESEARCH_EMBEDDER=embedder_name)
    embedder = make_embedder(settings)
    started = time.perf_counter()
    status, _ = jobs.create_job(store, str(corpus), project, force, "benchmark")
    batches = indexing.plan_job(store, settings, embedder, status.job_id) or []
    for n in batches:
        indexing.index_batch(store, settings, embedder, status.job_id, n)
        store.aggregate_job(status.job_id)
        _log(f"{embedder_name}: batch {n + 1}/{len(batches)}, {time.perf_counter() - started:.0f} s")
    if not batches:
        store.aggregate_job(status.job_id)
    final = jobs.get_job(store, status.job_id)
    # as the aggregating actor does
    indexing.refresh_statistics(store, store.get_job(status.job_id)["repository_id"], final.chunks_created)
    return embedder, {"status": final.status, "files": final.files_indexed, "chunks": final.chunks_created,
                      "index_s": round(time.perf_counter() - started, 1),
                      "chunk_max_tokens": settings.chunk_max_tokens, "chunk_max_lines": settings.chunk_max_lines}


def ranks(store: Any, embedder: Any, project: str, targets: list[Target], mode: str) -> dict[str, Any]:
    """Per query: the 1-based rank of the relevant chunk and of the relevant file (None: not in the top 10)."""
    from domain.search import search

    chunk, file, latency = [], [], []
    for t in targets:
        started = time.perf_counter()
        hits = search(store, embedder, t.query, project, limit=LIMIT, mode=mode).results
        latency.append((time.perf_counter() - started) * 1000)
        chunk.append(_first(h.file_path == t.path and h.start_line <= t.def_line <= h.end_line for h in hits))
        file.append(_first(h.file_path == t.path for h in hits))
    return {"chunk": chunk, "file": file, "median_ms": round(statistics.median(latency), 1)}


Doc = tuple[str, int, int, str]  # path, first line, last line, text


def bm25_ranks(corpus: Path, targets: list[Target]) -> dict[str, dict[str, Any]]:
    """Keyword baselines (rank-bm25's Okapi defaults, terms of `domain.lexical`): over whole files, and
    over the chunks codesearch cuts with its default sizes (estimated tokens), path and symbol included."""
    files, chunks = bm25_documents(corpus)
    over_files = _bm25(files, targets)
    del over_files["chunk"]  # a whole file is not a chunk
    return {"bm25_files": over_files, "bm25_chunks": _bm25(chunks, targets)}


def bm25_documents(corpus: Path) -> tuple[list[Doc], list[Doc]]:
    """The BM25 baselines' documents: the files codesearch indexes, and the chunks it cuts of them."""
    from domain.chunking import Limits, chunk_file
    from domain.discovery import language_for
    from domain.settings import Settings

    settings = Settings()
    limits = Limits(max_tokens=settings.chunk_max_tokens, max_lines=settings.chunk_max_lines)
    files: list[Doc] = []
    chunks: list[Doc] = []
    for path in indexed_files(corpus):
        text = (corpus / path).read_text(encoding="utf-8")
        files.append((path, 1, text.count("\n") + 1, f"{path}\n{text}"))
        for c in chunk_file(text, language_for(path, text[:200].split("\n", 1)[0]), limits,
                            window_lines=settings.chunk_max_lines, window_chars=settings.chunk_max_chars,
                            overlap=settings.chunk_overlap_lines):
            chunks.append((path, c.start_line, c.end_line, f"{path}\n{c.symbol or ''}\n{c.content}"))
    return files, chunks


def bm25_top(docs: list[Doc], queries: list[str]) -> tuple[list[list[Doc]], float]:
    """Each query's top `LIMIT` of `docs` by BM25 (ties in document order), and the median ms a query."""
    import numpy as np
    from rank_bm25 import BM25Okapi

    from domain.lexical import terms

    bm25 = BM25Okapi([terms(d[3]) for d in docs])
    tops, latency = [], []
    for query in queries:
        started = time.perf_counter()
        tops.append([docs[i] for i in np.argsort(-bm25.get_scores(terms(query)), kind="stable")[:LIMIT]])
        latency.append((time.perf_counter() - started) * 1000)
    return tops, round(statistics.median(latency), 1) if latency else 0.0


def _bm25(docs: list[Doc], targets: list[Target]) -> dict[str, Any]:
    """Chunk and file ranks of each target among `docs`."""
    tops, median_ms = bm25_top(docs, [t.query for t in targets])
    chunk = [_first(p == t.path and lo <= t.def_line <= hi for p, lo, hi, _ in top) for t, top in zip(targets, tops)]
    file = [_first(p == t.path for p, *_ in top) for t, top in zip(targets, tops)]
    return {"chunk": chunk, "file": file, "median_ms": median_ms}


def _first(matches: Any) -> int | None:
    return next((n for n, hit in enumerate(matches, start=1) if hit), None)


def metrics(found: list[int | None]) -> dict[str, float]:
    """Recall@1/5/10 and MRR@10 of a list of ranks."""
    n = len(found) or 1
    out = {f"recall@{k}": round(sum(1 for r in found if r is not None and r <= k) / n, 4) for k in KS}
    out["mrr@10"] = round(sum(1 / r for r in found if r is not None and r <= LIMIT) / n, 4)
    return out


def _knobs(variant: str) -> dict[str, float]:
    pairs = dict(part.split("=", 1) for part in variant.split(","))
    unknown = set(pairs) - set(KNOBS)
    if unknown:
        raise SystemExit(f"unknown search knob(s) {', '.join(sorted(unknown))}; use {', '.join(KNOBS)}")
    return {k: float(v) if "." in v else int(v) for k, v in pairs.items()}


def evaluate(store: Any, corpus: Path, targets: list[Target], args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Results per embedder and mode (plus variants), the index figures, and the per-query ranks."""
    from domain import search as search_module

    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name in args.embedders:
        embedder, built = index(store, corpus, name, f"retrieval-{name}")
        results[name] = {"index": built}
        runs = [(mode, mode, {}) for mode in MODES] + [(f"hybrid[{v}]", "hybrid", _knobs(v)) for v in args.variant]
        for label, mode, knobs in runs:
            saved = {k: getattr(search_module, k) for k in knobs}
            for k, v in knobs.items():
                setattr(search_module, k, v)
            try:
                found = ranks(store, embedder, f"retrieval-{name}", targets, mode)
            finally:
                for k, v in saved.items():
                    setattr(search_module, k, v)
            results[name][label] = {"chunk": metrics(found["chunk"]), "file": metrics(found["file"]),
                                    "median_ms": found["median_ms"]}
            details[f"{name}/{label}"] = found
            _log(f"{name} {label}: {results[name][label]}")
    for label, found in bm25_ranks(corpus, targets).items():
        results[label] = {level: metrics(found[level]) for level in ("chunk", "file") if level in found}
        results[label]["median_ms"] = found["median_ms"]
        details[label] = found
    return results, details


def targets_met(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for the local model: value, threshold, margin (value - threshold), pass."""
    local = results.get("local")
    if local is None:
        return []
    hybrid = local["hybrid"]
    checks = [
        ("hybrid chunk MRR@10 >= lexical", hybrid["chunk"]["mrr@10"], local["lexical"]["chunk"]["mrr@10"]),
        ("hybrid chunk MRR@10 >= semantic", hybrid["chunk"]["mrr@10"], local["semantic"]["chunk"]["mrr@10"]),
        ("hybrid file MRR@10 >= lexical", hybrid["file"]["mrr@10"], local["lexical"]["file"]["mrr@10"]),
        ("hybrid file MRR@10 >= semantic", hybrid["file"]["mrr@10"], local["semantic"]["file"]["mrr@10"]),
        ("hybrid file MRR@10 >= 1.2 x BM25 files", hybrid["file"]["mrr@10"],
         round(1.2 * results["bm25_files"]["file"]["mrr@10"], 4)),
        ("hybrid file Recall@10 >= 0.8", hybrid["file"]["recall@10"], 0.8),
        ("(not in the issue) hybrid chunk MRR@10 >= 1.2 x BM25 chunks", hybrid["chunk"]["mrr@10"],
         round(1.2 * results["bm25_chunks"]["chunk"]["mrr@10"], 4)),
    ]
    return [{"target": name, "value": v, "threshold": t, "margin": round(v - t, 4), "pass": v >= t}
            for name, v, t in checks]


# -- reporting -----------------------------------------------------------------------------------

def markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    rows = ["| embedder | mode | chunk R@1 | R@5 | R@10 | MRR@10 | file R@1 | R@5 | R@10 | MRR@10 | median ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, modes in report["results"].items():
        runs = {f"BM25 over {name[5:]}": modes} if name.startswith("bm25_") else modes
        for label, r in runs.items():
            if label == "index":
                continue
            cells = [str(r[level][m]) if level in r else "" for level in ("chunk", "file")
                     for m in ("recall@1", "recall@5", "recall@10", "mrr@10")]
            rows.append(f"| {'—' if name.startswith('bm25_') else name} | {label} | {' | '.join(cells)} "
                        f"| {r['median_ms']} |")
    built = "; ".join(f"{n}: {m['index']['files']} files, {m['index']['chunks']} chunks in {m['index']['index_s']} s "
                      f"(chunk cap {m['index']['chunk_max_tokens']} tokens, {m['index']['chunk_max_lines']} lines)"
                      for n, m in report["results"].items() if "index" in m)
    checks = "\n".join(f"- {'PASS' if t['pass'] else 'MISS'} {t['target']}: {t['value']} vs {t['threshold']} "
                       f"(margin {t['margin']:+})" for t in report["targets"])
    return (f"\n## Retrieval, {c['date']}, commit {c['commit']}, {c['cores']} cores\n\n"
            f"`{c['command']}` — Python {c['python']} stdlib, seed {c['seed']}: {c['modules']} modules ("
            f"{c['indexed_modules']} indexed), {c['queries']} queries ({c['candidates']} candidates; "
            f"{c['dropped_verbatim_elsewhere']} dropped as found verbatim elsewhere, {c['dropped_not_indexed']} as in a "
            f"file codesearch does not index). Index: {built}.\n\n" + "\n".join(rows) + "\n\n" + checks + "\n")


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    args = _parser().parse_args()
    args.embedders = [e for e in args.embedders.split(",") if e]
    home = tempfile.mkdtemp(prefix="cs-retrieval-")
    os.environ["CODESEARCH_HOME"] = home
    from domain.database import database_url, migrate, stop_embedded
    from domain.settings import Settings
    from domain.store import Store

    settings = Settings()
    corpus = Path(tempfile.mkdtemp(prefix="cs-retrieval-corpus-")) / "stdlib"
    targets, meta = build_corpus(Path(sysconfig.get_paths()["stdlib"]), corpus, args)
    _log(f"corpus {corpus}, CODESEARCH_HOME {home}: {meta}")
    url = database_url(settings)
    store = None
    try:
        migrate(url)
        store = Store(url)
        results, details = evaluate(store, corpus, targets, args)
    finally:
        if store is not None:
            store.close()
        if not settings.database_url:
            stop_embedded(settings)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(corpus.parent, ignore_errors=True)
    config = {**meta, "seed": args.seed, "max_file_bytes": args.max_file_bytes, "limit": LIMIT,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": _commit(),
              "cores": os.cpu_count(), "python": sys.version.split()[0],
              "command": "python benchmarks/retrieval.py " + " ".join(sys.argv[1:])}
    report = {"config": config, "results": results, "targets": targets_met(results)}
    text = json.dumps(report)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.details_out:
        rows = [{**asdict(t), **{k: {"chunk": v.get("chunk", [None] * len(targets))[i], "file": v["file"][i]}
                                 for k, v in details.items()}} for i, t in enumerate(targets)]
        Path(args.details_out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    if args.append:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(markdown(report))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--embedders", default="local,hashing", help="comma-separated: local, hashing")
    p.add_argument("--modules", type=int, default=150, help="stdlib .py files in the corpus")
    p.add_argument("--max-file-bytes", type=int, default=100_000, help="larger stdlib files are left out")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=VALUE,... of search constants for an extra hybrid run (repeatable)")
    p.add_argument("--json-out")
    p.add_argument("--details-out", help="per-query ranks, for looking at misses")
    p.add_argument("--append", action="store_true", help="append the table to docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the corpus copy and CODESEARCH_HOME (with the index)")
    return p


if __name__ == "__main__":
    sys.exit(main())
