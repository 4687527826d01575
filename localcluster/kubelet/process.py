"""Local processes standing in for containers: spawn, signal and reap whole process groups.

Each container instance is a process leading its own session and process group, so that a
signal reaches everything it started, as a runtime's kill reaches the whole container cgroup.
Nothing may outlive the hollow kubelet:
- the leader gets PR_SET_PDEATHSIG=SIGKILL (through `setpriv --pdeathsig`, which execs the
  command; a `preexec_fn` would not be safe in this threaded process), so a SIGKILLed kubelet
  takes its containers' leaders with it;
- the groups are recorded in a registry file that a tiny reaper process (`reaper.py`, which gets
  SIGTERM when the kubelet dies) and the next kubelet start use to kill leftover members.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

_SETPRIV = shutil.which("setpriv")


def pdeathsig_prefix() -> list[str]:
    """The argv prefix that makes the command die with its parent."""
    if _SETPRIV is None:
        raise RuntimeError(
            "setpriv (util-linux) is required to tie container processes to the hollow kubelet"
        )
    return [_SETPRIV, "--pdeathsig", "KILL", "--"]


async def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str, capture: bool = True
) -> asyncio.subprocess.Process:
    """Starts `argv` as a new session; stdout/stderr are pipes when `capture`, else discarded.

    Spawned from the event loop thread: PDEATHSIG fires when the *thread* that forked exits, and
    the loop thread lives as long as the kubelet.
    """
    target = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(
        *pdeathsig_prefix(),
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=target,
        stderr=target,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_code(returncode: int) -> int:
    """A runtime's exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class GroupRecord:
    pgid: int
    create_time: float


class GroupRegistry:
    """The process groups of running containers, mirrored to a JSON file for the reaper."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._groups: dict[str, GroupRecord] = {}

    def add(self, container_id: str, pid: int) -> None:
        try:
            created = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            created = time.time()
        self._groups[container_id] = GroupRecord(pid, created)
        self._save()

    def remove(self, container_id: str) -> None:
        if self._groups.pop(container_id, None) is not None:
            self._save()

    def _save(self) -> None:
        data = {cid: [r.pgid, r.create_time] for cid, r in self._groups.items()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


def kill_recorded_groups(path: Path) -> int:
    """Kills every process of the groups recorded in `path` (a previous run); returns how many.

    A process counts as a leftover when it is in a recorded group and is not older than the
    group's leader was: pids and pgids get reused, and an unrelated process must never be hit.
    """
    try:
        recorded = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    groups = {int(pgid): float(created) for pgid, created in recorded.values()}
    killed = 0
    for process in psutil.process_iter(["pid", "create_time"]):
        try:
            pgid = os.getpgid(process.pid)
        except (ProcessLookupError, PermissionError):
            continue
        created = groups.get(pgid)
        if created is not None and process.info["create_time"] >= created - 1:
            with contextlib.suppress(psutil.Error):
                process.kill()
                killed += 1
    path.write_text("{}")
    return killed
