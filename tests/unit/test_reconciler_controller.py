"""`DualPodsController.reconcile` with filled caches and mock peers: one cold actuation (query,
create, wait for the own write, wait for the launcher), outcomes to queue results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from controller.core import ServerMemory, Settings
from controller.observability import ControllerMetrics
from controller.reconciler import (
    DualPodsController,
    IscKey,
    LauncherKey,
    ReconcilerSettings,
    ServerKey,
)
from kube import PODS, Detached, EventRecorder, KubeClient, Result
from tests.unit.reconciler_support import NS, Recorder, echo_apiserver, node, pod
from tests.virtualtime import run_virtual


async def settled(made: DualPodsController, key: ServerKey | LauncherKey | IscKey) -> Result | None:
    """`reconcile`, with a pass that left the worker (`Detached`) finished as the pool would."""
    result = await made.reconcile(key)
    while isinstance(result, Detached):
        result = await result.rest
    return result


ISC_KEY = "dual-pods.llm-d.ai/inference-server-config"
KEY = ServerKey("req-uid", "req")
MSC = {"port": 8005, "options": "--model m"}
ISC = {"metadata": {"name": "isc1", "namespace": NS, "resourceVersion": "1"},
       "spec": {"launcherConfigName": "lc", "modelServerConfig": MSC}}  # fmt: skip
LC = {"metadata": {"name": "lc", "namespace": NS, "uid": "lc-uid", "resourceVersion": "1"},
      "spec": {"maxInstances": 2, "podTemplate": {"spec": {"containers": [
          {"name": "inference-server", "image": "launcher"}]}}}}  # fmt: skip


class _Sink:
    async def create(self, namespace: str, event: dict[str, object]) -> dict[str, object]:
        return event

    async def patch(self, namespace: str, name: str, patch: dict[str, object]) -> dict[str, object]:
        return patch


def controller(api: Recorder, peers: Recorder, *, max_detached: int = 64) -> DualPodsController:
    client = KubeClient(httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="https://k"))
    core = Settings(memory_check=False)
    settings = ReconcilerSettings(namespace=NS, core=core, max_detached=max_detached)
    made = DualPodsController(
        client,
        settings,
        metrics=ControllerMetrics(),
        recorder=EventRecorder(_Sink()),
        peer_transport=httpx.MockTransport(peers),
    )
    stores = {name: informer.store for name, informer in made.informers.items()}
    stores["pods"].upsert(pod("req", uid="req-uid", annotations={ISC_KEY: "isc1"}))
    stores["nodes"].upsert(node("n1"))
    stores["inferenceserverconfigs"].upsert(ISC)
    stores["launcherconfigs"].upsert(LC)
    return made


def gpus(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=["GPU-0"])


def test_a_cold_actuation_runs_its_passes_in_a_row_until_the_cache_lags() -> None:
    async def main() -> None:
        api, peers = Recorder(echo_apiserver), Recorder(gpus)
        made = controller(api, peers)
        # Asked for the GPUs, then created the launcher in the next pass; the informers are
        # not running here, so the cache does not show the new launcher: wait for it.
        assert await settled(made, KEY) == Result(requeue_after=1.0)
        assert made.memories[KEY.uid].gpu_uuids == ("GPU-0",)
        created = api.bodies()[0]
        assert created["metadata"]["generateName"] == "launcher-lc-"
        assert created["metadata"]["annotations"]["dual-pods.llm-d.ai/requester"] == "req-uid req"
        assert created["metadata"]["finalizers"] == ["dual-pods.llm-d.ai/provider"]
        assert made.memories[KEY.uid].path == "cold"
        assert await settled(made, KEY) == Result(requeue_after=1.0)
        assert len(api.requests) == 1, "the requester waits until the launcher has its name"
        launcher = pod("launcher-lc-abcde", uid="launcher-lc-abcde-uid", ip=None, rv="11",
                       annotations=created["metadata"]["annotations"],
                       labels=created["metadata"]["labels"], pinned="n1",
                       created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        made.informers[PODS.plural].store.upsert(launcher)
        made.informers[PODS.plural].store.upsert(pod("req", uid="req-uid", rv="10",
                                                     annotations={ISC_KEY: "isc1"}))  # fmt: skip
        # Bound: the requester's labels and status are written, and the pass that wrote them
        # decides again at once, which waits until the cache shows that write.
        assert await settled(made, KEY) == Result(requeue_after=1.0)
        written = api.bodies()[-1]["metadata"]
        assert api.requests[-1].url.path.endswith("/pods/req")
        assert written["labels"]["dual-pods.llm-d.ai/dual"] == "launcher-lc-abcde"
        assert written["finalizers"] == ["dual-pods.llm-d.ai/requester"], "held from the bind"
        requester = pod("req", uid="req-uid", rv="11", labels=written["labels"],
                        annotations={ISC_KEY: "isc1", **written["annotations"]},
                        finalizers=written["finalizers"])  # fmt: skip
        made.informers[PODS.plural].store.upsert(requester)
        result = await settled(made, KEY)  # the launcher is starting: wait for it
        assert isinstance(result, Result) and result.requeue_after is not None
        assert result.requeue_after > 100  # the launcher's start deadline (900 s)
        assert len(api.requests) == 2, "one write of the requester, nothing written again"
        await made.executor.peers.calls.http.aclose()

    run_virtual(main)


def test_a_failure_retries_and_a_vanished_server_is_forgotten() -> None:
    async def main() -> None:
        refused = Recorder(lambda request: httpx.Response(503, text="starting"))
        made = controller(Recorder(echo_apiserver), refused)
        assert await settled(made, KEY) == Result(retry=True)
        made.memories[KEY.uid] = ServerMemory(gpu_uuids=("GPU-0",))
        made.informers[PODS.plural].store.delete(pod("req"))
        assert await settled(made, KEY) is None
        assert KEY.uid not in made.memories

    run_virtual(main)


def test_other_items_without_work_end_quietly() -> None:
    async def main() -> None:
        made = controller(Recorder(echo_apiserver), Recorder(gpus))
        assert await settled(made, LauncherKey("nope", "nope")) is None
        bad = {**ISC, "spec": {"modelServerConfig": {"port": "x"}}}
        made.informers["inferenceserverconfigs"].store.upsert(bad)
        assert await settled(made, IscKey("isc1")) is None  # unreadable: no collection
        assert await settled(made, IscKey("other")) is None  # deleted ISC, no launchers

    run_virtual(main)


def test_an_answered_query_is_acted_on_at_once_and_the_poll_is_kept_for_later() -> None:
    """A pass that asks and polls ([query, Requeue]) goes on at once when the answer came."""
    from controller.core import Action, QueryAccelerators, Requeue
    from controller.reconciler._controller import _Step
    from controller.reconciler._executor import PassContext

    async def main() -> None:
        made = controller(Recorder(echo_apiserver), Recorder(gpus))
        script: list[list[Action]] = [
            [QueryAccelerators(ip="10.0.0.1", port=8081), Requeue(after=5.0, reason="poll")],
            [Requeue(after=7.0, reason="later")],
        ]
        decided: list[int] = []

        def decide(key: ServerKey) -> _Step | None:
            decided.append(len(script))
            if not script:
                return None
            return _Step(script.pop(0), ServerMemory(), PassContext(item=key, decided_at=0.0))

        made._decide = decide  # type: ignore[method-assign,assignment]
        assert await settled(made, KEY) == Result(requeue_after=5.0)
        assert decided == [2, 1]  # the second pass came at once, and its own Requeue is later
        await made.executor.peers.calls.http.aclose()

    run_virtual(main)


def test_a_stub_not_listening_yet_is_polled_again_soon_not_on_the_backoff() -> None:
    from controller.core import Action, QueryAccelerators
    from controller.reconciler._controller import _Step
    from controller.reconciler._executor import PassContext

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def main() -> None:
        made = controller(Recorder(echo_apiserver), Recorder(refuse))

        def decide_with(poll_after: float | None) -> None:
            def decide(key: ServerKey) -> _Step:
                query: Action = QueryAccelerators(ip="10.0.0.1", port=8081, poll_after=poll_after)
                return _Step([query], ServerMemory(), PassContext(item=key, decided_at=0.0))

            made._decide = decide  # type: ignore[method-assign,assignment]

        decide_with(0.1)  # the stub has just started
        assert await settled(made, KEY) == Result(requeue_after=0.1)
        decide_with(None)  # long started: a failure like any other
        assert await settled(made, KEY) == Result(retry=True)
        await made.executor.peers.calls.http.aclose()

    run_virtual(main)


def test_slow_passes_leave_the_worker_up_to_a_limit_then_a_worker_runs_them() -> None:
    from controller.core import Wake
    from controller.reconciler._controller import _Step
    from controller.reconciler._executor import PassContext

    async def main() -> None:
        made = controller(Recorder(echo_apiserver), Recorder(gpus), max_detached=1)
        woken: set[str] = set()

        def decide(key: ServerKey) -> _Step | None:
            if key.uid in woken:
                return None
            woken.add(key.uid)
            wake = Wake(ip="10.0.0.9", port=8005)
            return _Step([wake], ServerMemory(), PassContext(item=key, decided_at=0.0))

        made._decide = decide  # type: ignore[method-assign,assignment]
        first, second, third = (ServerKey(f"{n}-uid", n) for n in ("first", "second", "third"))
        detached = await made.reconcile(first)  # a wake: leaves the worker
        assert isinstance(detached, Detached)
        # The one slot is taken: the next slow pass is run by the worker that took it.
        assert not isinstance(await made.reconcile(second), Detached)
        await detached.rest  # done: the slot is free again
        again = await made.reconcile(third)
        assert isinstance(again, Detached)
        await again.rest
        await made.executor.peers.calls.http.aclose()

    run_virtual(main)


def test_followed_logs_do_not_take_connections_of_the_shared_pool(tmp_path: Path) -> None:
    """Each bound direct server's log is a stream held open for as long as it serves; in the
    pool the other calls share, a few dozen of them stopped every write."""
    from kube import ConnectionSettings, stream_client

    async def main() -> None:
        api = Recorder(echo_apiserver)
        client = KubeClient(
            httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="https://k")
        )
        logs = KubeClient(
            httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="https://k")
        )
        made = DualPodsController(
            client,
            ReconcilerSettings(namespace=NS, core=Settings(memory_check=False)),
            metrics=ControllerMetrics(),
            recorder=EventRecorder(_Sink()),
            log_client=logs,
        )
        assert made.logs is not None and made.logs.kube is logs
        await made.executor.peers.calls.http.aclose()

    run_virtual(main)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    settings = ConnectionSettings(kubeconfig=kubeconfig, max_connections=64)
    pool = stream_client(settings)._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == settings.max_streams > settings.max_connections
