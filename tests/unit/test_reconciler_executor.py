"""The executor against recording mock transports: order, first failure stops, preconditions and
resourceVersion chaining, expectations, launcher holds, Events and metrics (no cluster)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from controller.core import (
    BindProvider,
    CreateInstance,
    CreateLauncher,
    DeleteInstance,
    DeleteRequester,
    EmitEvent,
    EnqueueRequesters,
    ForgetServer,
    ObserveActuation,
    PodPatch,
    PodRef,
    QueryAccelerators,
    RelayReady,
    Remember,
    Requeue,
    ServerMemory,
    Sleep,
    UnbindProvider,
    UpdateProvider,
    UpdateRequester,
    Wake,
)
from controller.reconciler import PassContext, ServerKey
from tests.unit.reconciler_support import (
    NOW,
    FakeStreams,
    echo_apiserver,
    executor,
    pod,
    state,
)
from tests.virtualtime import run_virtual

CTX = PassContext(item=ServerKey("req-uid", "req"), decided_at=NOW - 1, isc_name="isc1")
REQ = PodRef(name="req", uid="req-uid", resource_version="10")
FIN = "dual-pods.llm-d.ai/requester"
LAUNCHER_IP = "10.0.1.1"


def launcher_state() -> tuple[FakeStreams, object]:
    streams = FakeStreams(
        {
            "l-uid": {
                "i1": {
                    "instance_id": "i1",
                    "status": "running",
                    "phase": "sleeping",
                    "revision": 3,
                    "annotations": {"isc-name": "isc1", "inference-port": "8005"},
                }
            }
        }
    )
    launcher = pod(
        "l",
        uid="l-uid",
        ip=LAUNCHER_IP,
        labels={"dual-pods.llm-d.ai/launcher-config-name": "lc"},
        pinned="n1",
    )
    return streams, state(pods=[pod("req", uid="req-uid"), launcher], streams=streams)


def test_writes_chain_versions_and_carry_preconditions() -> None:
    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid", finalizers=["other"])])
        async with executor(cluster) as w:
            add = UpdateProvider(pod=REQ, patch=PodPatch(add_finalizers=(FIN,)))
            label = UpdateProvider(pod=REQ, patch=PodPatch(labels={"a": None}))
            delete = DeleteRequester(pod=REQ)
            outcome = await w.executor.run([add, label, delete], ServerMemory(), CTX)
            assert outcome.failure is None and outcome.acted
            first, second, third = w.apiserver.bodies()
            assert first["metadata"] == {
                "uid": "req-uid",
                "resourceVersion": "10",
                "finalizers": ["other", FIN],
            }
            assert second["metadata"]["resourceVersion"] == "11"  # chained from the answer
            assert second["metadata"]["labels"] == {"a": None}
            assert third["preconditions"] == {"uid": "req-uid", "resourceVersion": "12"}
            assert third["propagationPolicy"] == "Background"
            assert (
                w.apiserver.requests[0]
                .headers["content-type"]
                .startswith("application/merge-patch+json")
            )

    run_virtual(main)


def test_requester_updates_hold_on_the_uid_and_change_single_finalizers() -> None:
    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid", finalizers=["other", FIN])])
        async with executor(cluster) as w:
            release = UpdateRequester(
                pod=REQ, patch=PodPatch(labels={"a": None}, remove_finalizers=(FIN,))
            )
            outcome = await w.executor.run([release], ServerMemory(), CTX)
            assert outcome.failure is None
            (body,) = w.apiserver.bodies()
            # No resourceVersion: the kubelet's status writes in between do not make it a 409,
            # and no whole list: a finalizer someone else adds meanwhile stays.
            assert body["metadata"] == {
                "uid": "req-uid",
                "labels": {"a": None},
                "$deleteFromPrimitiveList/finalizers": [FIN],
            }
            content_type = w.apiserver.requests[0].headers["content-type"]
            assert content_type.startswith("application/strategic-merge-patch+json")

    run_virtual(main)


def test_an_update_that_deleted_the_requester_waits_until_it_left_the_cache() -> None:
    def deleted(request: httpx.Request) -> httpx.Response:
        # The apiserver's answer when the update emptied the finalizers of a Pod deleted with
        # no grace left: the update applied, at the version stored before (v1.20).
        meta = {
            "name": "req",
            "uid": "req-uid",
            "resourceVersion": "10",
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
        }
        return httpx.Response(200, json={"kind": "Pod", "metadata": meta})  # fmt: skip

    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid", finalizers=[FIN])])
        async with executor(cluster, apiserver=deleted) as w:
            release = UpdateRequester(pod=REQ, patch=PodPatch(remove_finalizers=(FIN,)))
            outcome = await w.executor.run([release], ServerMemory(), CTX)
            assert outcome.failure is None
            # The cache still shows version 10 with the finalizer: deciding on it would remove
            # the finalizer again, from a Pod that is gone.
            assert w.expectations.wait_for(CTX.item, cluster.pod)
            assert not w.expectations.wait_for(CTX.item, lambda name: None)

    run_virtual(main)


def test_first_failure_stops_the_pass_and_is_recorded() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="boom")

    async def main() -> None:
        async with executor(state(pods=[pod("req", uid="req-uid")]), peers=refuse) as w:
            actions = [QueryAccelerators(ip="10.0.0.1", port=8081), Requeue(after=3)]
            outcome = await w.executor.run(actions, ServerMemory(), CTX)
            assert outcome.failure is not None and "HTTP 500" in outcome.failure
            assert outcome.memory.gpu_error is not None and "boom" in outcome.memory.gpu_error
            assert outcome.requeue_after is None  # the Requeue after the failure never ran
            labels = {"purpose": "get_gpu_uuids", "method": "GET", "exported_namespace": "ns",
                      "isc_name": "isc1", "status_code": "500"}  # fmt: skip
            sample = w.metrics.registry.get_sample_value
            assert sample("fma_http_latency_seconds_count", labels) == 1

    run_virtual(main)


def test_conflict_is_a_failure() -> None:
    def conflict(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"kind": "Status", "reason": "Conflict", "message": "x"})

    async def main() -> None:
        async with executor(state(pods=[pod("req", uid="req-uid")]), apiserver=conflict) as w:
            bind = BindProvider(pod=REQ, patch=PodPatch(labels={"x": "y"}))
            outcome = await w.executor.run([bind, Remember(what="relayed")], ServerMemory(), CTX)
            assert outcome.failure is not None and "409" in outcome.failure
            assert outcome.memory.relayed_ready is None

    run_virtual(main)


def test_results_reach_the_memory_and_bookkeeping_needs_no_io() -> None:
    async def main() -> None:
        def gpus(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json=["GPU-1"])

        async with executor(state(), peers=gpus) as w:
            actions = [
                QueryAccelerators(ip="10.0.0.1", port=8081),
                EnqueueRequesters(node="n1"),
                Requeue(after=5),
                Requeue(after=2),
                ForgetServer(),
            ]
            outcome = await w.executor.run(actions, ServerMemory(), CTX)
            assert outcome.memory.gpu_uuids == ("GPU-1",)
            assert outcome.requeue_after == 2 and outcome.forget
            assert w.enqueued == ["n1"]
            assert str(w.peers.requests[0].url) == (
                "http://10.0.0.1:8081/v1/dual-pods/accelerators"
            )

    run_virtual(main)


def test_pod_writes_set_expectations_until_the_cache_shows_them() -> None:
    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid")])
        async with executor(cluster, apiserver=echo_apiserver) as w:
            update = UpdateRequester(pod=REQ, patch=PodPatch(labels={"a": "b"}))
            await w.executor.run([update], ServerMemory(), CTX)
            assert w.expectations.wait_for(CTX.item, cluster.pod)  # cache still at 10
            cluster.pods.upsert(pod("req", uid="req-uid", rv="11"))
            assert not w.expectations.wait_for(CTX.item, cluster.pod)

    run_virtual(main)


def test_created_launcher_is_expected_observed_and_announced() -> None:
    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid")])
        async with executor(cluster) as w:
            body = {"metadata": {"generateName": "launcher-lc-"}, "spec": {}}
            create = CreateLauncher(pod=body, lc_name="lc")
            outcome = await w.executor.run([create], ServerMemory(), CTX)
            assert outcome.memory.path == "cold"
            sent = w.apiserver.bodies()[0]
            assert sent["metadata"]["namespace"] == "ns" and sent["kind"] == "Pod"
            assert w.expectations.wait_for(CTX.item, cluster.pod)  # until the informer has it
            labels = {"exported_namespace": "ns", "lcfg_name": "lc", "success": "true"}
            sample = w.metrics.registry.get_sample_value
            assert sample("fma_launcher_create_seconds_count", labels) == 1

    run_virtual(main)


def test_wake_sleep_and_delete_hold_the_instance_until_the_stream_catches_up() -> None:
    async def main() -> None:
        streams, cluster = launcher_state()
        assert isinstance(cluster, type(state()))
        async with executor(cluster) as w:
            await w.executor.run([Wake(ip=LAUNCHER_IP, port=8005)], ServerMemory(), CTX)
            (view,) = cluster.launcher_view(cluster.pod_by_uid("l-uid") or {}, NOW).instances or ()
            assert view.phase == "ready"  # the stream still says sleeping at revision 3
            await w.executor.run([Sleep(ip=LAUNCHER_IP, port=8005)], ServerMemory(), CTX)
            (view,) = cluster.launcher_view(cluster.pod_by_uid("l-uid") or {}, NOW).instances or ()
            assert view.phase == "sleeping" and view.last_used == NOW
            ref = PodRef(name="l", uid="l-uid")
            delete = DeleteInstance(launcher=ref, ip=LAUNCHER_IP, instance_id="i1", reason="evict")
            await w.executor.run([delete], ServerMemory(), CTX)
            assert cluster.launcher_view(cluster.pod_by_uid("l-uid") or {}, NOW).instances == ()
            urls = [(r.method, str(r.url)) for r in w.peers.requests]
            assert urls == [
                ("POST", "http://10.0.1.1:8005/wake_up"),
                ("POST", "http://10.0.1.1:8005/sleep"),
                ("DELETE", "http://10.0.1.1:8001/v2/vllm/instances/i1"),
            ]
            instance = streams.views["l-uid"]["i1"]
            streams.views["l-uid"]["i1"] = {**instance, "revision": 4}
            view_now = cluster.launcher_view(cluster.pod_by_uid("l-uid") or {}, NOW)
            assert view_now.instances == (), "newer, but still running: its child is exiting"
            streams.views["l-uid"]["i1"] = {**instance, "revision": 5, "status": "stopped"}
            (view,) = cluster.launcher_view(cluster.pod_by_uid("l-uid") or {}, NOW).instances or ()
            assert view.stopped  # the launcher's word again

    run_virtual(main)


def test_create_instance_accepts_an_existing_one_and_delete_a_missing_one() -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # after the 409: the instance exists
            return httpx.Response(200, json={"instance_id": "i2", "status": "running"})
        return httpx.Response(409 if request.method == "PUT" else 404, json={"detail": "x"})

    async def main() -> None:
        _streams, cluster = launcher_state()
        assert isinstance(cluster, type(state()))
        async with executor(cluster, peers=answers) as w:
            ref = PodRef(name="l", uid="l-uid")
            create = CreateInstance(launcher=ref, ip=LAUNCHER_IP, instance_id="i2", config={})
            delete = DeleteInstance(
                launcher=ref, ip=LAUNCHER_IP, instance_id="i9", reason="reclaim"
            )
            outcome = await w.executor.run([delete, create], ServerMemory(), CTX)
            assert outcome.failure is None and outcome.memory.instance_known
            assert outcome.memory.instances_deleted == 1 and outcome.memory.path == "warm"
            assert json.loads(w.peers.requests[1].content) == {}

    run_virtual(main)


def test_a_refused_put_is_told_from_a_duplicate_and_recorded() -> None:
    """The reference's 409 for an unknown GPU UUID: the GET of the id answers 404. fma's
    launcher answers 422. Either is a refusal for the core, quoting the launcher's answer."""
    detail = {"detail": "Unknown GPU UUID: GPU-7"}

    async def case(put_status: int) -> tuple[object, list[str]]:
        def answers(request: httpx.Request) -> httpx.Response:
            if request.method == "PUT":
                return httpx.Response(put_status, json=detail)
            return httpx.Response(404, json={"detail": "Instance i2 not found"})

        _streams, cluster = launcher_state()
        assert isinstance(cluster, type(state()))
        async with executor(cluster, peers=answers) as w:
            ref = PodRef(name="l", uid="l-uid")
            create = CreateInstance(launcher=ref, ip=LAUNCHER_IP, instance_id="i2", config={})
            outcome = await w.executor.run([create, Requeue(after=3)], ServerMemory(), CTX)
            assert outcome.failure is not None and not outcome.expected
            assert outcome.requeue_after is None
            return outcome.memory.refusal, [r.method for r in w.peers.requests]

    async def main() -> None:
        refusal, methods = await case(409)
        assert methods == ["PUT", "GET"]
        assert isinstance(refusal, str)
        assert "HTTP 409" in refusal and "Unknown GPU UUID: GPU-7" in refusal
        assert "GET answers 404" in refusal
        refusal, methods = await case(422)
        assert methods == ["PUT"]
        assert isinstance(refusal, str) and "HTTP 422" in refusal and "GPU-7" in refusal

    run_virtual(main)


def test_a_failed_put_is_retried_not_refused() -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="boom")

    async def main() -> None:
        _streams, cluster = launcher_state()
        assert isinstance(cluster, type(state()))
        async with executor(cluster, peers=answers) as w:
            ref = PodRef(name="l", uid="l-uid")
            create = CreateInstance(launcher=ref, ip=LAUNCHER_IP, instance_id="i2", config={})
            outcome = await w.executor.run([create], ServerMemory(), CTX)
            assert outcome.failure is not None and "HTTP 500" in outcome.failure
            assert outcome.memory.refusal is None

    run_virtual(main)


def test_events_and_the_actuation_metric() -> None:
    async def main() -> None:
        requester = pod("req", uid="req-uid")
        cluster = state(pods=[requester])
        ctx = PassContext(item=CTX.item, decided_at=NOW - 1, isc_name="isc1", target=requester)
        async with executor(cluster) as w:
            actions = [
                RelayReady(ip="10.0.0.1", port=8081, uid="req-uid"),
                ObserveActuation(
                    path="hot", instances_deleted=0, seconds=1, isc_name="isc1", started_at=NOW - 3
                ),
                EmitEvent(pod=REQ, type="Warning", reason="ServerFailed", message="oops"),
                BindProvider(  # the bind is the labels and status: no Event of its own
                    pod=PodRef(name="l", uid="l-uid", resource_version="5"),
                    patch=PodPatch(labels={"x": "y"}),
                ),
                UnbindProvider(
                    pod=PodRef(name="l", uid="l-uid", resource_version="6"),
                    patch=PodPatch(labels={"x": None}),
                ),
            ]
            outcome = await w.executor.run(actions, ServerMemory(), ctx)
            assert outcome.memory.actuation_observed and outcome.memory.relayed_at == NOW
            labels = {"exported_namespace": "ns", "path": "hot", "instancesDeleted": "0",
                      "isc_name": "isc1"}  # fmt: skip
            sample = w.metrics.registry.get_sample_value
            assert sample("fma_actuation_seconds_sum", labels) == 3.0  # start → relay answered
            task = asyncio.create_task(w.recorder.run())
            await w.recorder.flush()
            task.cancel()
            sink = w.recorder.sink
            reasons = [e["reason"] for e in sink.events]  # type: ignore[attr-defined]
            assert reasons == ["ServerFailed", "Unbound"]

    run_virtual(main)


def test_slow_calls_are_told_apart_so_their_pass_can_leave_the_worker() -> None:
    from controller.reconciler._executor import Executor

    wake = Wake(ip=LAUNCHER_IP, port=8005)
    update = UpdateRequester(pod=REQ, patch=PodPatch(labels={"a": "b"}))
    assert Executor.slow([wake, update])
    assert Executor.slow([Sleep(ip=LAUNCHER_IP, port=8005)])
    assert not Executor.slow([update, QueryAccelerators(ip="10.0.0.1", port=8081)])
    assert not Executor.slow([update, RelayReady(ip="10.0.0.1", port=8081, uid="u")])


def test_every_pod_the_apiserver_returns_is_written_through_to_the_cache() -> None:
    async def main() -> None:
        cluster = state(pods=[pod("req", uid="req-uid")])
        async with executor(cluster, apiserver=echo_apiserver) as w:
            seen: list[str] = []

            def through(obj: dict[str, Any], item: object) -> bool:
                assert item == CTX.item
                seen.append(obj["metadata"]["name"])
                return True

            w.executor.write_through = through
            update = UpdateRequester(pod=REQ, patch=PodPatch(labels={"a": "b"}))
            await w.executor.run([update], ServerMemory(), CTX)
            assert seen == ["req"]

    run_virtual(main)
