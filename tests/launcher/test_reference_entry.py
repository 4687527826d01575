"""A reference LauncherConfig's launcher command on fma's image: `python3 launcher.py` in `/app`.

The image copies launcher/reference_main.py to `/app/launcher.py` (Dockerfile). Here a temporary
directory stands for an `/app` that holds only that file, the harder case: a plain
`launcher.py` on the path would hide fma's `launcher` package, in the launcher and in the fork
server it starts (`python -m` in that working directory, `PYTHONPATH=/app` from the Pod).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import httpx
import psutil

from localcluster.processes import ManagedProcess, free_port, wait_until
from tests.controlkit import control_kit
from tests.launcher.support import FAKE_ENTRY, process_tree_gone

ROOT = Path(__file__).resolve().parents[2]


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_the_reference_command_line_runs_fmas_launcher(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(ROOT / "launcher" / "reference_main.py", app / "launcher.py")
    port = free_port()
    argv = [
        sys.executable, "launcher.py",
        "--mock-gpus", "--mock-gpu-count", "2", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "debug",
        # fma's flag, so that the fork server imports a cheap entry instead of vLLM; that the
        # fork server starts at all in this working directory is part of what is tested.
        "--instance-entry", FAKE_ENTRY,
    ]  # fmt: skip
    # As the launcher Pod's environment has it: fma's controller adds the control CA bundle and
    # the Pod's UID to every launcher Pod it creates, reference-style LauncherConfigs included.
    kit = control_kit(tmp_path / "control")
    env = {**os.environ, "PYTHONPATH": str(app), **kit.env("launcher-uid")}
    process = ManagedProcess("reference-entry", argv, log_path=tmp_path / "log", env=env, cwd=app)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("GET /health", lambda: _status(url + "/health") == 200, timeout=60,
                   process=process)  # fmt: skip
        assert httpx.get(url + "/health").json() == {"status": "OK"}
        root = httpx.get(url + "/").json()
        assert root["name"] == "Multi-Instance vLLM Management API"
        wait_until("GET /readyz (the fork server)", lambda: _status(url + "/readyz") == 200,
                   timeout=60, process=process)  # fmt: skip
        listed = httpx.get(url + "/v2/vllm/instances").json()
        assert listed["instances"] == []
        assert httpx.delete(url + "/v2/vllm/instances").status_code == 401  # not the controller
        assert process.pid is not None
        tree = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        assert tree, "no fork server"
    finally:
        code = process.stop(grace_seconds=20)
    # uvicorn ends by re-raising the SIGTERM it handled, after a clean shutdown.
    assert code in (0, -signal.SIGTERM), (tmp_path / "log").read_text()[-2000:]
    wait_until("the fork server to exit", process_tree_gone(tree), timeout=15)
