"""The hollow kubelet's reaper: kills the containers' process groups when the kubelet dies.

PR_SET_PDEATHSIG only reaches a container's leader; what the leader started would survive a
SIGKILLed kubelet. This small process, started by the kubelet in a session of its own (so that a
signal to the kubelet's process group does not reach it), asks for SIGTERM when its parent dies,
then kills every group recorded in the registry file. After a clean shutdown the registry is empty
and it simply exits.

Run as `python -m localcluster.kubelet.reaper <registry.json>`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    registry = Path(argv[1])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the kubelet died before prctl took effect
        return _reap(registry)
    try:
        while True:
            signal.pause()
    except SystemExit:
        return _reap(registry)


def _reap(registry: Path) -> int:
    from localcluster.kubelet.process import kill_recorded_groups

    kill_recorded_groups(registry)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
