"""Child processes that are always stopped, by PID, with their whole process group.

Everything the local cluster starts (etcd, the control-plane binaries, the hollow kubelet) is a
`ManagedProcess`. Each child leads its own process group so that a stop also reaches whatever the
child itself started, and each asks the kernel (``PR_SET_PDEATHSIG``) to be killed if the Python
process that started it dies without cleaning up: a test run that is SIGKILLed must not leave an
apiserver holding a port for the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

_log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: new process group, SIGKILL on parent death."""
    os.setpgrp()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ManagedProcess:
    """One child process with a log file, stopped by PID and process group.

    `start` opens the log in append mode so that restarts of the same component keep one file.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        _log.debug("starting %s: %s", self.name, " ".join(self.argv))
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run user code here
        )

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        """SIGTERM the process group, wait up to `grace_seconds`, then SIGKILL it.

        Returns the exit code (None if the process was never started). Safe to call twice.
        """
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                _log.warning("%s ignored SIGTERM for %.0fs; killing it", self.name, grace_seconds)
        # The leader may be gone while members of its group still run: kill the group regardless.
        _signal_group(popen.pid, signal.SIGKILL)
        code = popen.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def log_tail(self, lines: int = 30) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel's pick; another process may take it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate_name: str,
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    process: ManagedProcess | None = None,
) -> None:
    """Polls `predicate()` until true; fails early, with its log, if `process` exits meanwhile.

    Used only for start-up of the local cluster's own processes, where no watch exists yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if process is not None and not process.running():
            raise RuntimeError(
                f"{process.name} exited with code {process.returncode()} while waiting for "
                f"{predicate_name}; last log lines:\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"; last log lines of {process.name}:\n{process.log_tail()}" if process else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {predicate_name}{tail}")
        time.sleep(interval)
