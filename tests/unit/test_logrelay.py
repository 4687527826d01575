"""The log relay over real HTTP: a launcher's instance log reaches the requester stub's stdout.

The launcher side is a small server with the launcher's log endpoint (ranged reads, as
contracts §5.5 has them); the requester side is the real stub, in-process, writing to a buffer
instead of stdout. What a user would see is that buffer: `kubectl logs` of the requester.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

from contract.launcher import LAUNCHER_PORT
from controller.core import QueryLogTail
from controller.observability import ControllerMetrics
from controller.reconciler._http import HttpSettings, PeerCalls, peer_call_client
from controller.reconciler._logrelay import (
    InstanceLog,
    LogRelay,
    PodLog,
    Target,
    relay_target,
)
from controller.reconciler._peers import TAIL_CHARS, TAIL_LINES, Peers, last_lines
from launcher.requester import FixedGpus, RequesterConfig, RequesterHandle
from launcher.requester.minihttp import HttpServer, Request, Response, Router
from launcher.requester.server import serve_requester

IID = "inst-1"
LAUNCHER_UID = "launcher-uid"
REQ_UID = "req-uid"


def pod(
    name: str,
    uid: str,
    *,
    ip: str | None = "127.0.0.1",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"podIP": ip} if ip else {}}


def requester(**kw: Any) -> dict[str, Any]:
    annotations = {"dual-pods.llm-d.ai/inference-server-config": "isc", **kw.pop("ann", {})}
    return pod("req", REQ_UID, annotations=annotations, **kw)


def launcher(**kw: Any) -> dict[str, Any]:
    annotations = {
        "dual-pods.llm-d.ai/requester": f"{REQ_UID} req",
        "dual-pods.llm-d.ai/instance-id": IID,
    }
    labels = {"dual-pods.llm-d.ai/launcher-config-name": "lc"}
    return pod("launcher", LAUNCHER_UID, labels=labels, annotations=annotations, **kw)


# --- which log goes where (pure) ---------------------------------------------------------------


def test_launcher_mode_relays_the_bound_instance_to_the_requester_spi() -> None:
    target = relay_target(
        launcher(ip="127.0.0.9"), requester(ann={"dual-pods.llm-d.ai/admin-port": "9999"})
    )
    assert target == Target(InstanceLog(LAUNCHER_UID, "127.0.0.9", IID), "127.0.0.1", 9999, REQ_UID)


def test_direct_mode_relays_the_provider_pod_log() -> None:
    provider = pod(
        "req-dual-x", "prov-uid", annotations={"dual-pods.llm-d.ai/requester": f"{REQ_UID} req"}
    )
    target = relay_target(provider, requester())
    assert target is not None and target.source == PodLog("req-dual-x", "prov-uid")


@pytest.mark.parametrize(
    ("provider", "req"),
    [
        (launcher(), requester(ip=None)),
        (launcher(ip=None), requester()),
        (launcher(deleting=True), requester()),
        (launcher(), requester(deleting=True)),
        (launcher(), pod("other", "other-uid")),
        (pod("launcher", LAUNCHER_UID), requester()),
    ],
    ids=[
        "no-requester-ip",
        "no-launcher-ip",
        "launcher-deleting",
        "requester-deleting",
        "another-requester",
        "unbound",
    ],
)
def test_nothing_is_relayed_until_both_pods_serve_and_are_bound(
    provider: dict[str, Any], req: dict[str, Any]
) -> None:
    assert relay_target(provider, req) is None


# --- relaying over HTTP ------------------------------------------------------------------------


class FakeLauncher:
    """The launcher's ranged log endpoint (§5.5) over one growing byte string."""

    def __init__(self) -> None:
        self.log = b""
        self.reads = 0
        router = Router()
        router.add("GET", f"/v2/vllm/instances/{IID}/log", self._read)
        self.server = HttpServer(router, "fake-launcher")

    async def _read(self, request: Request) -> Response:
        self.reads += 1
        match = re.fullmatch(r"bytes=(\d+)-(\d+)?", request.headers.get("range", ""))
        assert match, "the relay always reads a range"
        start = int(match.group(1))
        end = min(int(match.group(2) or len(self.log) - 1), len(self.log) - 1)
        if start >= len(self.log):
            return Response(416, b"", headers=(("Content-Range", f"bytes */{len(self.log)}"),))
        data = self.log[start : end + 1]
        headers = (("Content-Range", f"bytes {start}-{end}/{len(self.log)}"),)
        return Response(206, data, "application/octet-stream", headers)


class Cache:
    def __init__(self, *pods: dict[str, Any]) -> None:
        self.pods = {p["metadata"]["uid"]: p for p in pods}

    def add(self, pod: dict[str, Any]) -> None:
        self.pods[pod["metadata"]["uid"]] = pod

    def pod_by_uid(self, uid: str) -> Mapping[str, Any] | None:
        return self.pods.get(uid)

    def pods_by(self, index: str, value: str) -> list[Any]:
        return [
            p
            for p in self.pods.values()
            if p["metadata"]["annotations"]
            .get("dual-pods.llm-d.ai/requester", "")
            .startswith(value + " ")
        ]


async def start_stub(sink: io.BytesIO, port: int = 0) -> RequesterHandle:
    config = RequesterConfig(
        host="127.0.0.1",
        probes_port=0,
        spi_port=port,
        gpus=FixedGpus(("GPU-0",)),
        log_sink=sink,
        threaded_log_writes=False,
    )
    return await serve_requester(config)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Until what the stub wrote satisfies `condition` (10 s at most)."""
    async with asyncio.timeout(10.0):
        while not condition():  # noqa: ASYNC110 - the condition is on bytes, not an event
            await asyncio.sleep(0.01)


def launcher_address() -> str:
    """A loopback address of its own, so the fake launcher listens on the real port 8001."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


async def relaying(
    scenario: Callable[..., Awaitable[None]],
) -> None:
    fake = FakeLauncher()
    address = launcher_address()
    await fake.server.start(host=address, port=LAUNCHER_PORT)
    http = peer_call_client()
    relays: list[LogRelay] = []
    cache = Cache(launcher(ip=address))

    def new_relay() -> LogRelay:
        relay = LogRelay(cache, http, None, "ns")  # type: ignore[arg-type]
        relays.append(relay)
        relay.sync(REQ_UID)
        return relay

    def grow(data: bytes) -> None:
        fake.log += data
        for relay in relays:
            relay.log_grew(LAUNCHER_UID, {IID: {"log_size": len(fake.log)}})

    try:
        await scenario(fake, new_relay, grow, cache)
    finally:
        for relay in relays:
            await relay.aclose()
        await http.aclose()
        await fake.server.close()


def stub_pod(handle: RequesterHandle) -> dict[str, Any]:
    return requester(ann={"dual-pods.llm-d.ai/admin-port": str(handle.spi_port)})


def test_the_log_arrives_in_order_and_nothing_is_doubled_across_a_controller_restart() -> None:
    sink = io.BytesIO()

    async def scenario(fake: FakeLauncher, new_relay: Any, grow: Any, cache: Cache) -> None:
        stub = await start_stub(sink)
        cache.add(stub_pod(stub))
        try:
            first = new_relay()
            grow(b"INFO Starting vLLM API server\n")
            grow(b"INFO Route: /v1/completions\n")
            await wait_for(lambda: sink.getvalue().count(b"\n") == 2)
            await first.aclose()  # the controller stops ...
            grow(b"INFO 127.0.0.1 - POST /v1/completions 200\n")
            new_relay()  # ... and a new one takes over
            await wait_for(lambda: sink.getvalue().endswith(b"200\n"))
            await asyncio.sleep(0.2)
            assert sink.getvalue() == fake.log
        finally:
            await stub.close()

    asyncio.run(relaying(scenario))


def test_a_restarted_stub_gets_the_whole_log_again() -> None:
    old_sink, new_sink = io.BytesIO(), io.BytesIO()

    async def scenario(fake: FakeLauncher, new_relay: Any, grow: Any, cache: Cache) -> None:
        stub = await start_stub(old_sink)
        port = stub.spi_port
        cache.add(stub_pod(stub))
        new_relay()
        grow(b"start-up line\n")
        await wait_for(lambda: old_sink.getvalue() == fake.log)
        await stub.close()
        stub = await start_stub(new_sink, port)  # same Pod, new container
        try:
            grow(b"after the restart\n")
            await wait_for(lambda: new_sink.getvalue() == fake.log)
        finally:
            await stub.close()

    asyncio.run(relaying(scenario))


def test_no_news_no_requests() -> None:
    """Driven by the launcher's watch: a quiet instance costs no reads."""
    sink = io.BytesIO()

    async def scenario(fake: FakeLauncher, new_relay: Any, grow: Any, cache: Cache) -> None:
        stub = await start_stub(sink)
        cache.add(stub_pod(stub))
        try:
            new_relay()
            grow(b"one line\n")
            await wait_for(lambda: sink.getvalue() == fake.log)
            reads = fake.reads
            await asyncio.sleep(0.5)
            assert fake.reads == reads
        finally:
            await stub.close()

    asyncio.run(relaying(scenario))


def test_an_asleep_instance_is_read_once_it_wakes() -> None:
    """The hot path binds before it wakes: one read then carries the log and the wake's lines."""
    sink = io.BytesIO()

    async def scenario(fake: FakeLauncher, new_relay: Any, grow: Any, cache: Cache) -> None:
        stub = await start_stub(sink)
        cache.add(stub_pod(stub))
        try:
            relay = new_relay()
            fake.log = b"INFO Starting vLLM API server\nINFO sleeping\n"
            relay.log_grew(LAUNCHER_UID, {IID: {"log_size": len(fake.log), "phase": "sleeping"}})
            await asyncio.sleep(0.3)
            assert fake.reads == 0 and sink.getvalue() == b""
            fake.log += b"INFO woken up\n"
            relay.log_grew(LAUNCHER_UID, {IID: {"log_size": len(fake.log), "phase": "ready"}})
            await wait_for(lambda: sink.getvalue() == fake.log)
            assert fake.reads == 1
        finally:
            await stub.close()

    asyncio.run(relaying(scenario))


def test_what_it_knows_of_gone_instances_and_launchers_is_dropped() -> None:
    """A launcher's report lists all its instances: a long-running controller keeps nothing of
    the instances deleted since, nor of deleted launchers."""
    relay = LogRelay(Cache(launcher()), None, None, "ns")  # type: ignore[arg-type]
    relay.log_grew(LAUNCHER_UID, {"a": {"log_size": 5}, "b": {"log_size": 7, "phase": "sleeping"}})
    relay.log_grew(LAUNCHER_UID, {"b": {"log_size": 3, "phase": "ready"}})
    # (private records: what a leak would be; a log's size never goes back)
    assert relay._sizes == {LAUNCHER_UID: {"b": 7}}
    assert relay._asleep == {LAUNCHER_UID: frozenset()}
    relay.pod_deleted(launcher())
    assert relay._sizes == {} and relay._asleep == {}


# --- a failed instance's last lines (what stays on the requester) -------------------------------


def test_the_failure_tail_is_the_last_lines_of_the_log_end() -> None:
    fake = FakeLauncher()
    lines = [f"INFO line {n} {'x' * 60}" for n in range(200)] + ["ERROR model not found"]
    fake.log = ("\n".join(lines) + "\n").encode()

    async def scenario() -> str:
        address = launcher_address()
        await fake.server.start(host=address, port=LAUNCHER_PORT)
        http = peer_call_client()
        try:
            peers = Peers(PeerCalls(http, ControllerMetrics(), namespace="ns"), HttpSettings())
            return await peers.log_tail(QueryLogTail(ip=address, instance_id=IID), "isc")
        finally:
            await http.aclose()
            await fake.server.close()

    tail = asyncio.run(scenario())
    assert tail.endswith("ERROR model not found")
    assert len(tail) <= TAIL_CHARS and len(tail.splitlines()) <= TAIL_LINES
    assert all(line in lines for line in tail.splitlines()[1:]), "whole lines, in order"


def test_an_empty_or_missing_log_has_no_tail() -> None:
    assert last_lines(b"", partial_first=False) == ""
    assert last_lines(b"cut\nwhole\n", partial_first=True) == "whole"
