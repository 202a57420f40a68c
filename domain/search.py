"""Answering queries from the chunks and embeddings of one project."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from domain import lexical, rerank
from domain.discovery import LANGUAGE_ALIASES, known_languages
from domain.embedders import Embedder
from domain.errors import EmbedderMismatch, InvalidInput
from domain.lexical import QueryTerm
from domain.models import SearchHit, SearchResponse, parse_project_id
from domain.store import Row, SearchFilters, Store

CONTEXT_LINES = 3
MAX_QUERY_CHARS = 2000
MODES = ("hybrid", "semantic", "lexical")
#: Fusion is a convex combination: each ranking's scores (cosine similarity; BM25F) are min-max
#: normalised over its candidates (best 1, worst 0), weighted and summed, so a ranking that is sure of
#: its first candidate (a wide gap to the rest) outweighs one that is not. It replaced reciprocal rank
#: fusion (k=10), which rewards agreement alone: hybrid on the dev questions of benchmarks/corpora.py
#: file MRR@10 .828 -> .844, symbol MRR@10 .729 -> .743; on the stdlib docstring benchmark file MRR@10
#: .858 -> .879 (lexical alone: .876), chunk .538 -> .549 (docs/benchmarks.md, eleventh session).
#: A ranking's best candidate adds weight x FIRST_PLACE: the unit of every bonus below and in `rerank`
#: (what a first place was worth under reciprocal rank fusion, so their tuned weights keep their worth).
FIRST_PLACE = 1 / 11
SEMANTIC_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
#: Each ranking contributes this many candidates per requested result.
CANDIDATES_PER_RESULT = 5
#: A chunk whose symbol is a name in the query counts as if it were first in more rankings of this
#: total weight: more than both rankings together, so the definition of a named identifier comes first
#: (3, as when the semantic ranking weighed 2: what the equal weights were measured with).
EXACT_BONUS_RANKINGS = 3.0
#: Definitions are looked up for at most this many names of one query.
MAX_NAMES = 8
#: Threads for the semantic side of searches (`search`); a search holds one at most.
_SIDES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="search-semantic")
#: Windows of one long definition are one result, at the definition's first window (`_at_definitions`).
GROUP_DEFINITIONS = True
#: Hybrid search reranks its fused candidates by `rerank`'s features.
RERANK = True
#: Kinds of chunk that define a qualifier of the query's qualified names (`_qualifies`).
QUALIFIER_KINDS = frozenset({"class", "interface", "struct", "enum", "trait", "impl", "object", "record", "type"})
#: Query words of natural language match their other forms too (`lexical.forms`).
STEMMING = True


def search(store: Store, embedder: Embedder, query: str, project_id: str, limit: int = 10,
           file_type: str | None = None, directory: str | None = None,
           repository: str | None = None, mode: str = "hybrid", language: str | None = None) -> SearchResponse:
    """The `limit` chunks of the project that best match `query`, best first.

    `hybrid` fuses the semantic ranking (cosine distance of embeddings) and the lexical ranking
    (identifier-aware BM25F) by a convex combination of their normalised scores; a chunk that defines a
    name the query mentions comes first. `score` is that fused score divided by the best possible one
    in the mode, so it lies in (0, 1], higher is better, and means the same in every mode.

    Raises:
        InvalidInput: empty or oversized query, limit outside 1..50, unknown mode, bad filter.
        EmbedderMismatch: semantic or hybrid, and the project's vectors come from another embedder.
    """
    started = time.perf_counter()
    text = _check_query(query, limit)
    chosen = _mode(mode)
    project = parse_project_id(project_id)
    filters = SearchFilters(_suffix(file_type), _prefix(directory), repository or None, _language(language))
    wanted = limit * CANDIDATES_PER_RESULT
    scope = store.search_scope(project, filters.repository)
    repos = [r["id"] for r in scope]
    semantic = None
    if chosen in ("hybrid", "semantic"):
        _check_models(scope, embedder)
        # The semantic side (embedding, then the vector index) runs beside the lexical side on another
        # connection: each waits on PostgreSQL or the model most of its time.
        semantic = _SIDES.submit(_semantic, store, embedder, repos, text, wanted, filters)
    found: list[Row] = []
    terms: list[QueryTerm] = []
    names = lexical.identifiers(text) if chosen != "semantic" else set()
    qualified = lexical.qualified_names(text) if chosen != "semantic" else set()
    if chosen in ("hybrid", "lexical"):
        found, terms = _lexical(store, repos, text, wanted, filters)
    definitions = _definitions(store, repos, names, wanted, filters, qualified)
    rankings: list[tuple[float, list[Row]]] = []
    embed_ms = None
    if semantic is not None:
        nearest, embed_ms = semantic.result()
        rankings.append((SEMANTIC_WEIGHT, nearest))
    if chosen in ("hybrid", "lexical"):
        rankings.append((LEXICAL_WEIGHT, found))
    rows = _at_definitions(store, _fused(rankings, names, limit, definitions,
                                         terms if chosen == "hybrid" and RERANK else [], lexical.whole_words(text),
                                         qualified))
    hits = _with_context(store, rows)
    elapsed = (time.perf_counter() - started) * 1000
    return SearchResponse(query=text, project_id=project, mode=chosen, results=hits, latency_ms=round(elapsed, 2),
                          embedding_ms=embed_ms)


def _semantic(store: Store, embedder: Embedder, repos: list[str], text: str, wanted: int,
              filters: SearchFilters) -> tuple[list[Row], float]:
    """The nearest chunks by embedding, and the milliseconds the query's embedding took."""
    started = time.perf_counter()
    vector = embedder.embed([text])[0]
    embed_ms = round((time.perf_counter() - started) * 1000, 2)
    return (store.semantic_search(repos, embedder.model_id, vector, wanted, filters) if repos else []), embed_ms


def _lexical(store: Store, repos: list[str], text: str, wanted: int,
             filters: SearchFilters) -> tuple[list[Row], list[QueryTerm]]:
    """BM25F over the query's terms, weighed by the lexicon's document frequencies within the searched
    repositories blended with the lexicon prior's (`Store.term_statistics`, `lexical.weighted`). Returns
    the ranking and the query's terms with their IDFs."""
    words = lexical.query_words(text, stemming=STEMMING)
    if not words or not repos:
        return [], []
    lexemes = list(dict.fromkeys(t for _, forms in words for t in forms))
    stats = store.term_statistics(repos, lexemes)
    df = {t: float(n) for t, n in stats.frequencies.items()}
    chunks = float(stats.chunks)
    terms = lexical.weighted(words, df, chunks, stats.prior, stats.prior_chunks)
    total = max([chunks, 1.0, *df.values()])
    plan = lexical.plan([t.key for t in terms], {t.key: _share(t, df, total) for t in terms}, 0.0, total,
                        budget=lexical.CANDIDATE_BUDGET, spelled={t.key: lexical.tsquery_any(t.lexemes) for t in terms})
    return store.lexical_search(repos, plan.match, terms, wanted, filters, cap=2 * lexical.CANDIDATE_BUDGET,
                                average_length=stats.average_lexemes or lexical.TYPICAL_LEXEMES), terms


def _share(term: QueryTerm, df: dict[str, float], total: float) -> float:
    return min(1.0, sum(df.get(t, 0.0) for t in term.lexemes) / total)


def _definitions(store: Store, repos: list[str], names: set[str], wanted: int, filters: SearchFilters,
                 qualified: set[tuple[str, str]] | None = None) -> list[Row]:
    """Chunks defining a name of the query, whatever the rankings hold: a name used in thousands of
    chunks selects no lexical candidates of its own (`lexical.plan`), yet its definition comes first.
    A qualified name is looked up whole, either way it may be written (`Foo.bar`, `Foo::bar`), and
    its qualifier too (what defines `Foo`, for when `bar` has no chunk of its own)."""
    qualified = qualified or set()
    spelled = sorted(names)[:MAX_NAMES]
    for qualifier, member in sorted(qualified)[:MAX_NAMES]:
        spelled += [f"{qualifier}.{member}", f"{qualifier.replace('.', '::')}::{member}", _innermost(qualifier)]
    found = store.definitions(repos, spelled, wanted, filters, cap=2 * lexical.CANDIDATE_BUDGET)
    return [row for row in found if _defines(row["symbol"], names) or _qualifies(row["symbol"], qualified, True)
            or _qualifies(row["symbol"], qualified, False, row["kind"])]


def _fused(rankings: list[tuple[float, list[Row]]], names: set[str], limit: int,
           definitions: list[Row] | None = None, terms: Sequence[QueryTerm] = (),
           said: frozenset[str] | None = None, qualified: set[tuple[str, str]] | None = None) -> list[Row]:
    """Convex combination of the rankings' normalised scores, exact definitions first, reranked by the
    features of `rerank` when query `terms` are given, overlapping chunks collapsed.

    `definitions` join the pool without a rank of their own; the exact-name bonus ranks them. `said`
    are the query's words as written (`lexical.whole_words`): a part of a qualified symbol the query
    names must be one of them, not a piece of another name ("getContentType" does not name `X.get`).
    A `qualified` name of the query (`lexical.qualified_names`) earns the bonus for the chunks whose
    symbol it is (`Itertools::interleave`, not every `interleave`, nor the type `Itertools`, whose
    parts then name nothing alone), or when none in the pool is, for the definitions of its qualifier
    (a small `impl Iterator for Combinations` holds `next` unnamed)."""
    qualified = qualified or set()
    bonus = EXACT_BONUS_RANKINGS if names or qualified else 0
    words = frozenset(t.key for t in terms if said is None or t.key in said)
    best = (sum(weight for weight, _ in rankings) + bonus) * FIRST_PLACE + (rerank.best_bonus() if terms else 0.0)
    fused: dict[int, Row] = {}
    for row in definitions or []:
        fused.setdefault(row["id"], {**row, "fused": 0.0, "semantic": None, "lexical": None})
    for weight, ranking in rankings:
        for row, share in zip(ranking, _shares(ranking)):
            hit = fused.setdefault(row["id"], {**row, "fused": 0.0, "semantic": None, "lexical": None})
            hit["fused"] += weight * share * FIRST_PLACE
            hit["semantic" if "distance" in row else "lexical"] = row["score"]
    whole = bool(qualified) and any(_qualifies(h["symbol"], qualified, True) for h in fused.values())
    if whole:  # `GroupInner.step` means that method: not the type `GroupInner`, nor a function `step`
        names = names - {part for q, m in qualified for part in (_innermost(q), m)}
    for hit in fused.values():
        if (names and _defines(hit["symbol"], names, words)) or (
                qualified and _qualifies(hit["symbol"], qualified, whole, None if whole else hit["kind"])):
            hit["fused"] += bonus * FIRST_PLACE
        if terms:
            hit["fused"] += rerank.bonus(terms, hit["symbol"], hit["path"], hit["kind"])
        hit["score"] = hit["fused"] / best
    ordered = sorted(fused.values(), key=lambda h: (-h["fused"], h["id"]))
    kept: list[Row] = []
    seen: set[tuple[int, str]] = set()
    for hit in ordered:
        key = _definition_key(hit)
        if key in seen:
            continue
        if not any(k["file_id"] == hit["file_id"] and k["start_line"] <= hit["end_line"]
                   and hit["start_line"] <= k["end_line"] for k in kept):
            kept.append(hit)
            if key:
                seen.add(key)
            if len(kept) == limit:
                break
    return kept


def _shares(ranking: list[Row]) -> list[float]:
    """Each row's score min-max normalised over its ranking: 1 for the best, 0 for the worst, 1 for all
    when they are equal (a ranking of one). A floor of 0.3 for the worst changed nothing on dev."""
    scores = [float(r["score"]) for r in ranking]
    lo, hi = min(scores, default=0.0), max(scores, default=0.0)
    return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in scores]


def _definition_key(hit: Row) -> tuple[int, str] | None:
    """(file, symbol) of a chunk that is (a window of) one definition, or None: windows of one long
    definition share it, and are one result (`_at_definitions`)."""
    if not GROUP_DEFINITIONS or not hit["symbol"] or ", " in hit["symbol"] or hit.get("kind") in rerank.NOT_DEFINITIONS:
        return None
    return hit["file_id"], hit["symbol"]


def _at_definitions(store: Store, rows: list[Row]) -> list[Row]:
    """Each result that is a later window of a long definition, moved to the definition's first
    window (its signature and docstring: where a reader starts), keeping its scores."""
    keys = [k for k in map(_definition_key, rows) if k]
    firsts = store.first_windows(keys) if keys else {}
    moved: list[Row] = []
    for row in rows:
        first = firsts.get(_definition_key(row) or (0, ""))
        if first is not None and first["id"] != row["id"]:
            row = {**row, **first}
        if not any(m["id"] == row["id"] for m in moved):
            moved.append(row)
    return moved


def _defines(symbol: str | None, names: set[str], words: frozenset[str] = frozenset()) -> bool:
    """Whether a chunk's symbol (or one of several, ", "-joined) is one of `names`, qualified or not;
    or a qualified symbol all of whose parts the query holds, one of them as a name (`words` are the
    query's terms): "ObservableMap replace" names `ObservableMap.replace` as much as the class."""
    if not symbol:
        return False
    for one in symbol.split(", "):
        whole = one.lower().replace("_", "")
        parts = [p.lower().replace("_", "") for p in re.split(r"\.|::|\s", one) if p]
        if whole in names or (parts and parts[-1] in names):
            return True
        if len(parts) > 1 and any(p in names for p in parts) and all(p in names or p in words for p in parts):
            return True
    return False


def _qualifies(symbol: str | None, qualified: set[tuple[str, str]], whole: bool, kind: str | None = None) -> bool:
    """Whether a chunk's symbol (or one of several) is a qualified name of the query (`whole`: it ends
    with qualifier and member, `Foo.bar` or `pkg.Foo::bar`) or else a type that is its qualifier (a
    class, struct, impl... `Foo`, `impl Iterator for Foo`; not a method `X.Sync` for `sync.Pool`, nor
    a module or namespace, which stands at the top of every file of a Ruby gem for `Rack::Builder`)."""
    if not symbol or not qualified or not (whole or kind in QUALIFIER_KINDS):
        return False
    for one in symbol.split(", "):
        name = one.lower().replace("_", "").replace("::", ".")
        if whole and any(name == f"{q}.{m}" or name.endswith(f".{q}.{m}") for q, m in qualified):
            return True
        last = re.split(r"\.|\s", name)[-1]
        if not whole and any(last == _innermost(q) for q, _ in qualified):
            return True
    return False


def _innermost(qualifier: str) -> str:
    """The type a normalised qualifier ends with: `os.path` -> path, `console` -> console."""
    return qualifier.rpartition(".")[2]


def _mode(mode: str) -> str:
    chosen = mode.strip().lower() if isinstance(mode, str) else ""
    if chosen not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return chosen


def _language(language: str | None) -> str | None:
    if language is None or not language.strip():
        return None
    name = language.strip().lower()
    name = LANGUAGE_ALIASES.get(name, name)
    if name not in known_languages():
        raise InvalidInput(f"language {language!r} is not one codesearch knows; use one of "
                           f"{', '.join(sorted(known_languages()))}")
    return name


def _check_query(query: str, limit: int) -> str:
    text = query.strip() if isinstance(query, str) else ""
    if not text:
        raise InvalidInput("query is empty: describe the code you are looking for, or give an identifier")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not 1 <= limit <= 50:
        raise InvalidInput(f"limit {limit} is out of range 1..50")
    return text


def _suffix(file_type: str | None) -> str | None:
    """`py`, `.py` or `*.py` → `.py`."""
    if file_type is None or not file_type.strip():
        return None
    ext = file_type.strip().lstrip("*").lstrip(".").lower()
    if not ext or "/" in ext or any(c.isspace() for c in ext):
        raise InvalidInput(f"file_type {file_type!r} is not a file extension such as 'py' or '.ts'")
    return "." + ext


def _prefix(directory: str | None) -> str | None:
    """A repository-relative directory as a path prefix ending in '/'."""
    if directory is None or not directory.strip().strip("/").strip():
        return None
    parts = [p for p in directory.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts or directory.strip().startswith("/"):
        raise InvalidInput(f"directory {directory!r} must be relative to the repository root, without '..'")
    return "/".join(parts) + "/" if parts else None


def _check_models(scope: list[Row], embedder: Embedder) -> None:
    others = [r for r in scope if r["embedding_model"] not in (None, embedder.model_id)]
    if others:
        names = ", ".join(f"{r['name']} ({r['embedding_model']})" for r in others[:5])
        raise EmbedderMismatch(
            f"the configured embedder is {embedder.model_id}, but these repositories were indexed with another: "
            f"{names}. Set CODESEARCH_EMBEDDER to match, or re-index them with force_reindex."
        )


def _with_context(store: Store, rows: list[Row]) -> list[SearchHit]:
    spans = [(r["file_id"], max(1, r["start_line"] - CONTEXT_LINES), r["end_line"] + CONTEXT_LINES) for r in rows]
    details, neighbours = store.hit_details([r["id"] for r in rows], spans)
    lines: dict[int, dict[int, str]] = defaultdict(dict)
    for chunk in neighbours:
        for offset, line in enumerate(chunk["content"].split("\n")):
            lines[chunk["file_id"]][chunk["start_line"] + offset] = line
    hits = []
    for r in rows:
        d = details.get(r["id"])
        if d is None:  # re-indexed away between the ranking and this read
            continue
        known = lines[r["file_id"]]
        before = [known[n] for n in range(r["start_line"] - CONTEXT_LINES, r["start_line"]) if n in known]
        after = [known[n] for n in range(r["end_line"] + 1, r["end_line"] + 1 + CONTEXT_LINES) if n in known]
        hits.append(SearchHit(
            file_path=d["path"], repository=d["repository"], repository_path=d["repository_path"],
            language=d["language"], symbol=d["symbol"], kind=d["kind"], start_line=d["start_line"],
            end_line=d["end_line"], score=round(float(r["score"]), 6), content=d["content"],
            semantic_score=_rounded(r.get("semantic")), lexical_score=_rounded(r.get("lexical")),
            context_before="\n".join(before), context_after="\n".join(after), indexed_at=d["indexed_at"],
        ))
    return hits


def _rounded(value: object) -> float | None:
    return round(float(value), 6) if isinstance(value, (int, float)) else None
