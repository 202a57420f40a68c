"""How a job's files are cut into batches."""

from __future__ import annotations

from domain.discovery import DiscoveredFile
from domain.indexing import split_batches
from domain.settings import Settings


def files(n: int, size: int = 100) -> list[DiscoveredFile]:
    return [DiscoveredFile(f"f{i:05d}.py", size, i) for i in range(n)]


def test_a_small_job_still_gets_a_batch_for_every_worker_thread() -> None:
    batches = split_batches(files(60), max_files=32, max_bytes=10**9, min_count=16)
    assert len(batches) == 15 and {len(b) for b in batches} == {4}
    assert [e[0] for b in batches for e in b] == [f.path for f in files(60)]  # every file once, in order


def test_a_large_job_is_cut_by_the_file_and_byte_caps() -> None:
    assert {len(b) for b in split_batches(files(1000), max_files=32, max_bytes=10**9, min_count=16)} == {32, 8}
    assert {len(b) for b in split_batches(files(1000, size=300), max_files=32, max_bytes=3000, min_count=16)} == {10}
    assert len(split_batches(files(60), max_files=32, max_bytes=10**9)) == 2  # no minimum


def test_a_small_job_of_unequal_files_is_cut_into_batches_of_about_equal_bytes() -> None:
    sizes = [100] * 40 + [5000] + [100] * 19  # one file as large as all the others together
    found = [DiscoveredFile(f"f{i:05d}.py", size, i) for i, size in enumerate(sizes)]
    batches = split_batches(found, max_files=32, max_bytes=10**9, min_count=16)
    weights = [sum(e[1] for e in b) for b in batches]
    assert [("f00040.py", 5000, 40)] in batches  # the large file alone
    assert max(w for w in weights if w != 5000) <= 4 * 10_000 // 60 + 100  # 4 files of average size
    assert [e[0] for b in batches for e in b] == [f.path for f in found]


def test_the_minimum_batch_count_is_a_setting_of_sixteen_by_default() -> None:
    assert Settings.model_fields["batch_min_count"].default == 16  # the tests' environment sets 1
    assert Settings(CODESEARCH_BATCH_MIN_COUNT=3).batch_min_count == 3


def test_one_file_is_one_batch_and_none_is_none() -> None:
    assert split_batches(files(1), max_files=32, max_bytes=10, min_count=16) == [[("f00000.py", 100, 0)]]
    assert split_batches([], max_files=32, max_bytes=10) == []


def test_a_file_of_many_chunks_is_embedded_a_slice_at_a_time() -> None:
    from collections.abc import Sequence

    from domain.embedders import HashingEmbedder
    from domain.indexing import EMBED_SLICE, embed_cached
    from domain.store import Store

    calls: list[int] = []

    class Recording(HashingEmbedder):
        def embed_encoded(self, texts: Sequence[str]) -> list[str]:
            calls.append(len(texts))
            return super().embed_encoded(texts)

    texts = [f"def f{i}(): return {i}" for i in range(2 * EMBED_SLICE + 10)]
    vectors = embed_cached(Store("postgresql:///unused"), Recording(dim=8), texts, {})
    assert calls == [EMBED_SLICE, EMBED_SLICE, 10]
    assert len(vectors) == len(texts) and vectors[3] == embed_cached(
        Store("postgresql:///unused"), HashingEmbedder(dim=8), [texts[3]], {})[0]
