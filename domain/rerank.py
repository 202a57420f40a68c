"""The reranking stage of hybrid search: features of a fused candidate that neither ranking sees.

Fusion orders candidates by their rankings' normalised scores alone. A question names what it wants in words that
reappear in the name of the code it means ("where is the terminal width detected" ->
`Console.width`, `_get_terminal_size`) and in its path; and it mostly means a definition rather
than the module code between definitions. Each feature adds to the candidate's fused score, in the
same units (the best candidate of a ranking of weight w is worth w x `search.FIRST_PLACE`); the weights were
tuned on the dev halves of the corpora of benchmarks/corpora.py (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from domain import lexical
from domain.lexical import QueryTerm

#: Worth of a symbol whose last part holds every query term (by IDF), of a path that does, and of
#: being a definition (function, method, class...) rather than code between definitions. Of a chunk
#: that holds several definitions, the best-named one counts (the first alone did until 2026-12-08:
#: dev doc comments' hybrid symbol MRR@10 .557 -> .583, dev questions' .662 -> .667).
SYMBOL_WEIGHT = 0.10
PATH_WEIGHT = 0.04
DEFINITION_WEIGHT = 0.02
NOT_DEFINITIONS = frozenset({"code", "section", "window", None})


def best_bonus() -> float:
    """The most the features can add to one candidate."""
    return SYMBOL_WEIGHT + PATH_WEIGHT + DEFINITION_WEIGHT


def bonus(terms: Sequence[QueryTerm], symbol: str | None, path: str, kind: str | None) -> float:
    """What the features add to a candidate's fused score for a query of `terms` (with IDFs)."""
    total = sum(t.idf for t in terms)
    if total <= 0:
        return 0.0
    # a chunk of several small definitions is named by each of them: the best-named one counts
    named = max((_matched(terms, _name_terms(one.replace("::", ".").split(".")[-1])) for one in symbol.split(", ")),
                default=0.0) / total if symbol else 0.0
    located = _matched(terms, _path_terms(path)) / total
    defined = 0.0 if kind in NOT_DEFINITIONS else 1.0
    return SYMBOL_WEIGHT * named + PATH_WEIGHT * located + DEFINITION_WEIGHT * defined


def _matched(terms: Sequence[QueryTerm], found: frozenset[str]) -> float:
    """The IDF of the query terms that `found` holds in one of their forms."""
    return sum(t.idf for t in terms if not found.isdisjoint(t.lexemes))


@lru_cache(maxsize=4096)
def _name_terms(name: str) -> frozenset[str]:
    return frozenset(lexical.terms(name))


@lru_cache(maxsize=4096)
def _path_terms(path: str) -> frozenset[str]:
    return frozenset(lexical.terms(path.rsplit(".", 1)[0]))
