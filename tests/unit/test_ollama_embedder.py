"""OllamaEmbedder against a small real HTTP server that speaks Ollama's /api/embed."""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import numpy as np
import pytest

from domain.embedders import OllamaEmbedder
from domain.errors import EmbedderError, EmbedderModelMissing, EmbedderUnavailable
from tests.support import JsonHandler
from tests.support import fake_vector as shared_fake_vector

MODEL = "fake-embed"
DIM = 768


def fake_vector(text: str) -> list[float]:
    return shared_fake_vector(text, DIM)


@dataclass
class FakeOllama:
    """Behaviour knobs and observations shared with the request handler."""

    host: str = ""
    requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    failures_before_success: int = 0
    failure_status: int = 503
    hang: threading.Event | None = None  # when set, requests block until it is set
    reply: object = None  # when set, every request gets this JSON body (status 200)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_requests(self, count: int) -> bool:
        """True once `count` requests have arrived; False after a bounded wait."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.requests >= count, timeout=5)


def _handler(state: FakeOllama) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.arrived:
                state.requests += 1
                failing = state.requests <= state.failures_before_success
                state.arrived.notify_all()
            if state.hang is not None:
                state.hang.wait(timeout=10)
            if self.path != "/api/embed":
                self._reply(404, {"error": "404 page not found"})
            elif failing:
                self._reply(state.failure_status, {"error": "server busy"})
            elif state.reply is not None:
                self._reply(200, state.reply)
            elif body["model"] != MODEL:
                self._reply(404, {"error": f'model "{body["model"]}" not found, try pulling it first'})
            else:
                state.batch_sizes.append(len(body["input"]))
                self._reply(200, {"model": MODEL, "embeddings": [fake_vector(t) for t in body["input"]]})

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    state = FakeOllama()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.host = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    if state.hang is not None:
        state.hang.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _embedder(host: str, model: str = MODEL, batch_size: int = 4, timeout: float = 5.0) -> OllamaEmbedder:
    return OllamaEmbedder(host, model, timeout, batch_size=batch_size, attempts=3, retry_base_delay=0.001)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_texts_are_sent_in_batches_and_come_back_in_order(fake: FakeOllama) -> None:
    texts = [f"text {i}" for i in range(10)]
    vectors = _embedder(fake.host, batch_size=4).embed(texts)
    assert fake.requests == math.ceil(10 / 4)
    assert fake.batch_sizes == [4, 4, 2]
    expected = np.array([fake_vector(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_vectors_are_l2_normalised(fake: FakeOllama) -> None:
    vectors = np.array(_embedder(fake.host).embed(["a", "b"]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_empty_input_sends_no_request(fake: FakeOllama) -> None:
    assert _embedder(fake.host).embed([]) == []
    assert fake.requests == 0


def test_dim_is_discovered_with_one_probe_and_then_cached(fake: FakeOllama) -> None:
    embedder = _embedder(fake.host)
    assert embedder.dim == DIM
    assert embedder.dim == DIM
    assert fake.requests == 1


def test_dim_is_known_without_a_probe_after_an_embedding(fake: FakeOllama) -> None:
    embedder = _embedder(fake.host)
    embedder.embed(["a"])
    assert embedder.dim == DIM
    assert fake.requests == 1


def test_model_id_names_the_ollama_model() -> None:
    assert _embedder("http://127.0.0.1:1").model_id == f"ollama:{MODEL}"


def test_a_missing_model_fails_at_once_telling_how_to_pull_it(fake: FakeOllama) -> None:
    with pytest.raises(EmbedderModelMissing, match="ollama pull no-such-model") as raised:
        _embedder(fake.host, model="no-such-model").embed(["a"])
    assert fake.host in str(raised.value)
    assert fake.requests == 1


def test_a_server_that_is_down_is_unavailable_after_every_attempt() -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(EmbedderUnavailable, match="ollama serve") as raised:
        _embedder(host).embed(["a"])
    assert host in str(raised.value)
    assert "3 attempts" in str(raised.value)


def test_server_errors_are_retried_until_the_server_recovers(fake: FakeOllama) -> None:
    fake.failures_before_success = 2
    vectors = _embedder(fake.host).embed(["a"])
    assert len(vectors) == 1
    assert fake.requests == 3


def test_retries_back_off_exponentially_up_to_the_cap(fake: FakeOllama) -> None:
    fake.failures_before_success = 100
    delays: list[float] = []
    embedder = OllamaEmbedder(
        fake.host, MODEL, 5.0, attempts=5, retry_base_delay=0.2, retry_max_delay=1.0, sleep=delays.append
    )
    with pytest.raises(EmbedderUnavailable):
        embedder.embed(["a"])
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0])
    assert fake.requests == 5


def test_server_errors_that_persist_make_the_embedder_unavailable(fake: FakeOllama) -> None:
    fake.failures_before_success = 100
    with pytest.raises(EmbedderUnavailable, match="server busy"):
        _embedder(fake.host).embed(["a"])
    assert fake.requests == 3


def test_a_rejected_request_is_an_embedder_error_and_not_retried(fake: FakeOllama) -> None:
    fake.failures_before_success = 100
    fake.failure_status = 400
    with pytest.raises(EmbedderError) as raised:
        _embedder(fake.host).embed(["a"])
    assert not isinstance(raised.value, (EmbedderUnavailable, EmbedderModelMissing))
    assert fake.requests == 1


def test_a_server_that_does_not_answer_in_time_is_unavailable(fake: FakeOllama) -> None:
    fake.hang = threading.Event()
    with pytest.raises(EmbedderUnavailable, match="did not answer within 0.05 s"):
        _embedder(fake.host, timeout=0.05).embed(["a"])
    # The client gives up before the server answers, so count arrivals rather than replies.
    assert fake.wait_for_requests(3)
    assert fake.requests == 3


def test_encoded_vectors_are_the_replys_numbers_as_pgvector_text(fake: FakeOllama) -> None:
    texts = [f"text {i}" for i in range(10)]
    encoded = _embedder(fake.host, batch_size=4).embed_encoded(texts)
    assert fake.batch_sizes == [4, 4, 2]
    assert all(v.startswith("[") and v.endswith("]") and " " not in v for v in encoded)
    np.testing.assert_allclose([json.loads(v) for v in encoded], [fake_vector(t) for t in texts], atol=1e-12)


def test_encoded_and_decoded_vectors_point_the_same_way(fake: FakeOllama) -> None:
    embedder = _embedder(fake.host)
    decoded = np.array(embedder.embed(["a", "b"]))
    encoded = np.array([json.loads(v) for v in embedder.embed_encoded(["a", "b"])])
    encoded /= np.linalg.norm(encoded, axis=1, keepdims=True)
    np.testing.assert_allclose(encoded, decoded, atol=1e-6)
    assert _embedder(fake.host).embed_encoded([]) == []


@pytest.mark.parametrize("reply", [
    {"model": MODEL, "embeddings": [[0.5, math.nan]]},
    {"model": MODEL, "embeddings": [[0.5, math.inf]]},
    {"model": MODEL, "embeddings": []},
    {"model": MODEL, "embeddings": [[0.5, 0.5], [0.5, 0.5]]},
    {"model": MODEL, "embeddings": [["0.5", "x"]]},
    {"model": MODEL, "embeddings": [[[0.5]]]},
    {"model": MODEL},
    {"error": "surprise"},
], ids=["nan", "infinity", "none", "too-many", "strings", "nested", "no-embeddings", "other"])
def test_an_encoded_reply_that_is_not_one_list_of_finite_numbers_per_text_is_an_error(
        fake: FakeOllama, reply: object) -> None:
    fake.reply = reply
    with pytest.raises(EmbedderError, match="Ollama at"):
        _embedder(fake.host).embed_encoded(["one text"])


def test_encoded_vectors_of_another_dimension_than_before_are_an_error(fake: FakeOllama) -> None:
    embedder = _embedder(fake.host)
    assert len(json.loads(embedder.embed_encoded(["a"])[0])) == DIM
    fake.reply = {"model": MODEL, "embeddings": [[0.5, 0.5]]}
    with pytest.raises(EmbedderError, match=f"not {DIM}-dimensional"):
        embedder.embed_encoded(["b"])


def test_encoded_embedding_fails_like_embedding(fake: FakeOllama) -> None:
    with pytest.raises(EmbedderModelMissing, match="ollama pull other"):
        _embedder(fake.host, model="other").embed_encoded(["a"])
    with pytest.raises(EmbedderUnavailable, match="gave up after 3 attempts"):
        _embedder(f"http://127.0.0.1:{_closed_port()}").embed_encoded(["a"])
