"""Containers hosted inside the hollow kubelet's own process: in-process apps.

Five hundred Python processes do not fit on a laptop; five hundred small asyncio servers in one
event loop do. An image entry may name programs that run as *apps*, coroutines of the kubelet,
instead of processes::

    images:
      ghcr.io/llm-d/fma:*:
        path: [.venv/bin]
        inProcess: {fma-requester: requester, fma-vllm-standin: vllm-standin}

A container of that image whose argv[0] has one of those base names runs as an asyncio task:
`async def app(ctx: AppContext) -> int`. Everything else about the container stays as it is:
the argv and environment (exactly what the process would get: POD_IP, NVIDIA_VISIBLE_DEVICES,
the image's ENV...), probes against the Pod IP, restarts, events, the status. What maps to what:

| process                        | app                                                      |
|--------------------------------|----------------------------------------------------------|
| stdout / stderr                | `ctx.stdout` / `ctx.stderr` (text; `.buffer` for bytes)  |
| `logging` records              | the container's stderr, as JSON lines (see `AppLogRouter`) |
| SIGTERM                        | `ctx.terminated` is set                                  |
| SIGKILL (grace period over)    | the task is cancelled; exit code 137                     |
| exit status                    | the return value; `SystemExit(n)` → n; an exception → 1  |

What an app gives up is isolation: one that blocks the event loop stalls every Pod of the
kubelet, and apps share the interpreter's globals. Only fma's own light components (the
requester stub and the vLLM stand-in, `apps`) are meant to run so, for benchmarks; process mode
stays the default.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import io
import logging
import signal
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from jsonlog import JsonFormatter
from localcluster.kubelet.appref import entry_point
from localcluster.kubelet.logfiles import LineRecorder, LogWriter, Stream

KILLED_EXIT_CODE: Final = 128 + signal.SIGKILL
_current: contextvars.ContextVar[AppContext | None] = contextvars.ContextVar(
    "fma_hollow_kubelet_app", default=None
)


class _LogSink(io.RawIOBase):
    """Bytes → the container's CRI log; writes after the instance ended are dropped."""

    def __init__(self, writer: LogWriter, stream: Stream) -> None:
        super().__init__()
        self._lines: LineRecorder | None = LineRecorder(writer, stream)

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        chunk = bytes(data)
        if self._lines is not None:
            self._lines.feed(chunk)
        return len(chunk)

    def end(self) -> None:
        if self._lines is not None:
            self._lines.end()
            self._lines = None


def _text(sink: _LogSink) -> TextIO:
    """A text stream over `sink`; like a pipe's, its bytes reach the log when flushed."""
    return io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8", errors="replace")


@dataclass(frozen=True, kw_only=True)
class AppContext:
    """What an app gets instead of a process's argv, environment, streams and signals."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    stdout: TextIO
    stderr: TextIO
    terminated: asyncio.Event


App = Callable[[AppContext], Awaitable[int | None]]


class AppLoadError(Exception):
    """The app reference names nothing importable; the message says what."""


def load_app(reference: str) -> App:
    """The coroutine function a (checked) reference names."""
    module_name, function = entry_point(reference)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"in-process app {reference!r}: cannot import {module_name}: {exc}"
        raise AppLoadError(message) from None
    app = getattr(module, function, None)
    if not callable(app):
        raise AppLoadError(f"in-process app {reference!r}: {module_name} has no {function}()")
    loaded: App = app
    return loaded


class AppInstance:
    """One run of an app as a container instance (the in-process peer of `ProcessInstance`)."""

    def __init__(
        self, app: App, *, argv: Sequence[str], env: Mapping[str, str], cwd: str, log: LogWriter
    ) -> None:
        self._sinks = (_LogSink(log, "stdout"), _LogSink(log, "stderr"))
        self.context = AppContext(
            argv=tuple(argv),
            env=dict(env),
            cwd=cwd,
            stdout=_text(self._sinks[0]),
            stderr=_text(self._sinks[1]),
            terminated=asyncio.Event(),
        )
        scope = contextvars.copy_context()
        scope.run(_current.set, self.context)
        self._task = asyncio.get_running_loop().create_task(
            self._main(app), name=f"app:{argv[0] if argv else '?'}", context=scope
        )

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def wait(self) -> int:
        await asyncio.wait({self._task})
        return self._task.result()

    def signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGKILL:
            self._task.cancel()
        else:
            self.context.terminated.set()

    async def drain_output(self, grace: float) -> None:
        """Nothing to wait for: the streams were flushed when the app returned."""

    def discard(self) -> None:
        self._task.cancel()

    async def _main(self, app: App) -> int:
        try:
            code = await app(self.context)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except asyncio.CancelledError:
            code = KILLED_EXIT_CODE
        except Exception:
            self.context.stderr.write(traceback.format_exc())
            code = 1
        finally:
            for stream, sink in zip(
                (self.context.stdout, self.context.stderr), self._sinks, strict=True
            ):
                stream.flush()
                sink.end()
        return int(code or 0)


class AppLogRouter(logging.Handler):
    """Sends `logging` records made inside an app to that app's stderr, not the kubelet's log.

    Installed on the root logger by `route_app_logs`: a record made while an app's context is
    current (its task, and the tasks its servers start) is written to the app's stderr as one
    JSON line, fma's line shape (`jsonlog`); the root's other handlers are given a filter that
    keeps such records out of the kubelet's own log.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        app = _current.get()
        if app is not None:
            app.stderr.write(self.format(record) + "\n")
            app.stderr.flush()


def _outside_apps(record: logging.LogRecord) -> bool:
    return _current.get() is None


def route_app_logs() -> None:
    """Installs `AppLogRouter` on the root logger (once) and keeps app records out of the root's
    other handlers (those present now)."""
    root = logging.getLogger()
    if not any(isinstance(h, AppLogRouter) for h in root.handlers):
        root.addHandler(AppLogRouter())
    for handler in root.handlers:
        if not isinstance(handler, AppLogRouter) and _outside_apps not in handler.filters:
            handler.addFilter(_outside_apps)
