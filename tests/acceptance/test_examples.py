"""docs/examples run against the embedded database and real workers, so they never rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, SAMPLE_REPO, child_env, make_repo

pytestmark = pytest.mark.usefixtures("workers")
EXAMPLES = ROOT / "docs" / "examples"


def run_example(name: str, repo: Path) -> subprocess.CompletedProcess[str]:
    env = child_env(os.environ["DATABASE_URL"])
    env.pop("CODESEARCH_MCP_URL", None)
    return subprocess.run([sys.executable, str(EXAMPLES / name), str(repo)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["start_and_poll.py", "cancel.py", "fire_and_forget.py"])
def test_each_example_runs_to_success(name: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / name.removesuffix(".py"), SAMPLE_REPO)
    done = run_example(name, repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", done.stdout), done.stdout
