"""The three servers under fuzz, in-process, with blocking calls and an answer tally.

Why one event loop in a thread: hypothesis drives plain (blocking) test functions, while the
servers are asyncio code. Every server runs on the `LoopThread`'s loop, and each call is a
coroutine run there, so a fuzz input reaches the real request parsing, routing and validation:
- the launcher: its FastAPI app over `httpx.ASGITransport`, with a fork server double that
  starts `sleep` children (so an accepted create is real, cheap and leaves no network listener)
  and a prober double (so nothing is dialled from the options a fuzz input names);
- the requester stub: `serve_requester` on 127.0.0.1, spoken to with raw bytes over TCP, so
  malformed HTTP reaches `minihttp` itself;
- the webhook: its FastAPI app over `httpx.ASGITransport`, on a preloaded cache.

A crash is any exception a server does not turn into an answer: one that escapes the ASGI app,
one asyncio's loop reports (an unhandled error in a connection task), or an ERROR log record
with a traceback (minihttp's "handler failed", the webhook's "internal error" paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import quote

import httpx

from contract.requester import READY_PATH
from launcher.app import create_app as create_launcher_app
from launcher.forkclient import ForkServer
from launcher.gpus import GpuMap
from launcher.manager import InstanceManager
from launcher.probes import Prober
from launcher.requester import FixedGpus, RequesterConfig, RequesterHandle
from launcher.requester.proxy import ProxyTarget
from launcher.requester.server import serve_requester
from launcher.settings import Settings
from tests.launcher.support import place_instance
from tests.loopthread import LoopThread
from webhook.app import create_app as create_webhook_app
from webhook.cache import WebhookCache
from webhook.handlers import Handlers
from webhook.metrics import WebhookMetrics
from webhook.mutation import MutationSettings
from webhook.validation import ValidationSettings

T = TypeVar("T")
CALL_TIMEOUT_S: Final = 30.0
GPU_UUIDS: Final = ("GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666")
LOG_ID: Final = "logged"
"""The launcher instance placed with a log file, for the log endpoint's `Range` fuzzing."""
LOG_BYTES: Final = b"".join(b"line %d of the instance log\n" % i for i in range(200))
OPTED_IN: Final = {"fma.llm-d.ai/inject": "enabled"}
CONTROLLER: Final = "system:serviceaccount:fma-system:fma-fma-controllers"


@dataclass
class Tally:
    """Inputs, 5xx answers and crashes per API: what the benchmark reports."""

    inputs: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)

    def answer(self, api: str, status: int | None, *, unavailable_by_design: bool = False) -> None:
        """Count one input; `unavailable_by_design`: a 503 that is the answer's meaning (the
        stub's readiness probe while not ready), not an error."""
        self.inputs[api] += 1
        by_design = status == 503 and unavailable_by_design
        if status is not None and status >= 500 and not by_design:
            self.server_errors[api] += 1


class _CrashLog(logging.Handler):
    """Collects ERROR records that carry a traceback: a server caught an exception it should
    not have raised."""

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.ERROR)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tally.crashes.append(f"{record.name}: {record.getMessage()}")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


# --- the launcher ----------------------------------------------------------------------------


class _NoProbes(Prober):
    """Never healthy, sleep state unknown: an instance a fuzz input created is never dialled."""

    async def healthy(self, host: str, port: int) -> bool:
        return False

    async def sleeping(self, host: str, port: int) -> bool | None:
        return None


class _SleepForkServer(ForkServer):
    """Starts `sleep` in a session of its own instead of forking vLLM, and reports its exit the
    way the real fork server does, so DELETE stops it by the normal path."""

    def __init__(self, manager: InstanceManager) -> None:
        super().__init__(entry="", on_exit=manager._on_exit, on_lost=lambda: None)
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._reapers: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return True

    async def spawn(
        self,
        ref: str,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        notes: Sequence[str] = (),
    ) -> int:
        child = await asyncio.create_subprocess_exec(
            "sleep",
            "600",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._children[child.pid] = child
        reaper = asyncio.get_running_loop().create_task(self._reap(ref, child))
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)
        return child.pid

    async def _reap(self, ref: str, child: asyncio.subprocess.Process) -> None:
        code = await child.wait()
        self._children.pop(child.pid, None)
        self._on_exit(ref, child.pid, code)

    async def close(self, seconds: float = 10) -> None:
        for child in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        if self._reapers:
            await asyncio.wait(self._reapers, timeout=seconds)


@dataclass
class LauncherTarget:
    """The launcher's app, one instance placed with a log, and an ASGI client."""

    loop: LoopThread
    tally: Tally
    log_dir: Path
    manager: InstanceManager
    client: httpx.AsyncClient

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        chunks: Sequence[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One call; `chunks` sends the body without a length (chunked), as a stream."""

        async def streamed() -> Any:
            for chunk in chunks or ():
                yield chunk

        async def call() -> httpx.Response:
            body: Any = streamed() if chunks is not None else content
            return await self.client.request(
                method, path, content=body, headers=headers, params=params
            )

        try:
            response = self.loop.run(call())
        except Exception as e:  # an exception that escaped the app: a crash
            self.tally.answer("launcher", None)
            self.tally.crashes.append(f"launcher {method} {path}: {type(e).__name__}: {e}")
            raise
        self.tally.answer("launcher", response.status_code)
        return Answer(response.status_code, dict(response.headers), response.content)

    def state(self) -> tuple[object, ...]:
        """Instances (ids, states), the event revision, and every instance log's size."""
        sizes = sorted((p.name, p.stat().st_size) for p in self.log_dir.iterdir())
        return (self.manager.snapshot(), self.manager.events.revision, sizes)

    def forget(self, instance_id: str) -> None:
        """Deletes an instance a fuzz input created (the refused-call checks need a steady
        baseline)."""
        path = f"/v2/vllm/instances/{quote(instance_id, safe='')}"
        status = self.request("DELETE", path).status
        assert status == 200, status


# --- the requester stub ------------------------------------------------------------------------


class StubState(NamedTuple):
    """What a refused call must leave alone: readiness, the log bytes accepted and written,
    the proxy's target."""

    ready: bool
    accepted: int
    written: int
    target: ProxyTarget | None


@dataclass
class StubTarget:
    """A stub on 127.0.0.1 (probes and SPI), spoken to with raw HTTP/1.1 bytes."""

    loop: LoopThread
    tally: Tally
    handle: RequesterHandle
    sink: io.BytesIO

    def raw(self, data: bytes, *, port: str = "spi") -> Answer | None:
        """Send `data`, half-close, and read until the server closes; None: no answer."""
        number = self.handle.spi_port if port == "spi" else self.handle.probes_port
        answer = self.loop.run(_exchange(number, data))
        probe = port == "probes" and data.startswith(f"GET {READY_PATH} ".encode())
        self.tally.answer(
            "stub", None if answer is None else answer.status, unavailable_by_design=probe
        )
        return answer

    def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: Sequence[tuple[str, str]] = (),
        chunked: bool = False,
        port: str = "spi",
    ) -> Answer | None:
        lines = [f"{method} {target} HTTP/1.1", "Host: stub", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return self.raw(head + payload, port=port)

    def state(self) -> StubState:
        state = self.handle.state
        return StubState(
            state.ready, state.relay.accepted, len(self.sink.getvalue()), state.proxy.target
        )


async def _exchange(port: int, data: bytes) -> Answer | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # The server may answer (413, 400) and close before it read everything: a refused send
        # is then expected, and the answer is still there to read.
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        raw = b""
        with contextlib.suppress(ConnectionError):
            raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return parse_answer(raw)


def parse_answer(raw: bytes) -> Answer | None:
    """The first response in `raw` (a 100 Continue before it is skipped)."""
    while raw.startswith(b"HTTP/1.1 100 "):
        raw = raw.partition(b"\r\n\r\n")[2]
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body)


# --- the webhook -----------------------------------------------------------------------------


@dataclass
class WebhookTarget:
    loop: LoopThread
    tally: Tally
    client: httpx.AsyncClient

    def post(self, path: str, content: bytes, *, chunked: bool = False) -> Answer:
        async def streamed() -> Any:
            yield content

        async def call() -> httpx.Response:
            return await self.client.post(path, content=streamed() if chunked else content)

        try:
            response = self.loop.run(call())
        except Exception as e:
            self.tally.answer("webhook", None)
            self.tally.crashes.append(f"webhook POST {path}: {type(e).__name__}: {e}")
            raise
        self.tally.answer("webhook", response.status_code)
        return Answer(response.status_code, dict(response.headers), response.content)


def _webhook_cache() -> WebhookCache:
    return WebhookCache.from_objects(
        [
            {"kind": "Namespace", "metadata": {"name": "team", "labels": OPTED_IN}},
            {
                "apiVersion": "fma.llm-d.ai/v1alpha1",
                "kind": "InferenceServerConfig",
                "metadata": {"name": "tiny", "namespace": "team"},
                "spec": {
                    "launcherConfigName": "lc",
                    "modelServerConfig": {"port": 8000, "options": "--model /models/tiny"},
                },
            },
            {"kind": "LauncherConfig", "metadata": {"name": "lc", "namespace": "team"}},
        ]
    )


# --- all three --------------------------------------------------------------------------------


@dataclass
class Targets:
    tally: Tally
    launcher: LauncherTarget
    stub: StubTarget
    webhook: WebhookTarget


@contextlib.contextmanager
def running_targets() -> Iterator[Targets]:
    """The three servers, their clients and one tally, torn down on exit."""
    tally = Tally()
    crash_log = _CrashLog(tally)
    logging.getLogger().addHandler(crash_log)
    loop = LoopThread(CALL_TIMEOUT_S)
    loop.loop.set_exception_handler(
        lambda _loop, context: tally.crashes.append(f"asyncio: {context.get('message')}")
    )
    with tempfile.TemporaryDirectory(prefix="fma-fuzz-") as scratch:
        log_dir = Path(scratch)
        gpus = GpuMap(indices={uuid: i for i, uuid in enumerate(GPU_UUIDS)}, source="mock")
        app = create_launcher_app(Settings(log_dir=log_dir, host="127.0.0.1"), gpus)
        manager: InstanceManager = app.state.manager
        manager.forkserver = _SleepForkServer(manager)
        manager._prober = _NoProbes()
        place_instance(manager, log_dir, LOG_ID, LOG_BYTES)
        sink = io.BytesIO()
        stub_config = RequesterConfig(
            host="127.0.0.1",
            probes_port=0,
            spi_port=0,
            proxy_port=None,
            gpus=FixedGpus(GPU_UUIDS),
            log_sink=sink,
            threaded_log_writes=False,
        )
        handlers = Handlers(
            cache=_webhook_cache(),
            mutation_settings=MutationSettings(requester_image="fma:test"),
            validation_settings=ValidationSettings(controller_usernames=frozenset({CONTROLLER})),
            metrics=WebhookMetrics(),
        )

        async def start() -> tuple[httpx.AsyncClient, httpx.AsyncClient, RequesterHandle]:
            launcher = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://launcher"
            )
            webhook = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_webhook_app(handlers)),
                base_url="http://webhook",
            )
            return launcher, webhook, await serve_requester(stub_config)

        launcher_client, webhook_client, stub = loop.run(start())
        try:
            yield Targets(
                tally,
                LauncherTarget(loop, tally, log_dir, manager, launcher_client),
                StubTarget(loop, tally, stub, sink),
                WebhookTarget(loop, tally, webhook_client),
            )
        finally:

            async def stop() -> None:
                await manager.delete_all()
                await manager.forkserver.close()
                await launcher_client.aclose()
                await webhook_client.aclose()
                await stub.close()

            loop.run(stop())
            loop.close()
            logging.getLogger().removeHandler(crash_log)
