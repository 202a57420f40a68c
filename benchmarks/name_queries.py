"""Qualified-name lookups: each method's qualified name, written as code writes it, is the query.

    python benchmarks/name_queries.py --home DIR [--corpora rich,mobx,axios,chi,itertools,rack] [--per-corpus 60]

Agents often search for a name they read elsewhere: `Console.print`, `Itertools::interleave`,
`Mux.ServeHTTP`. For each corpus indexed by benchmarks/corpora.py in `--home` (its "questions"
project, local model), up to `--per-corpus` chunks whose symbol is one qualified name
(`Type.member` or `Type::member`, names unique in the corpus) are sampled with a seed; the query is
that name, with "::" as "." for half of them (people write `PeekNth.next` for Rust too). The answer
is the first line of the chunk. Reported per corpus and mode: symbol Recall@1 and MRR@10.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import corpora, retrieval


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--home", required=True, help="the CODESEARCH_HOME of a benchmarks/corpora.py --home run")
    p.add_argument("--corpora", default=",".join(corpora.CORPORA))
    p.add_argument("--per-corpus", type=int, default=60)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--misses", action="store_true", help="print each query whose answer is not first (stderr)")
    args = p.parse_args()
    os.environ["CODESEARCH_HOME"] = args.home
    from domain.database import database_url
    from domain.embedders import make_embedder
    from domain.search import search
    from domain.settings import Settings
    from domain.store import Store

    store = Store(database_url(Settings()))
    embedder = make_embedder(Settings(CODESEARCH_EMBEDDER="local"))
    out: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for name in args.corpora.split(","):
            project = corpora.project_id(name, "questions", "local")
            rows = store._all(
                """SELECT c.path, c.symbol, min(c.start_line) AS line FROM chunks c JOIN repositories r ON r.id = c.repository_id
                   WHERE r.project_id = %(p)s AND c.symbol ~ '^[A-Za-z_]\\w*(\\.|::)[A-Za-z_]\\w*$'
                   GROUP BY c.path, c.symbol""", {"p": project}, reading=True)
            counts: dict[str, int] = {}
            for r in rows:
                counts[r["symbol"]] = counts.get(r["symbol"], 0) + 1
            unique = sorted((r["path"], r["symbol"], r["line"]) for r in rows if counts[r["symbol"]] == 1)
            rng = random.Random(args.seed)
            sampled = rng.sample(unique, min(args.per_corpus, len(unique)))
            queries = [corpora.Query(f"{path}:{line}", "", symbol.replace("::", ".") if n % 2 else symbol,
                                     (corpora.Answer(path, symbol, line),))
                       for n, (path, symbol, line) in enumerate(sampled)]
            for mode in ("hybrid", "lexical"):
                ranks = [s for _, s in corpora.search_ranks(store, embedder, project, queries, mode)]
                for q, rank in zip(queries, ranks):
                    if args.misses and rank != 1:
                        print(f"miss {name} {mode}: {q.question!r} at {rank}", file=sys.stderr)
                found = retrieval.metrics(ranks)
                out.setdefault(name, {})[mode] = {"queries": len(queries), "symbol_r@1": found["recall@1"],
                                                  "symbol_mrr@10": found["mrr@10"]}
                print(name, mode, out[name][mode], file=sys.stderr)
    finally:
        store.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
