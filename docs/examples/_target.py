"""What the three examples share: which MCP server to talk to, which repository, and how to read a result.

The target is the streamable HTTP endpoint in $CODESEARCH_MCP_URL when it is set (for example the one
`codesearch up` prints, http://127.0.0.1:8765/mcp); otherwise an in-process server built from this
checkout. Either way indexing happens in Dramatiq workers, which must be running against the same
database (`codesearch worker`, or `codesearch up`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import mcp
from mcp_types import CallToolResult

REPO_ROOT = Path(__file__).resolve().parents[2]


def client() -> mcp.Client:
    """An unentered MCP client for the configured target."""
    url = os.environ.get("CODESEARCH_MCP_URL")
    if url:
        return mcp.Client(url)
    from mcp_entry.server import build_server

    return mcp.Client(build_server())


def repo_path() -> str:
    """The repository to index: argv[1] made absolute (the tools refuse relative paths), or this checkout."""
    return str(Path(sys.argv[1]).resolve()) if len(sys.argv) > 1 else str(REPO_ROOT)


def text(result: CallToolResult) -> str:
    """The text of a result: for a tool error, the error message."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


def data(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call.

    Raises:
        SystemExit: the tool reported an error (the message is printed).
    """
    if result.is_error:
        raise SystemExit(f"tool error: {text(result)}")
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def show(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, default=str))
