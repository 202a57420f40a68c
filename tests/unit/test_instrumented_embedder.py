"""The metrics wrapper around the embedder changes nothing the indexing pipeline can see."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from domain.embedders import HashingEmbedder, line_token_counter
from monitoring.indexing import InstrumentedEmbedder, indexing_metrics


class CountingEmbedder(HashingEmbedder):
    def count_line_tokens(self, lines: Sequence[str]) -> list[int]:
        return [len(line.split()) for line in lines]


def test_it_embeds_like_the_wrapped_embedder_and_keeps_its_token_counter() -> None:
    inner = CountingEmbedder(dim=32)
    wrapped = InstrumentedEmbedder(inner)
    assert (wrapped.model_id, wrapped.dim) == (inner.model_id, 32)
    assert wrapped.embed(["def f(): pass"]) == inner.embed(["def f(): pass"])
    counter = line_token_counter(wrapped)
    assert counter is not None and counter(["a b c"]) == [3]
    assert line_token_counter(InstrumentedEmbedder(HashingEmbedder())) is None


def test_failed_calls_are_counted_by_error_type() -> None:
    class Broken(HashingEmbedder):
        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            raise TimeoutError("slow")

    errors = indexing_metrics().embed_errors.labels("TimeoutError")
    before = errors._value.get()
    with pytest.raises(TimeoutError):
        InstrumentedEmbedder(Broken()).embed(["x"])
    assert errors._value.get() == before + 1


def test_encoded_embedding_is_measured_like_embedding() -> None:
    class Encoding(HashingEmbedder):
        def embed_encoded(self, texts: Sequence[str]) -> list[str]:
            return ["[1,0]" for _ in texts]

    sizes = indexing_metrics().embed_size
    before = sizes._sum.get()
    wrapped = InstrumentedEmbedder(Encoding())
    assert wrapped.embed_encoded(["a", "b", "c"]) == ["[1,0]"] * 3
    assert sizes._sum.get() == before + 3

    class Plain:  # an embedder that can only give floats
        model_id, dim = "plain", 2

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

    assert not hasattr(InstrumentedEmbedder(Plain()), "embed_encoded")


def test_wide_inferences_of_the_inner_embedder_are_counted_once_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    class Widening(HashingEmbedder):
        """Every second call runs 'wide' (as a LocalEmbedder reports it)."""

        def __init__(self) -> None:
            super().__init__(dim=8)
            self.wide_inferences = 5  # from before it was wrapped: not counted
            self._calls = 0
            self._lock = __import__("threading").Lock()

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            with self._lock:
                self._calls += 1
                if self._calls % 2 == 0:
                    self.wide_inferences += 1
            return super().embed(texts)

    counter = indexing_metrics().wide_inferences
    before = counter._value.get()
    wrapped = InstrumentedEmbedder(Widening())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: wrapped.embed([f"x{i}"]), range(40)))
    assert counter._value.get() == before + 20
    InstrumentedEmbedder(HashingEmbedder()).embed(["y"])  # no such attribute: nothing counted
    assert counter._value.get() == before + 20
