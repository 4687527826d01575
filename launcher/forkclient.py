"""The launcher's side of the fork server protocol (see `launcher.forkserver`), on asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

ExitCallback = Callable[[str, int, int], None]
"""Called with (ref, pid, exit_code) when a child exits."""


class ForkServerError(RuntimeError):
    """The fork server could not start, or could not start a child."""


@dataclass(frozen=True, slots=True)
class ForkServerInfo:
    pid: int
    sleep_mode_available: bool
    import_seconds: float
    threads: int
    gc_freeze_seconds: float = 0.0
    frozen_objects: int = 0
    """Objects moved out of the collector's sight after the imports (`forkserver.freeze_heap`)."""
    preloaded_modules: int = 0
    """Modules learned from an earlier instance and imported at start (`launcher.preload`)."""


class ForkServer:
    """Starts the helper, sends it start requests and turns its reports into calls and futures."""

    def __init__(
        self,
        *,
        entry: str,
        on_exit: ExitCallback,
        on_lost: Callable[[], None],
        preload_file: Path | None = None,
    ) -> None:
        self._entry = entry
        self._preload_file = preload_file
        self._on_exit = on_exit
        self._on_lost = on_lost
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[ForkServerInfo] | None = None
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._closing = False
        self.info: ForkServerInfo | None = None
        self.preloaded: dict[str, Any] | None = None
        """The fork server's report of importing what the first instance learned, once it did."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "launcher.forkserver",
            "--entry",
            self._entry,
            "--parent",
            str(os.getpid()),
            *(["--preload-file", str(self._preload_file)] if self._preload_file else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches only the launcher, which stops instances
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._read_events(), name="forkserver-reader")

    async def wait_ready(self, seconds: float) -> ForkServerInfo:
        assert self._ready is not None, "start() first"
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), seconds)
        except TimeoutError:
            raise ForkServerError(
                f"the fork server did not import {self._entry} in {seconds}s"
            ) from None

    @property
    def ready(self) -> bool:
        return self.info is not None and not self._closing and self._alive()

    def _alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def spawn(
        self,
        ref: str,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        notes: Sequence[str] = (),
    ) -> int:
        """Forks an instance; returns its PID (also its process group ID)."""
        if not self.ready or self._process is None or self._process.stdin is None:
            raise ForkServerError("the fork server is not running")
        if ref in self._pending:
            raise ForkServerError(f"a start of {ref!r} is already in flight")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        request = {
            "op": "start",
            "ref": ref,
            "argv": list(argv),
            "env": dict(env),
            "log_path": str(log_path),
            "notes": list(notes),
        }
        try:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            await self._process.stdin.drain()
            return await asyncio.wait_for(future, 30)
        except TimeoutError:
            raise ForkServerError("the fork server did not answer a start request in 30s") from None
        finally:
            self._pending.pop(ref, None)

    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        try:
            while line := await stream.readline():
                with contextlib.suppress(ValueError):
                    self._dispatch(json.loads(line))
        finally:
            self._lost()

    def _dispatch(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        ref = str(message.get("ref", ""))
        if event == "ready":
            self.info = ForkServerInfo(
                pid=int(message["pid"]),
                sleep_mode_available=bool(message.get("sleep_mode_available")),
                import_seconds=float(message.get("import_seconds", 0.0)),
                threads=int(message.get("threads", 0)),
                gc_freeze_seconds=float(message.get("gc_freeze_seconds", 0.0)),
                frozen_objects=int(message.get("frozen_objects", 0)),
                preloaded_modules=int(message.get("preloaded_modules", 0)),
            )
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(self.info)
        elif event == "import_failed":
            error = ForkServerError(f"the fork server cannot import {self._entry}: {message}")
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(error)
        elif event in ("started", "start_failed"):
            future = self._pending.get(ref)
            if future is not None and not future.done():
                if event == "started":
                    future.set_result(int(message["pid"]))
                else:
                    future.set_exception(ForkServerError(str(message.get("error"))))
        elif event == "exited":
            self._on_exit(ref, int(message["pid"]), int(message["exit_code"]))
        elif event == "preloaded":
            self.preloaded = {k: v for k, v in message.items() if k != "event"}
            _log.info("fork server imported what instances import: %s", self.preloaded)

    def _lost(self) -> None:
        error = ForkServerError("the fork server exited")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        if not self._closing:
            _log.error("the fork server exited unexpectedly; its instances died with it")
            self._on_lost()

    async def close(self, seconds: float = 10.0) -> None:
        """Closes the request pipe (the server then kills leftovers and exits) and waits."""
        self._closing = True
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
