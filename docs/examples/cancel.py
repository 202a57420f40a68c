"""Start a forced re-index and cancel it at once.

    python docs/examples/cancel.py [REPO_PATH]

Exits 0 when the job ends up cancelled, or when it had already finished before the cancel arrived
and the tool error says so ("... is already completed; only pending or running jobs can be
cancelled"). Needs running workers only for the second case to be likely; cancelling a pending job
works without them.
"""

from __future__ import annotations

import sys

import anyio

from _target import client, data, repo_path, show, text


async def main(repo: str) -> int:
    async with client() as c:
        started = data(await c.call_tool("start_indexing_background", {"repo_path": repo, "force_reindex": True}))
        job_id = started["job_id"]
        print(f"job {job_id} is {started['status']}; cancelling")
        cancelled = await c.call_tool("cancel_indexing_background", {"job_id": job_id})
        final = data(await c.call_tool("get_indexing_status", {"job_id": job_id}))
        show({k: final[k] for k in ("job_id", "status", "progress_message", "files_indexed", "cancelled_at")})
        if not cancelled.is_error:
            return 0 if final["status"] == "cancelled" else 1
        message = text(cancelled)
        print(f"cancel refused: {message}")
        return 0 if "already" in message and final["status"] in ("completed", "failed") else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, repo_path()))
