"""Start a job and walk away; look it up later from another session.

    python docs/examples/fire_and_forget.py [REPO_PATH]

Part 1 starts the job, prints its id and disconnects without waiting: the job lives in PostgreSQL
and the workers, not in the MCP session. Part 2 connects again, as a later session would, and lists
the recent jobs. Exits 0 when part 2 finds the job.
"""

from __future__ import annotations

import sys

import anyio

from _target import client, data, repo_path


async def start(repo: str) -> str:
    async with client() as c:
        started = data(await c.call_tool("start_indexing_background", {"repo_path": repo}))
    print(started["job_id"])
    return str(started["job_id"])


async def later(job_id: str) -> int:
    async with client() as c:
        listing = data(await c.call_tool("list_indexing_jobs", {"limit": 5}))
    for job in listing["jobs"]:
        mark = "*" if job["job_id"] == job_id else " "
        print(f"{mark} {job['job_id']}  {job['status']:<9} {job['progress_percentage']:5.1f}%  {job['repo_path']}")
    return 0 if any(job["job_id"] == job_id for job in listing["jobs"]) else 1


async def main() -> int:
    job_id = await start(repo_path())  # part 1: returns as soon as the job is queued
    return await later(job_id)  # part 2: any later session can find the job by listing


if __name__ == "__main__":
    sys.exit(anyio.run(main))
