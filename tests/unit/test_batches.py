"""How a job's files are cut into batches."""

from __future__ import annotations

from domain.discovery import DiscoveredFile
from domain.indexing import MIN_BATCHES, split_batches


def files(n: int, size: int = 100) -> list[DiscoveredFile]:
    return [DiscoveredFile(f"f{i:05d}.py", size, i) for i in range(n)]


def test_a_small_job_still_gets_a_batch_for_every_worker_thread() -> None:
    batches = split_batches(files(60), max_files=32, max_bytes=10**9)
    assert len(batches) == 15 >= MIN_BATCHES - 1 and {len(b) for b in batches} == {4}
    assert [e[0] for b in batches for e in b] == [f.path for f in files(60)]  # every file once, in order


def test_a_large_job_is_cut_by_the_file_and_byte_caps() -> None:
    assert {len(b) for b in split_batches(files(1000), max_files=32, max_bytes=10**9)} == {32, 8}
    assert {len(b) for b in split_batches(files(1000, size=300), max_files=32, max_bytes=3000)} == {10}


def test_one_file_is_one_batch_and_none_is_none() -> None:
    assert split_batches(files(1), max_files=32, max_bytes=10) == [[("f00000.py", 100, 0)]]
    assert split_batches([], max_files=32, max_bytes=10) == []
