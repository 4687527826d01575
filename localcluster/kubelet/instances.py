"""A running container instance, whatever hosts it: a process group or an in-process app.

`ContainerRunner` supervises either through `ContainerInstance`; `ProcessInstance` is the
process half (the app half is `inprocess.AppInstance`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

from localcluster.kubelet.logfiles import LogWriter
from localcluster.kubelet.process import exit_code, signal_group


class ContainerInstance(Protocol):
    @property
    def running(self) -> bool: ...

    async def wait(self) -> int:
        """The exit code as a runtime reports it (128+N after signal N)."""
        ...

    def signal(self, sig: signal.Signals) -> None:
        """SIGTERM asks the instance to end; SIGKILL ends it."""
        ...

    async def drain_output(self, grace: float) -> None:
        """After the end: waits (at most `grace` seconds) until its output is in the log."""
        ...

    def discard(self) -> None:
        """Final clean-up, whatever happened: nothing of the instance may remain."""
        ...


class ProcessInstance:
    """A process group whose stdout and stderr are pumped into the container's log."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        log: LogWriter,
        on_discard: Callable[[], None],
    ) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self._on_discard = on_discard
        self._pumps = [
            asyncio.create_task(log.pump(process.stdout, "stdout")),
            asyncio.create_task(log.pump(process.stderr, "stderr")),
        ]

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self) -> int:
        return exit_code(await self.process.wait())

    def signal(self, sig: signal.Signals) -> None:
        signal_group(self.process.pid, sig)

    async def drain_output(self, grace: float) -> None:
        # What the leader started may hold the pipes open: the group goes with its leader.
        signal_group(self.process.pid, signal.SIGKILL)
        await asyncio.wait(self._pumps, timeout=grace)
        for task in self._pumps:
            task.cancel()

    def discard(self) -> None:
        signal_group(self.process.pid, signal.SIGKILL)
        for task in self._pumps:
            task.cancel()
        self._on_discard()
