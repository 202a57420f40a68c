"""The Procfile as operators run it: honcho starts the release, web and worker processes against a new
embedded PostgreSQL, a job runs through them, and one SIGTERM stops everything cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import mcp

from tests.acceptance.mcp_support import call, wait_final
from tests.support import ROOT, free_port, make_repo, wait_for

HONCHO = [sys.executable, "-m", "honcho"]


def test_honcho_runs_the_procfile_for_a_real_job_and_stops_it_cleanly(tmp_path: Path) -> None:
    # Not under tmp_path: as root the embedded PostgreSQL runs as `pgserver`, and pytest keeps its temp 0700.
    home = Path(tempfile.mkdtemp(prefix="cs-procfile-"))
    repo = make_repo(Path(tempfile.mkdtemp(prefix="cs-procfile-repo-")), {
        f"lib/mod_{i}.py": f"def compute_{i}(x):\n    return x * {i}\n" for i in range(12)})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    env.update(CODESEARCH_HOME=str(home), CODESEARCH_EMBEDDER="hashing", PYTHONUNBUFFERED="1",
               CODESEARCH_WORKER_METRICS_PORT=str(free_port()), CODESEARCH_WORKER_METRICS_DIR=str(home / "prom"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env_file = tmp_path / "procfile.env"
    env_file.write_text("")  # not the checkout's .env
    base = [*HONCHO, "-e", str(env_file), "-d", str(ROOT), "-f", str(ROOT / "Procfile")]
    log = tmp_path / "honcho.log"
    try:
        release = subprocess.run([*base, "start", "release"], env=env, capture_output=True, text=True, timeout=120)
        assert release.returncode == 0 and "database at revision" in release.stdout, release.stdout + release.stderr
        with log.open("w") as out:
            honcho = subprocess.Popen([*base, "start", "-p", str(free_port()), "web", "worker"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            url = wait_for(lambda: _endpoint(log.read_text()), 60, what="the web process to print its endpoint")
            wait_for(lambda: log.read_text().count("Worker process is ready") >= 2, 60, what="two worker processes")

            async def body() -> None:
                async with mcp.Client(url) as client:
                    started = await call(client, "start_indexing_background", {"repo_path": str(repo)})
                    final = await wait_final(client, started["job_id"])
                    assert final["status"] == "completed" and final["files_indexed"] == 12, final
                    found = await call(client, "search_code", {"query": "compute_7"})
                    assert found["results"][0]["file_path"] == "lib/mod_7.py"
            wait_for(lambda: _answers(url), 30, what="the MCP endpoint")
            anyio.run(body)
        finally:
            honcho.send_signal(signal.SIGTERM)  # honcho forwards it once to each process
            code = honcho.wait(60)
        output = log.read_text()
        assert code == 143, output[-3000:]  # honcho's own exit status after it was sent SIGTERM
        assert "Traceback" not in output and "Killing worker process" not in output, output[-3000:]
        assert len(re.findall(r"worker\.\d+\s+\| .*Worker has been shut down", output)) == 2, output[-3000:]
        doctor = subprocess.run([sys.executable, "-m", "mcp_entry", "doctor", "--json"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        workers = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "workers")
        assert workers["state"] == "warning", workers  # every worker removed its heartbeat on the way out
    finally:
        subprocess.run([sys.executable, "-m", "mcp_entry", "db", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=60)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(repo, ignore_errors=True)


def _endpoint(output: str) -> str | None:
    match = re.search(r"MCP endpoint: (http://\S+/mcp)", output)
    return match.group(1) if match else None


def _answers(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=0.5).close()
        return True
    except OSError:
        return False
