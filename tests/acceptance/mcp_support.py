"""Calling MCP tools the way a client does, and waiting on jobs with a bounded poll."""

from __future__ import annotations

import time
from typing import Any

import anyio
import mcp

FINAL = {"completed", "failed", "cancelled"}


class ToolFailed(Exception):
    """The tool answered with is_error."""


async def call(client: mcp.Client, name: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    result = await client.call_tool(name, args or {}, **kw)
    if result.is_error:
        raise ToolFailed(" ".join(getattr(c, "text", "") for c in result.content))
    assert result.structured_content is not None, f"{name} returned no structured content"
    return dict(result.structured_content)


async def error_of(client: mcp.Client, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert result.is_error, f"{name}({args}) unexpectedly succeeded: {result.structured_content}"
    return " ".join(getattr(c, "text", "") for c in result.content)


async def wait_final(client: mcp.Client, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await call(client, "get_indexing_status", {"job_id": job_id})
        if status["status"] in FINAL:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status['status']} after {timeout_s:.0f} s: {status}")
        await anyio.sleep(0.2)
