"""Batches indexed by several threads of one process share its memory budget for files in flight."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from domain import budget, indexing, jobs
from domain.embedders import Embedder, HashingEmbedder
from domain.settings import Settings
from domain.store import Store
from tests.support import code_corpus, make_repo


class RecordingBudget(budget.MemoryBudget):
    """The real budget, remembering the most it ever had reserved and every reservation's size."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit, max_wait_s=10)
        self.most = 0
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def _note(self, size: int) -> None:
        with self.lock:
            self.sizes.append(size)
            self.most = max(self.most, self.used)

    def try_reserve(self, size: int) -> bool:
        ok = super().try_reserve(size)
        if ok:
            self._note(size)
        return ok

    def reserve(self, size: int) -> None:
        super().reserve(size)
        self._note(size)


class FailingEmbedder(HashingEmbedder):
    def embed_encoded(self, texts: Sequence[str]) -> list[str]:
        raise RuntimeError("the embedder broke")


@pytest.fixture
def store(fresh_db: str):  # type: ignore[no-untyped-def]
    s = Store(fresh_db)
    yield s
    s.close()


def planned(store: Store, settings: Settings, embedder: Embedder, repo: Path) -> tuple[str, list[int]]:
    status, _ = jobs.create_job(store, str(repo), "p1", False)
    batches = indexing.plan_job(store, settings, embedder, status.job_id)
    assert batches
    return status.job_id, batches


def test_threads_indexing_batches_together_stay_within_the_budget_and_give_it_all_back(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = code_corpus(tmp_path / "repo", 48, functions=30)
    (repo / "big.py").write_text("\n".join(f"def big_{k}(x):\n    return x * {k}\n" for k in range(3000)))
    sizes = [p.stat().st_size for p in repo.rglob("*.py")]
    limit = budget.file_cost(max(s for s in sizes if s < 10_000)) * 3  # three small files at once
    recorder = RecordingBudget(limit)
    monkeypatch.setattr(budget, "files_in_flight", recorder)
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=6)
    embedder = HashingEmbedder()
    job_id, batches = planned(store, settings, embedder, repo)
    results: list[indexing.BatchResult] = []
    threads = [threading.Thread(target=lambda part=batches[i::4]: results.extend(
        indexing.index_batch(store, settings, embedder, job_id, n) for n in part)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == len(batches) and {r.status for r in results} == {"completed"}
    assert sum(r.files_indexed for r in results) == 49
    big = budget.file_cost((repo / "big.py").stat().st_size)
    assert big > limit and big in recorder.sizes  # larger than the limit: it ran, alone
    small_most = max(s for s in recorder.sizes if s != big)
    assert recorder.most == big or recorder.most <= limit, recorder.most
    assert small_most <= limit and recorder.used == 0
    with store.transaction() as cur:
        cur.execute("SELECT count(DISTINCT path) AS n FROM chunks")
        assert cur.fetchone()["n"] == 49


def test_a_batch_that_stops_or_fails_gives_its_reservations_back(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = RecordingBudget(10**9)
    monkeypatch.setattr(budget, "files_in_flight", recorder)
    monkeypatch.setattr(indexing, "GROUP_FILES", 1)  # a batch stops between groups: here each file is one
    settings = Settings(CODESEARCH_EMBEDDER="hashing", CODESEARCH_BATCH_MAX_FILES=8)
    repo = code_corpus(tmp_path / "repo", 8, functions=40)
    job_id, batches = planned(store, settings, HashingEmbedder(), repo)
    stops = iter([False, False, True])
    stopped = indexing.index_batch(store, settings, HashingEmbedder(), job_id, batches[0],
                                   should_stop=lambda: next(stops, True))
    assert stopped.status == "released" and stopped.files_indexed == 2
    assert recorder.sizes and recorder.used == 0
    other = make_repo(tmp_path / "other", {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(3)})
    status, _ = jobs.create_job(store, str(other), "p2", False)
    failing = indexing.plan_job(store, settings, HashingEmbedder(), status.job_id)
    assert failing
    reserved = len(recorder.sizes)
    with pytest.raises(RuntimeError, match="the embedder broke"):
        indexing.index_batch(store, settings, FailingEmbedder(), status.job_id, failing[0])
    assert len(recorder.sizes) > reserved and recorder.used == 0
