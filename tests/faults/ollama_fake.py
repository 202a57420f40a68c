"""A small HTTP server that speaks Ollama's /api/embed, and can go down and come back on its port."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

from tests.support import JsonHandler, free_port
from tests.support import fake_vector as shared_fake_vector

MODEL = "fake-embed"
DIM = 64


def fake_vector(text: str) -> list[float]:
    return shared_fake_vector(text, DIM)


class FakeOllama:
    """Records every text it embeds; `stop()` closes the port (connection refused), `start()` reopens it.

    With `down_after = n` it goes down by itself on request n + 1, so a test can fail it mid-job at a
    fixed point however fast the workers are. With `latency_s` every answer takes at least that long,
    as a model's would: a batch then lasts a known minimum however fast the machine is."""

    def __init__(self) -> None:
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.texts: list[str] = []
        self.requests = 0
        self.down_after: int | None = None  # requests served before the server goes down by itself
        self.latency_s = 0.0
        self._stopping: threading.Thread | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def embedded(self) -> list[str]:
        with self._lock:
            return list(self.texts)

    def start(self) -> None:
        if self._stopping is not None:
            self._stopping.join(10)
            self._stopping = None
        self.down_after = None
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def env(self) -> dict[str, str]:
        """Worker environment that points the Ollama embedder here."""
        return {"CODESEARCH_EMBEDDER": "ollama", "OLLAMA_HOST": self.host, "CODESEARCH_OLLAMA_MODEL": MODEL,
                "CODESEARCH_OLLAMA_TIMEOUT_SECONDS": "5"}


def _handler(state: FakeOllama) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/api/embed" or body.get("model") != MODEL:
                self._reply(404, {"error": f'model "{body.get("model")}" not found, try pulling it first'})
                return
            with state._lock:
                state.requests += 1
                going_down = state.down_after is not None and state.requests > state.down_after
                if going_down and state._stopping is None:
                    state._stopping = threading.Thread(target=state.stop, daemon=True)
                    state._stopping.start()
                if not going_down:
                    state.texts.extend(body["input"])
            if going_down:  # drop the connection unanswered; the port closes right after
                self.close_connection = True
                return
            time.sleep(state.latency_s)  # the model's time, not a wait for another thread
            self._reply(200, {"model": MODEL, "embeddings": [fake_vector(t) for t in body["input"]]})

    return Handler
