"""Start a background indexing job, poll it to a final status, then search.

    python docs/examples/start_and_poll.py [REPO_PATH]

Exits 0 only when the job completed and the search returned at least one result. Needs running
workers (see _target.py for how the server is chosen).
"""

from __future__ import annotations

import sys
import time

import anyio

from _target import client, data, repo_path

FINAL = {"completed", "failed", "cancelled"}
DEADLINE_S = 600  # a bound on the wait, not an expectation: this repository indexes in seconds
POLL_S = 0.5
QUERY = "where are batch results aggregated"


async def main() -> int:
    async with client() as c:
        started = data(await c.call_tool("start_indexing_background", {"repo_path": repo_path()}))
        print(f"job {started['job_id']}: {started['message']}")
        deadline = time.monotonic() + DEADLINE_S
        status = data(await c.call_tool("get_indexing_status", {"job_id": started["job_id"]}))
        while status["status"] not in FINAL:
            if time.monotonic() > deadline:
                print(f"gave up after {DEADLINE_S} s: job is still {status['status']} - are workers running?")
                return 1
            print(f"  {status['status']:<9} {status['progress_percentage']:5.1f}%  {status['progress_message']}")
            await anyio.sleep(POLL_S)
            status = data(await c.call_tool("get_indexing_status", {"job_id": started["job_id"]}))
        print(f"job {status['status']}: {status['progress_message']}")
        if status["status"] != "completed":
            print(f"{status['error_type']}: {status['error_message']}")
            return 1
        found = data(await c.call_tool("search_code", {"query": QUERY, "limit": 5}))
        for hit in found["results"]:
            print(f"{hit['score']:.3f}  {hit['repository']}/{hit['file_path']}:{hit['start_line']}-{hit['end_line']}")
        print(f"{len(found['results'])} results in {found['latency_ms']:.0f} ms")
        return 0 if found["results"] else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
