"""`codesearch estimate PATH` and the MCP tool `estimate_indexing`: a dry run that writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp

from tests.acceptance.mcp_support import call
from tests.support import SAMPLE_REPO, ROOT, make_repo

REPO = {**SAMPLE_REPO, "web/bundle.min.js": "var a=1;\n", "src/net/big.py": "x = 1\n" * 400,
        ".codesearchignore": "docs/\n"}


def _check(result: dict[str, Any], repo: Path) -> None:
    assert result["repo_path"] == str(repo.resolve())
    dirs = {d["directory"]: d for d in result["by_directory"]}
    assert set(dirs) == {".", "src", "web"}  # docs/ is ignored by .codesearchignore
    assert dirs["src"]["files"] == 3 and dirs["src"]["estimated_chunks"] > dirs["web"]["estimated_chunks"]
    assert result["files"] == sum(d["files"] for d in dirs.values())
    assert result["estimated_chunks"] == sum(d["estimated_chunks"] for d in dirs.values())
    assert result["skipped_by_reason"] == {"ignored": 3, "binary": 1, "generated": 1, "undecodable": 1}
    assert "minified" in result["skip_reasons"]["generated"]
    rate = result["embedding_chunks_per_second"]
    assert result["embedder"] == "hashing" and rate > 0  # the suite's embedder
    assert result["estimated_embedding_seconds"] == round(result["estimated_chunks"] / rate, 1)


def test_the_cli_estimates_cost_by_directory_and_reports_skips_in_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", REPO)
    out = subprocess.run([sys.executable, "-m", "mcp_entry", "estimate", str(repo), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    _check(json.loads(out.stdout), repo)
    human = subprocess.run([sys.executable, "-m", "mcp_entry", "estimate", str(repo)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True)
    assert "total" in human.stdout and "skipped 1 generated" in human.stdout


def test_the_mcp_tool_returns_the_same_estimate(tmp_path: Path) -> None:
    from mcp_entry.server import build_server

    repo = make_repo(tmp_path / "repo", REPO)

    async def body() -> None:
        async with mcp.Client(build_server()) as client:
            _check(await call(client, "estimate_indexing", {"repo_path": str(repo)}), repo)
    anyio.run(body)
