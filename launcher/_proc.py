"""Small Linux process-control helpers shared by the fork server and its children."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

_PR_SET_PDEATHSIG: Final = 1
_PR_SET_CHILD_SUBREAPER: Final = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}) failed: {os.strerror(errno)}")


def die_with_parent(expected_parent: int) -> None:
    """SIGKILL this process when its parent dies; exit now if that already happened.

    The check after `prctl` closes the race where the parent died between our fork and the call.
    """
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:
        os._exit(1)


def become_subreaper() -> None:
    """Orphans of our descendants are reparented to us (and reaped) instead of to PID 1."""
    with contextlib.suppress(OSError):
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def kill_group(pgid: int, sig: signal.Signals) -> bool:
    """Signals a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def thread_count() -> int:
    """Native threads of this process (Python's and the libraries')."""
    try:
        return sum(1 for _ in Path("/proc/self/task").iterdir())
    except OSError:
        return 1


def _open_fds() -> list[int]:
    try:
        return sorted(int(entry.name) for entry in Path("/proc/self/fd").iterdir())
    except OSError:
        return []


def close_inherited(extra: Iterable[int]) -> None:
    """Closes `extra` and every socket above fd 2 (what a child must not keep of its parent).

    Only sockets are closed wholesale, as in the reference: other descriptors may belong to state
    that the preloaded libraries rely on, while an inherited socket (a listener, a client
    connection, the launcher's pipes) would keep a port or a peer alive after the parent let go.
    """
    for fd in set(extra):
        if fd > 2:
            with contextlib.suppress(OSError):
                os.close(fd)
    for fd in _open_fds():
        if fd <= 2:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def redirect_output(log_path: Path) -> None:
    """stdin from /dev/null; stdout and stderr appended to `log_path` (bytes, not lines)."""
    sys.stdout.flush()
    sys.stderr.flush()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)
