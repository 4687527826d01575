"""The launcher watch client against a small real HTTP server that follows contracts §5.6.

The server is a real socket server (chunked NDJSON, 410 with FastAPI's detail, silent closes,
abrupt disconnects, restarts with the counter back at 0), so the client's HTTP handling is
exercised for real. Nothing sleeps: tests wait for conditions, with a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from controller.launcherapi import (
    InstanceEvent,
    LauncherView,
    LauncherWatch,
    LauncherWatches,
    LauncherWatchSettings,
)
from kube import Backoff
from launcher.app import create_app
from launcher.gpus import GpuMap
from launcher.settings import Settings

Json = dict[str, Any]
CLOSE = "close"
ABORT = "abort"


class FakeLauncher:
    """The watch/list part of the launcher API, with knobs to misbehave."""

    def __init__(self, buffer: int = 1000) -> None:
        self.revision = 0
        self.instances: dict[str, Json] = {}
        self.buffer: collections.deque[Json] = collections.deque(maxlen=buffer)
        self.watchers: list[asyncio.Queue[Any]] = []
        self.requests: list[str] = []
        self.gone_next = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    # ----- state changes ------------------------------------------------------------------

    def _emit(self, kind: str, instance_id: str, **fields: Any) -> None:
        self.revision += 1
        obj = {**self.instances.get(instance_id, {}), **fields, "revision": self.revision}
        obj.setdefault("instance_id", instance_id)
        if kind == "DELETED":
            self.instances.pop(instance_id, None)
        else:
            self.instances[instance_id] = obj
        event = {"type": kind, "object": obj}
        self.buffer.append(event)
        for queue in self.watchers:
            queue.put_nowait(event)

    def create(self, instance_id: str) -> None:
        self._emit("CREATED", instance_id, status="running", options="--model m")

    def stop(self, instance_id: str, exit_code: int) -> None:
        self._emit("STOPPED", instance_id, status="stopped", exit_code=exit_code)

    def delete(self, instance_id: str) -> None:
        self._emit("DELETED", instance_id, status="stopped")

    def to_watchers(self, item: Any) -> None:
        for queue in self.watchers:
            queue.put_nowait(item)

    def restart(self) -> None:
        """The launcher container restarted: children lost, counter back at 0."""
        self.revision = 0
        self.instances.clear()
        self.buffer.clear()
        self.to_watchers(ABORT)

    # ----- HTTP ---------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop_server(self) -> None:
        assert self.server is not None
        self.server.close()
        self.to_watchers(ABORT)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode()
            self.requests.append(target)
            url = urlsplit(target)
            if url.path == "/v2/vllm/instances":
                await self._list(writer)
            elif url.path == "/v2/vllm/instances/watch":
                since = parse_qs(url.query).get("since", [None])[0]
                await self._watch(reader, writer, None if since is None else int(since))
            else:
                await _respond(writer, 404, {"detail": "Not Found"})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _list(self, writer: asyncio.StreamWriter) -> None:
        instances = list(self.instances.values())
        running = sum(1 for i in instances if i.get("status") == "running")
        body = {
            "revision": self.revision,
            "total_instances": len(instances),
            "running_instances": running,
            "instances": instances,
        }
        await _respond(writer, 200, body)

    async def _watch(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, since: int | None
    ) -> None:
        oldest = self.revision - len(self.buffer)
        if self.gone_next or (since is not None and since < oldest):
            self.gone_next = max(0, self.gone_next - 1)
            detail = (
                f"Requested revision {since} is no longer available. Oldest available: {oldest}."
            )
            await _respond(writer, 410, {"detail": detail})
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        if since is None:
            backlog = [{"type": "CREATED", "object": i} for i in self.instances.values()]
        else:
            backlog = [e for e in self.buffer if e["object"]["revision"] > since]
        for event in backlog:
            queue.put_nowait(event)
        self.watchers.append(queue)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"X-Content-Type-Options: nosniff\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        hangup = asyncio.create_task(reader.read())  # EOF: the client went away
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                await asyncio.wait({getter, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if hangup.done():
                    getter.cancel()
                    return
                item = getter.result()
                if item == ABORT:
                    writer.transport.abort()
                    return
                if item == CLOSE:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return
                line = (item if isinstance(item, str) else json.dumps(item)).encode() + b"\n"
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
        finally:
            hangup.cancel()
            self.watchers.remove(queue)


async def _respond(writer: asyncio.StreamWriter, status: int, body: Json) -> None:
    data = json.dumps(body).encode()
    writer.write(
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, len(data), data)
    )
    await writer.drain()


class Listener:
    """Records what the watch reports and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, int, tuple[str, ...]]] = []
        self.changed = asyncio.Event()

    def on_relist(self, launcher: str, view: LauncherView) -> None:
        self.log.append(("relist", launcher, view.revision, tuple(sorted(view.instances))))
        self.changed.set()

    def on_event(self, launcher: str, event: InstanceEvent, view: LauncherView) -> None:
        self.log.append((event.type, launcher, event.revision, tuple(sorted(view.instances))))
        self.changed.set()

    async def wait(self, what: str, check: Callable[[], bool], deadline_s: float = 10.0) -> None:
        """Wakes on every listener call, and every 10 ms for conditions on the server side."""
        try:
            async with asyncio.timeout(deadline_s):
                while not check():
                    self.changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.01):
                            await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}: {self.log}") from None


SETTINGS = LauncherWatchSettings(backoff=Backoff(initial_s=0.01, maximum_s=0.05))


@contextlib.asynccontextmanager
async def running_watch(launcher: FakeLauncher, listener: Listener) -> Any:
    async with httpx.AsyncClient() as http:
        watch = LauncherWatch("L1", f"http://127.0.0.1:{launcher.port}", http, listener, SETTINGS)
        task = asyncio.create_task(watch.run())
        try:
            yield watch
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _run(test: Callable[[FakeLauncher, Listener], Any]) -> None:
    async def main() -> None:
        launcher = FakeLauncher()
        await launcher.start()
        try:
            await test(launcher, Listener())
        finally:
            await launcher.stop_server()

    asyncio.run(main())


def test_lists_then_streams_instance_events_into_the_view() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        launcher.create("a")
        async with running_watch(launcher, listener) as watch:
            await listener.wait("first list", lambda: len(listener.log) == 1)
            await listener.wait("watching", lambda: bool(launcher.watchers))
            launcher.create("b")
            launcher.stop("a", exit_code=-9)
            launcher.delete("b")
            await listener.wait("three events", lambda: len(listener.log) == 4)
            assert watch.view is not None
            assert watch.view.instances["a"]["status"] == "stopped"
            assert watch.view.instances["a"]["exit_code"] == -9
        assert listener.log == [
            ("relist", "L1", 1, ("a",)),
            ("CREATED", "L1", 2, ("a", "b")),
            ("STOPPED", "L1", 3, ("a", "b")),
            ("DELETED", "L1", 4, ("a",)),
        ]
        assert launcher.requests[:2] == ["/v2/vllm/instances", "/v2/vllm/instances/watch?since=1"]

    _run(test)


def test_a_silent_close_or_an_error_line_leads_to_a_fresh_list() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        async with running_watch(launcher, listener) as watch:
            await listener.wait("watching", lambda: bool(launcher.watchers))
            launcher.create("a")
            await listener.wait("an event", lambda: len(listener.log) == 2)
            launcher.to_watchers(CLOSE)  # dropped as a laggard, without a word
            await listener.wait("relisted", lambda: watch.relists == 2)
            await listener.wait("watching again", lambda: bool(launcher.watchers))
            launcher.to_watchers('{"type": "ERROR", "object": {"code": 410}}')
            await listener.wait("relisted again", lambda: watch.relists == 3)
            await listener.wait("watching again", lambda: bool(launcher.watchers))
            launcher.create("b")
            await listener.wait("b seen", lambda: listener.log[-1][3] == ("a", "b"))
        watches = [r for r in launcher.requests if "watch" in r]
        assert watches == [
            "/v2/vllm/instances/watch?since=0",
            "/v2/vllm/instances/watch?since=1",
            "/v2/vllm/instances/watch?since=1",
        ]

    _run(test)


def test_410_relists_and_a_restarted_launcher_is_seen_whole() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        for name in ("a", "b", "c"):
            launcher.create(name)
        launcher.gone_next = 2
        async with running_watch(launcher, listener) as watch:
            await listener.wait("watching", lambda: bool(launcher.watchers))
            assert watch.relists == 3  # two 410s, each followed by a fresh list
            launcher.restart()
            await listener.wait("relisted after restart", lambda: watch.relists == 4)
            assert listener.log[-1] == ("relist", "L1", 0, ())
            await listener.wait("watching again", lambda: bool(launcher.watchers))
            launcher.create("d")
            await listener.wait("d seen", lambda: listener.log[-1] == ("CREATED", "L1", 1, ("d",)))

    _run(test)


def test_an_unreachable_launcher_is_retried_with_backoff_until_it_answers() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        port = launcher.port
        await launcher.stop_server()
        async with running_watch(launcher, listener) as watch:
            await listener.wait("refused connections", lambda: watch.failures >= 3)
            assert listener.log == []
            launcher.create("a")
            await launcher.start(port)
            await listener.wait("listed", lambda: listener.log == [("relist", "L1", 1, ("a",))])
            await listener.wait("streaming", lambda: watch.streaming)

    _run(test)


def test_updated_events_are_asked_for_and_applied_when_enabled() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        settings = LauncherWatchSettings(backoff=SETTINGS.backoff, updates=True)
        launcher.create("a")
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{launcher.port}"
            watch = LauncherWatch("L1", url, http, listener, settings)
            task = asyncio.create_task(watch.run())
            await listener.wait("watching", lambda: bool(launcher.watchers))
            update = {"instance_id": "a", "revision": 2, "status": "running", "ready": True}
            launcher.to_watchers({"type": "UPDATED", "object": update})
            await listener.wait("the update", lambda: listener.log[-1][0] == "UPDATED")
            assert watch.view is not None and watch.view.instances["a"]["ready"] is True
            assert watch.relists == 1
            task.cancel()
        assert "/v2/vllm/instances/watch?since=1&updates=true" in launcher.requests

    _run(test)


def test_the_manager_starts_restarts_and_stops_streams_by_launcher() -> None:
    async def test(launcher: FakeLauncher, listener: Listener) -> None:
        settings = LauncherWatchSettings(port=launcher.port, backoff=SETTINGS.backoff)
        async with httpx.AsyncClient() as http:
            watches = LauncherWatches(http, listener, settings)
            watches.ensure("L1", "127.0.0.1")
            watches.ensure("L1", "127.0.0.1")  # no-op
            await listener.wait("watching", lambda: len(launcher.watchers) == 1)
            first = watches.watch("L1")
            watches.ensure("L1", "127.0.0.2")  # a new IP: a new stream (that fails; fine)
            assert watches.watch("L1") is not first
            await listener.wait("old stream closed", lambda: not launcher.watchers)
            watches.ensure("L1", "127.0.0.1")
            watches.ensure("L2", "127.0.0.1")
            await listener.wait("two streams", lambda: len(launcher.watchers) == 2)
            assert watches.keys() == ["L1", "L2"]
            assert watches.view("L1") is not None and watches.view("nope") is None
            watches.discard("L1")
            await listener.wait("one stream", lambda: len(launcher.watchers) == 1)
            await watches.aclose()
            await listener.wait("none", lambda: not launcher.watchers)
            assert watches.keys() == []

    _run(test)


def test_against_the_real_launcher_app(tmp_path: Path) -> None:
    """fma's own launcher (launcher/app.py, served by uvicorn, no fork server): events flow, and
    a watcher that falls behind its buffer gets the error line and recovers by listing."""

    async def main() -> None:
        app = create_app(
            Settings(log_dir=tmp_path, watch_buffer=3), GpuMap(indices={"GPU-0": 0}, source="mock")
        )
        events = app.state.manager.events
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
        )
        serving = asyncio.create_task(server.serve())
        listener = Listener()
        await listener.wait("the launcher serving", lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]

        def emit(kind: str, instance_id: str) -> None:
            revision = events.next_revision()
            events.append(kind, {"instance_id": instance_id, "revision": revision})

        async with httpx.AsyncClient() as http:
            watch = LauncherWatch("L", f"http://127.0.0.1:{port}", http, listener, SETTINGS)
            task = asyncio.create_task(watch.run())
            await listener.wait("streaming", lambda: watch.streaming)
            emit("CREATED", "a")
            emit("STOPPED", "a")
            await listener.wait("two events", lambda: len(listener.log) == 3)
            assert [entry[:3] for entry in listener.log] == [
                ("relist", "L", 0),
                ("CREATED", "L", 1),
                ("STOPPED", "L", 2),
            ]
            for index in range(5):  # more than the buffer holds, before the stream can run
                emit("CREATED", f"x{index}")
            await listener.wait("relisted after the error line", lambda: watch.relists == 2)
            assert listener.log[-1][:3] == ("relist", "L", 7)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.should_exit = True
        await serving

    asyncio.run(main())
