"""HashingEmbedder and split_identifiers: deterministic, lexical, always unit vectors."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import token_hashing
from domain.embedders import HashingEmbedder, get_embedder, make_embedder
from domain.lexical import split_identifiers
from domain.settings import Settings


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("parseHttpDate", ["parsehttpdate", "parse", "http", "date"]),
        ("parse_http_date", ["parse_http_date", "parse", "http", "date"]),
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("utf8Decode", ["utf8decode", "utf", "8", "decode"]),
        ("__init__", ["init"]),
        ("a.b(c, d)", ["a", "b", "c", "d"]),
        ("x = x + 1", ["x", "x", "1"]),
        ("naïveÉtat", ["naïveétat", "naïve", "état"]),
        ("  -> ;; ", []),
        ("", []),
    ],
)
def test_split_identifiers_yields_lowercased_identifiers_then_their_parts(text: str, expected: list[str]) -> None:
    assert split_identifiers(text) == expected


def test_the_same_text_always_embeds_to_the_same_vector_even_in_a_new_instance() -> None:
    text = "def parse_http_date(value: str) -> datetime:"
    assert HashingEmbedder().embed([text]) == HashingEmbedder().embed([text])


def test_the_vector_does_not_depend_on_pythons_hash_seed() -> None:
    # A fixed token lands in a fixed bucket in every process, whatever hash() is seeded with.
    code = "from domain.embedders import HashingEmbedder; print(HashingEmbedder().embed(['parseHttpDate x'])[0])"
    runs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout for seed in ("1", "2")}
    assert runs == {f"{HashingEmbedder().embed(['parseHttpDate x'])[0]}\n"}


def test_a_single_token_fills_one_bucket() -> None:
    vector = HashingEmbedder().embed(["x"])[0]
    assert sorted(abs(v) for v in vector)[-2:] == [0.0, 1.0]


def test_vectors_have_256_dimensions_and_unit_norm() -> None:
    embedder = HashingEmbedder()
    vectors = embedder.embed(["class Foo:\n    pass", "SELECT * FROM users", "x"])
    assert embedder.dim == 256
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(_norm(v), 1.0, rel_tol=1e-9) for v in vectors)


def test_empty_input_gives_no_vectors() -> None:
    assert HashingEmbedder().embed([]) == []


def test_text_without_identifiers_gets_a_nonzero_unit_vector() -> None:
    empty, punctuation = HashingEmbedder().embed(["", "(){};"])
    assert math.isclose(_norm(empty), 1.0)
    assert empty == punctuation


def test_texts_sharing_identifier_parts_are_closer_than_unrelated_texts() -> None:
    query, similar, unrelated = HashingEmbedder().embed(
        ["parseHttpDate", "def parse_http_date(header): ...", "socket.listen(backlog)"]
    )
    assert _cosine(query, similar) > _cosine(query, unrelated)
    assert _cosine(query, similar) > 0.5


def test_repeating_a_token_changes_the_vector_sublinearly() -> None:
    once, many = HashingEmbedder().embed(["alpha beta", "alpha alpha alpha alpha beta"])
    assert once != many
    # With linear weights alpha would dominate (4:1); with 1+log(4) ≈ 2.39 it does not.
    assert _cosine(once, many) > 0.9


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_embeds_to_a_finite_unit_vector(text: str) -> None:
    (vector,) = HashingEmbedder().embed([text])
    assert len(vector) == 256
    assert all(math.isfinite(x) for x in vector)
    assert math.isclose(_norm(vector), 1.0, rel_tol=1e-9)


def test_make_embedder_picks_the_hashing_embedder_from_settings() -> None:
    embedder = make_embedder(Settings(CODESEARCH_EMBEDDER="hashing"))  # type: ignore[call-arg]
    assert embedder.model_id == "hashing:v2"


def test_get_embedder_returns_one_shared_instance_per_configuration() -> None:
    hashing = Settings(CODESEARCH_EMBEDDER="hashing")  # type: ignore[call-arg]
    ollama_a = Settings(CODESEARCH_EMBEDDER="ollama", OLLAMA_HOST="http://127.0.0.1:1", CODESEARCH_OLLAMA_MODEL="m")  # type: ignore[call-arg]
    ollama_b = Settings(CODESEARCH_EMBEDDER="ollama", OLLAMA_HOST="http://127.0.0.1:2")  # type: ignore[call-arg]
    assert get_embedder(hashing) is get_embedder(Settings(CODESEARCH_EMBEDDER="hashing"))  # type: ignore[call-arg]
    assert get_embedder(ollama_a) is not get_embedder(ollama_b)
    assert get_embedder(ollama_a).model_id == "ollama:m"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZz_9 .(\n\tAHTTPServerutf8é"), max_size=60))
def test_bytes_tokenize_as_split_identifiers_does(text: str) -> None:
    # The vectorised ASCII tokenizer against the Python one, token hash for token hash.
    found = token_hashing.tokens([text])
    expected = token_hashing.hashed(split_identifiers(text))
    assert sorted(found.hash.tolist()) == sorted(expected.tolist())


def test_texts_embedded_together_get_the_vectors_they_get_alone() -> None:
    texts = ["def parse(x): return x", "", "naïveÉtat = 1", "class HTTPServer: pass", "__"]
    together = HashingEmbedder().embed(texts)
    assert together == [HashingEmbedder().embed([t])[0] for t in texts]
    assert len({tuple(v) for v in together}) == 4  # "" and "__" share the empty bucket


def test_a_thread_never_sees_one_power_table_grown_and_not_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer is held between computing the two tables until the reader has read (or 1 s passed,
    # when the reader correctly waits for the writer): the reader must get two tables of one size.
    import threading

    powers, read = token_hashing._Powers(), threading.Event()
    cumulative = token_hashing._cumulative

    def held(base: int, size: int) -> object:
        if base != token_hashing._P:
            read.wait(1.0)
        return cumulative(base, size)

    monkeypatch.setattr(token_hashing, "_cumulative", held)
    got: list[tuple[int, int]] = []

    def reader() -> None:
        up, down = powers.get(100)
        got.append((len(up), len(down)))
        read.set()

    writer = threading.Thread(target=powers.get, args=(100,))
    writer.start()
    first = threading.Thread(target=reader)
    first.start()
    first.join(5)
    writer.join(5)
    assert got and got[0][0] == got[0][1] > 100


def test_a_large_batch_is_hashed_in_windows_that_bound_the_power_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 texts of ~1 KiB: ~5 windows. The tables grow to the window, not to the batch's ~300 KiB,
    # and a text gets the vector it gets alone whichever window it fell into.
    monkeypatch.setattr(token_hashing, "_powers", token_hashing._Powers())
    texts = [f"def handler_{i}(requestBody, HTTPServer):\n" + "    value = compute_total(x)\n" * 36 for i in range(300)]
    total = sum(len(t) + 1 for t in texts)
    assert total > 4 * token_hashing.WINDOW_BYTES
    together = HashingEmbedder().embed(texts)
    assert len(token_hashing._powers._tables[0]) <= 2 * (token_hashing.WINDOW_BYTES + max(map(len, texts)))
    assert together[::37] == [HashingEmbedder().embed([t])[0] for t in texts[::37]]
