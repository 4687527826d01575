"""Running real launcher processes for tests: start, wait until ready, call, stop, check orphans."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from contract.auth import MODE_ENV, MODE_OFF
from contract.launcher import VllmConfig
from controlauth import ControlToken
from launcher.manager import InstanceManager
from launcher.state import Instance
from localcluster.processes import ManagedProcess, free_port, wait_until
from tests.controlkit import ControlKit

FAKE_ENTRY = "localcluster.testing.fake_instance:serve"
LAUNCHER_UID = "launcher-pod-uid"
"""The UID the launcher believes its Pod has (`FMA_POD_UID`): its control tokens' audience."""


class Launcher:
    """A launcher process under test, with a small HTTP client for its API."""

    def __init__(
        self, process: ManagedProcess, port: int, log_dir: Path, auth: httpx.Auth | None
    ) -> None:
        self.process = process
        self.port = port
        self.log_dir = log_dir
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60, auth=auth)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def put(self, instance_id: str, options: str, **body: Any) -> httpx.Response:
        return self.http.put(f"/v2/vllm/instances/{instance_id}", json={"options": options, **body})

    def get(self, instance_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v2/vllm/instances/{instance_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def wait_phase(self, instance_id: str, phase: str, timeout: float) -> dict[str, Any]:
        state: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal state
            state = self.get(instance_id)
            return bool(state["phase"] == phase)

        wait_until(
            f"instance {instance_id} in phase {phase}",
            reached,
            timeout=timeout,
            interval=0.1,
            process=self.process,
        )
        return state

    def watch_lines(
        self,
        params: dict[str, Any],
        count: int | None = None,
        timeout: float = 30,
        *,
        until: str | None = None,
    ) -> list[Any]:
        """Reads `count` NDJSON lines (or up to an event of type `until`), then disconnects."""
        lines: list[Any] = []
        with self.http.stream(
            "GET", "/v2/vllm/instances/watch", params=params, timeout=timeout
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"] == "application/x-ndjson"
            for line in response.iter_lines():
                if line:
                    lines.append(json.loads(line))
                if count is not None and len(lines) >= count:
                    break
                if until is not None and lines and lines[-1]["type"] == until:
                    break
        return lines

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def process_tree_gone(pids: Sequence[int]) -> Callable[[], bool]:
    def check() -> bool:
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                continue
        return True

    return check


def _argv(port: int, log_dir: Path, args: Sequence[str], entry: str | None) -> list[str]:
    argv = [sys.executable, "-m", "launcher", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--mock-gpus", "--log-dir", str(log_dir), "--probe-interval", "0.2", *args]
    return argv + (["--instance-entry", entry] if entry is not None else [])


@contextmanager
def running_launcher(
    tmp_path: Path,
    *args: str,
    entry: str | None = FAKE_ENTRY,
    control: ControlKit | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> Iterator[Launcher]:
    """Starts `python -m launcher` on a free port; stops it (and checks for orphans) after.

    With `control` the launcher checks control tokens and the test's client signs its calls as
    the controller does; without, it runs with authentication off."""
    port = free_port()
    log_dir = tmp_path / f"launcher-{port}"
    log_dir.mkdir()
    argv = _argv(port, log_dir, args, entry)
    auth_env = control.env(LAUNCHER_UID) if control else {MODE_ENV: MODE_OFF}
    process = ManagedProcess(
        f"launcher-{port}",
        argv,
        log_path=log_dir / "launcher.log",
        env={**os.environ, **auth_env, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )
    process.start()
    signed = ControlToken(control.auth.signer, LAUNCHER_UID) if control else None
    launcher = Launcher(process, port, log_dir, signed)
    try:
        wait_until(
            "launcher /readyz",
            lambda: _ready(launcher.url),
            timeout=ready_timeout,
            interval=0.2,
            process=process,
        )
        yield launcher
    finally:
        tree = [p.pid for p in launcher.descendants()]
        launcher.http.close()
        process.stop(grace_seconds=30)
        deadline = time.monotonic() + 15
        while not process_tree_gone(tree)() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_tree_gone(tree)(), f"processes outlived the launcher: {tree}"


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def place_instance(
    manager: InstanceManager, log_dir: Path, instance_id: str, log: bytes = b""
) -> Instance:
    """An instance the manager believes it runs (no process; port 9), with `log` as its log:
    for tests of the API around instances, not of starting them."""
    path = log_dir / f"{instance_id}.log"
    path.write_bytes(log)
    instance = Instance(
        instance_id=instance_id,
        config=VllmConfig(options="--port 9"),
        port=9,
        host="127.0.0.1",
        log_path=path,
        created_at=time.monotonic(),
        pid=None,
    )
    manager.instances[instance_id] = instance
    return instance
