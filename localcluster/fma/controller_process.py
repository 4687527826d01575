"""`fma-controller` as a process on the local cluster: start, kill, restart, metrics, logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from localcluster.processes import ManagedProcess, free_port

REPO: Final = Path(__file__).resolve().parents[2]
VENV_BIN: Final = REPO / ".venv" / "bin"


def wait_for(what: str, check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Polls `check()` until it returns something truthy (returned); fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ControllerProcess:
    """One `fma-controller` process (restartable; same identity, so it re-takes its Lease)."""

    name: str
    args: list[str]
    namespace: str
    kubeconfig: Path
    log_dir: Path
    metrics_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def argv(self) -> list[str]:
        return [
            str(VENV_BIN / "fma-controller"),
            "--namespace", self.namespace,
            "--kubeconfig", str(self.kubeconfig),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            "--leader-elect-identity", self.name,
            "--leader-elect-lease-name", "fma-e2e",
            *self.args,
        ]  # fmt: skip

    def start(self, *, wait: bool = True) -> None:
        self.process = ManagedProcess(self.name, self.argv(), log_path=self.log_path, cwd=REPO)
        self.process.start()
        self.starts += 1
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process is None or not self.process.running():
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(f"{self.name} /readyz", ready, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (no lease release, work cut anywhere)."""
        if self.process is not None and self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.stop(grace_seconds=5)

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        return self.process.stop(grace_seconds=15) if self.process is not None else None

    def restart(self) -> int | None:
        """SIGTERM, wait, start again; returns the exit code of the stopped process."""
        code = self.stop()
        self.start()
        return code

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def log(self) -> str:
        """Everything this controller (all its starts) logged so far."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process is not None else ""


def issue_control_credential(directory: Path, *, rotate_ca: bool = False) -> Path:
    """`fma-certs ensure-control --dir` (`--rotate-ca`), as the chart's hooks run it for their
    Secret; idempotent unless rotating."""
    rotate = ["--rotate-ca"] if rotate_ca else []
    subprocess.run(
        [sys.executable, "-m", "certs.cli", "ensure-control", f"--dir={directory}", *rotate],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory
