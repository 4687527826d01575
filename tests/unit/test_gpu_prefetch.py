"""GPU queries asked ahead of the passes (`GpuPrefetch`).

One test goes over real HTTP to the real requester stub, started only after the requester
"has an IP" (as a stub that is still importing); the others drive the timing with a scripted
peer, since what matters there is how often the stub is asked and who waits for what.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from controller.core import QueryAccelerators
from controller.observability import ControllerMetrics
from controller.reconciler._http import CallError, HttpSettings, PeerCalls, peer_call_client
from controller.reconciler._peers import Peers
from controller.reconciler._prefetch import GpuPrefetch
from launcher.requester import FixedGpus, RequesterConfig
from launcher.requester.server import serve_requester

PORT = 8081


def requester(uid: str, ip: str | None, *, node: str | None = "n1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"req-{uid}",
            "uid": uid,
            "annotations": {
                "dual-pods.llm-d.ai/inference-server-config": "isc",
                "dual-pods.llm-d.ai/admin-port": str(PORT),
            },
        },
        "spec": {"nodeName": node} if node else {},
        "status": {"podIP": ip} if ip else {},
    }


def query(ip: str) -> QueryAccelerators:
    return QueryAccelerators(ip=ip, port=PORT)


class ScriptedPeers:
    """`Peers.accelerators` whose answers the test releases; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.listening = True
        self.gate = asyncio.Event()
        self.gate.set()

    async def accelerators(self, action: QueryAccelerators, isc: str) -> list[str]:
        self.calls += 1
        await self.gate.wait()
        if not self.listening:
            raise CallError("connection refused")
        return [f"GPU-{action.ip}"]


def outcomes(counter: Counter) -> dict[str, float]:
    return {
        outcome: counter.labels(outcome)._value.get()
        for outcome in ("hit", "joined", "pending", "missed")
    }


def prefetching(
    scenario: Callable[[GpuPrefetch, ScriptedPeers, Counter], Awaitable[None]],
    *,
    known: Callable[[str], bool] = lambda _uid: False,
    requeued: list[str] | None = None,
) -> None:
    async def main() -> None:
        peers = ScriptedPeers()
        counter = ControllerMetrics(CollectorRegistry()).gpu_prefetch
        prefetch = GpuPrefetch(
            peers,  # type: ignore[arg-type]
            counter,
            known=known,
            answered=lambda pod: (requeued if requeued is not None else []).append(
                pod["metadata"]["uid"]
            ),
            limit=2,
            poll_s=0.01,
            window_s=5.0,
        )
        try:
            await scenario(prefetch, peers, counter)
        finally:
            await prefetch.aclose()

    asyncio.run(main())


def test_the_answer_is_asked_once_as_the_ip_appears_and_the_pass_finds_it() -> None:
    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        prefetch.pod_changed(requester("a", None))
        await asyncio.sleep(0.05)
        assert peers.calls == 0, "no IP, nothing to ask"
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        prefetch.pod_changed(requester("a", "10.0.0.1"))  # a later status write
        await asyncio.sleep(0.05)
        assert peers.calls == 1
        assert await prefetch.take(query("10.0.0.1")) == ["GPU-10.0.0.1"]
        assert peers.calls == 1
        assert await prefetch.take(query("10.0.0.1")) is None, "an answer is used once"
        assert outcomes(counter) == {"hit": 1, "joined": 0, "pending": 0, "missed": 1}

    prefetching(scenario)


def test_a_pass_joins_the_call_under_way_instead_of_asking_again() -> None:
    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        peers.gate.clear()
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        await asyncio.sleep(0.02)
        taking = asyncio.create_task(prefetch.take(query("10.0.0.1")))
        await asyncio.sleep(0.02)
        assert not taking.done()
        peers.gate.set()
        assert await taking == ["GPU-10.0.0.1"]
        assert peers.calls == 1
        assert outcomes(counter)["joined"] == 1

    prefetching(scenario)


def test_a_stub_not_listening_yet_is_polled_outside_the_pass() -> None:
    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        peers.listening = False
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        await asyncio.sleep(0.1)
        assert peers.calls > 2, "asked again every poll_s"
        peers.listening = True
        await asyncio.sleep(0.05)
        assert await prefetch.take(query("10.0.0.1")) == ["GPU-10.0.0.1"]

    prefetching(scenario)


def test_a_pass_that_comes_between_two_tries_ends_and_is_requeued_with_the_answer() -> None:
    requeued: list[str] = []

    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        peers.listening = False
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        await asyncio.sleep(0.005)  # between two tries: each is refused at once
        assert prefetch.pending(query("10.0.0.1")), "the pass ends; no call of its own"
        await asyncio.sleep(0.05)
        assert requeued == [], "nothing to come back for yet"
        peers.listening = True
        await asyncio.sleep(0.05)
        assert requeued == ["a"]
        assert not prefetch.pending(query("10.0.0.1"))
        assert await prefetch.take(query("10.0.0.1")) == ["GPU-10.0.0.1"]
        assert outcomes(counter) == {"hit": 1, "joined": 0, "pending": 1, "missed": 0}

    prefetching(scenario, requeued=requeued)


def test_a_pass_is_not_requeued_when_it_never_waited() -> None:
    requeued: list[str] = []

    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        await asyncio.sleep(0.05)
        assert await prefetch.take(query("10.0.0.1")) == ["GPU-10.0.0.1"]
        assert requeued == [], "its pass was queued by the Pod event already"

    prefetching(scenario, requeued=requeued)


def test_a_stub_that_never_listens_is_given_up_and_its_pass_asks_itself() -> None:
    requeued: list[str] = []

    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        prefetch.window_s = 0.05
        peers.listening = False
        prefetch.pod_changed(requester("a", "10.0.0.1"))
        await asyncio.sleep(0.005)
        assert prefetch.pending(query("10.0.0.1"))
        await asyncio.sleep(0.1)
        assert requeued == ["a"], "given up: the pass comes back and asks itself"
        asked = peers.calls
        assert not prefetch.pending(query("10.0.0.1"))
        assert await prefetch.take(query("10.0.0.1")) is None
        await asyncio.sleep(0.05)
        assert peers.calls == asked

    prefetching(scenario, requeued=requeued)


def test_known_gpus_and_deleted_requesters_are_not_asked() -> None:
    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        prefetch.pod_changed(requester("known", "10.0.0.1"))
        peers.listening = False
        prefetch.pod_changed(requester("gone", "10.0.0.2"))
        await asyncio.sleep(0.03)
        asked = peers.calls
        prefetch.pod_deleted(requester("gone", "10.0.0.2"))
        await asyncio.sleep(0.05)
        assert peers.calls == asked, "a deleted requester's polling stops"
        assert ("10.0.0.1", PORT) not in prefetch._fetches

    prefetching(scenario, known=lambda uid: uid == "known")


def test_at_most_limit_calls_at_once() -> None:
    async def scenario(prefetch: GpuPrefetch, peers: ScriptedPeers, counter: Counter) -> None:
        peers.gate.clear()
        for n in range(6):
            prefetch.pod_changed(requester(f"r{n}", f"10.0.0.{n + 1}"))
        await asyncio.sleep(0.05)
        assert peers.calls == 2
        peers.gate.set()
        await asyncio.sleep(0.05)
        assert peers.calls == 6
        found = [await prefetch.take(query(f"10.0.0.{n + 1}")) for n in range(6)]
        assert found == [[f"GPU-10.0.0.{n + 1}"] for n in range(6)]

    prefetching(scenario)


def test_over_http_the_stub_that_starts_late_is_read_ahead() -> None:
    """The real stub and the controller's real peer client: the stub starts listening 0.2 s
    after its requester showed an IP; the pass then finds the GPUs without calling."""
    address = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"

    async def main() -> None:
        http = peer_call_client()
        metrics = ControllerMetrics(CollectorRegistry())
        peers = Peers(PeerCalls(http, metrics, namespace="ns"), HttpSettings())
        prefetch = GpuPrefetch(
            peers,
            metrics.gpu_prefetch,
            known=lambda _: False,
            answered=lambda _: None,
            limit=4,
            poll_s=0.05,
            window_s=5,
        )
        prefetch.pod_changed(requester("a", address))
        await asyncio.sleep(0.2)
        config = RequesterConfig(
            host=address,
            probes_port=0,
            spi_port=PORT,
            proxy_port=None,
            gpus=FixedGpus(("GPU-7", "GPU-9")),
            log_sink=io.BytesIO(),
            threaded_log_writes=False,
        )
        stub = await serve_requester(config)
        try:
            for _ in range(100):
                fetch = prefetch._fetches.get((address, PORT))
                if fetch is not None and fetch.task.done():
                    break
                await asyncio.sleep(0.02)
            assert await prefetch.take(query(address)) == ["GPU-7", "GPU-9"]
            assert outcomes(metrics.gpu_prefetch)["hit"] == 1
        finally:
            await prefetch.aclose()
            await stub.close()
            await http.aclose()

    asyncio.run(main())
