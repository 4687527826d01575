"""All launcher streams of one controller: started, restarted and stopped by Pod events.

The controller calls `ensure(key, ip)` when it sees a launcher Pod with an IP (a Ready
launcher, typically) and `discard(key)` when the Pod goes away or loses its IP; a changed IP
(a new sandbox) restarts the stream. The manager owns the tasks, so no stream outlives its
launcher and `aclose` ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from controller.launcherapi._watch import (
    LauncherListener,
    LauncherView,
    LauncherWatch,
    LauncherWatchSettings,
)

_log = logging.getLogger(__name__)


class LauncherWatches:
    """One `LauncherWatch` task per launcher key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        listener: LauncherListener,
        settings: LauncherWatchSettings | None = None,
    ) -> None:
        self.http = http
        self.listener = listener
        self.settings = settings or LauncherWatchSettings()
        self._watches: dict[str, tuple[str, LauncherWatch, asyncio.Task[None]]] = {}

    def ensure(self, key: str, ip: str) -> None:
        """Watch launcher `key` at `ip` (no-op if already so; restarts on a new IP)."""
        current = self._watches.get(key)
        if current is not None and current[0] == ip and not current[2].done():
            return
        self.discard(key)
        watch = LauncherWatch(
            key, f"http://{_host(ip)}:{self.settings.port}", self.http, self.listener, self.settings
        )
        task = asyncio.create_task(watch.run(), name=f"launcher-watch-{key}")
        task.add_done_callback(_log_unexpected_end)
        self._watches[key] = (ip, watch, task)

    def discard(self, key: str) -> None:
        """Stop watching launcher `key` (no-op if not watched)."""
        current = self._watches.pop(key, None)
        if current is not None:
            current[2].cancel()

    def keys(self) -> list[str]:
        return sorted(self._watches)

    def view(self, key: str) -> LauncherView | None:
        """The latest known instances of launcher `key` (None: not watched or never listed)."""
        current = self._watches.get(key)
        return current[1].view if current is not None else None

    def watch(self, key: str) -> LauncherWatch | None:
        current = self._watches.get(key)
        return current[1] if current is not None else None

    async def aclose(self) -> None:
        """Cancel every stream and wait until they ended."""
        tasks = [task for _ip, _watch, task in self._watches.values()]
        self._watches.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _log_unexpected_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("%s ended: %r", task.get_name(), task.exception())
