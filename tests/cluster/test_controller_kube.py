"""The controller's Kubernetes plumbing on the real apiserver: informers (and a forced 410),
conditional writes, Events, leader election between two electors, queue + workers together.

Each test runs its own event loop; waits are for conditions, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import yaml

from controller.core import PodPatch, PodRef, UpdateRequester
from controller.observability import (
    ControllerMetrics,
    HealthChecks,
    InformerCollector,
    ObservabilityServer,
    ServerSettings,
    all_synced,
)
from controller.reconciler import PodWrites
from crds import EXAMPLE_FILES
from kube import (
    CONFIG_MAPS,
    EVENTS,
    INFERENCE_SERVER_CONFIGS,
    LEASES,
    PODS,
    ApiError,
    ConnectionSettings,
    EventRecorder,
    EventSettings,
    Handlers,
    Informer,
    InformerSettings,
    JsonObject,
    KubeClient,
    KubeEventSink,
    KubeLeaseStore,
    KubeListWatch,
    LeaderElectionSettings,
    LeaderElector,
    Result,
    WorkQueue,
    delete,
    focus_informers,
    http_client,
    label_index,
    patch_json,
    patch_merge,
    run_informers,
    run_workers,
    update,
    update_if_changed,
    wait_all_synced,
)
from localcluster.controlplane import LocalCluster

FAST = InformerSettings(watch_timeout_s=30)


@contextlib.asynccontextmanager
async def kube(cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    client = KubeClient(http_client(ConnectionSettings(kubeconfig=cluster.kubeconfig)))
    try:
        yield client
    finally:
        await client.aclose()


async def until(
    what: str, check: Callable[[], bool | Awaitable[bool]], deadline_s: float = 20
) -> None:
    """Polls `check` (plain or async) every 20 ms until true; fails naming `what`."""
    try:
        async with asyncio.timeout(deadline_s):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline_s}s waiting for {what}") from None


def configmap(namespace: str, name: str, **labels: str) -> JsonObject:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {}}


def test_informer_sees_adds_updates_deletes_and_indexes_them(
    cluster: LocalCluster, namespace: str
) -> None:
    async def main() -> None:
        async with kube(cluster) as client:
            await client.create(CONFIG_MAPS, configmap(namespace, "before", app="x"))
            source = KubeListWatch(client, CONFIG_MAPS, namespace=namespace)
            informer = Informer(source, indexers={"app": label_index("app")}, settings=FAST)
            seen: list[tuple[str, str]] = []
            informer.add_handlers(
                Handlers(
                    on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                    on_update=lambda _old, new: seen.append(("update", new["metadata"]["name"])),
                    on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])),
                )
            )
            task = asyncio.create_task(informer.run())
            await asyncio.wait_for(informer.wait_synced(), 20)
            assert ("add", "before") in seen

            made = await client.create(CONFIG_MAPS, configmap(namespace, "after", app="x"))
            await until("the add", lambda: ("add", "after") in seen)
            changed = copy.deepcopy(made)
            changed["metadata"]["labels"]["app"] = "y"
            await update(client, CONFIG_MAPS, changed)
            await until("the update", lambda: ("update", "after") in seen)
            assert [o["metadata"]["name"] for o in informer.store.by_index("app", "y")] == ["after"]
            await client.delete(CONFIG_MAPS, "before", namespace=namespace)
            await until("the delete", lambda: ("delete", "before") in seen)
            assert informer.store.get(f"{namespace}/before") is None
            assert informer.store.by_index("app", "x") == []
            task.cancel()

    asyncio.run(main())


@pytest.mark.usefixtures("crds_installed")
def test_informer_recovers_from_410_gone_by_listing_again(
    cluster: LocalCluster, namespace: str
) -> None:
    examples = [dict(yaml.safe_load(p.read_text())) for p in EXAMPLE_FILES]
    isc = next(e for e in examples if e["kind"] == "InferenceServerConfig")

    def named(name: str) -> JsonObject:
        obj = copy.deepcopy(isc)
        obj["metadata"] = {"name": name, "namespace": namespace}
        return obj

    async def main() -> None:
        async with kube(cluster) as client:
            await client.create(INFERENCE_SERVER_CONFIGS, named("one"))
            source = KubeListWatch(client, INFERENCE_SERVER_CONFIGS, namespace=namespace)
            informer = Informer(source, settings=FAST)
            deleted: list[str] = []
            informer.add_handlers(
                Handlers(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
            )
            task = asyncio.create_task(informer.run())
            await asyncio.wait_for(informer.wait_synced(), 20)
            assert informer.lists == 1
            # The custom-resource watch cache starts when the CRD is established, long after
            # resourceVersion 1: resuming from it is answered with 410 Gone.
            informer.reconnect(resource_version="1")
            await until("a second list", lambda: informer.lists == 2)
            await client.create(INFERENCE_SERVER_CONFIGS, named("two"))
            await until("the new ISC", lambda: informer.store.get(f"{namespace}/two") is not None)
            await client.delete(INFERENCE_SERVER_CONFIGS, "one", namespace=namespace)
            await until("the delete", lambda: deleted == ["one"])
            assert informer.lists == 2
            task.cancel()

    asyncio.run(main())


def test_stale_writes_fail_with_409_and_fresh_ones_name_the_field_manager(
    cluster: LocalCluster, namespace: str
) -> None:
    async def main() -> None:
        async with kube(cluster) as client:
            # (v1.20 tracks managedFields only on objects created with some field set.)
            first = await client.create(
                CONFIG_MAPS, {**configmap(namespace, "cm"), "data": {"a": "0"}}
            )
            fresh = await patch_merge(client, CONFIG_MAPS, first, {"data": {"k": "1"}})
            managers = {f["manager"] for f in fresh["metadata"]["managedFields"]}
            assert managers == {"dual-pods-controller"}

            for attempt in (
                update(client, CONFIG_MAPS, {**first, "data": {"k": "2"}}),
                patch_merge(client, CONFIG_MAPS, first, {"data": {"k": "3"}}),
                patch_json(
                    client, CONFIG_MAPS, first, [{"op": "add", "path": "/data/k", "value": "4"}]
                ),
                delete(client, CONFIG_MAPS, first),
            ):
                with pytest.raises(ApiError) as caught:
                    await attempt
                assert caught.value.conflict, caught.value

            same = await update_if_changed(client, CONFIG_MAPS, fresh, lambda _obj: None)
            assert same is fresh  # nothing to change: no write

            # Deleted and recreated under the same name: writes based on the old one fail.
            assert await delete(client, CONFIG_MAPS, fresh)
            await client.create(CONFIG_MAPS, configmap(namespace, "cm"))
            with pytest.raises(ApiError) as caught:
                await update(client, CONFIG_MAPS, fresh)
            assert caught.value.conflict
            with pytest.raises(ApiError) as caught:
                await delete(client, CONFIG_MAPS, fresh, check_version=False)
            assert caught.value.conflict and "UID" in caught.value.message
            assert not await delete(
                client,
                CONFIG_MAPS,
                configmap(namespace, "x")
                | {
                    "metadata": {
                        "name": "x",
                        "namespace": namespace,
                        "uid": "u",
                        "resourceVersion": "1",
                    }
                },
            )

    asyncio.run(main())


def test_requester_updates_change_single_keys_and_fail_on_another_uid(
    cluster: LocalCluster, namespace: str
) -> None:
    """`UpdateRequester` as the apiserver applies it: no version to go stale, one finalizer
    removed with the others kept, and a Pod recreated under the name is not written."""
    fin, other = "dual-pods.llm-d.ai/requester", "example.com/keep"

    async def main() -> None:
        async with kube(cluster) as client:
            writes = PodWrites(client, namespace)
            body = {"metadata": {"name": "req", "finalizers": [other, fin], "labels": {"a": "1"}},
                    # Never scheduled: no kubelet of another test runs it.
                    "spec": {"containers": [{"name": "c", "image": "x"}],
                             "nodeSelector": {"fma-test/nowhere": "true"}}}  # fmt: skip
            created = await client.create(PODS, body, namespace=namespace)
            ref = PodRef(name="req", uid=created["metadata"]["uid"])
            # Changed since (the kubelet writes status meanwhile): no 409. (Unconditional: the
            # scheduler's status write may already have changed `created`.)
            await client.patch(PODS, "req", {"metadata": {"labels": {"b": "2"}}},
                               namespace=namespace)  # fmt: skip
            release = UpdateRequester(
                pod=ref, patch=PodPatch(labels={"a": None}, remove_finalizers=(fin,))
            )
            updated, _ = await writes.update(release, None, "")
            assert updated["metadata"]["finalizers"] == [other]
            assert updated["metadata"]["labels"] == {"b": "2"}
            again = UpdateRequester(pod=ref, patch=PodPatch(add_finalizers=(fin,)))
            updated, _ = await writes.update(again, None, "")
            assert sorted(updated["metadata"]["finalizers"]) == sorted([other, fin])

            # Being deleted with no grace left: the update that empties the finalizers deletes
            # it, and the answer is at the version stored before: the pass waits for "absent".
            await client.patch(PODS, "req", {"metadata": {"finalizers": [fin]}},
                               namespace=namespace)  # fmt: skip
            await client.delete(PODS, "req", namespace=namespace, grace_period_s=0)
            last = await client.get(PODS, "req", namespace=namespace)
            release = UpdateRequester(pod=ref, patch=PodPatch(remove_finalizers=(fin,)))
            answer, expectation = await writes.update(release, None, "")
            assert "finalizers" not in answer["metadata"]
            assert answer["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]
            assert expectation.want == "absent"
            await until("the Pod gone", lambda: _gone(client, namespace, "req"))
            await client.create(PODS, body | {"metadata": {"name": "req"}}, namespace=namespace)
            with pytest.raises(ApiError) as caught:
                await writes.update(again, None, "")
            assert caught.value.not_found, caught.value
            await client.delete(PODS, "req", namespace=namespace, grace_period_s=0)

    asyncio.run(main())


async def _gone(client: KubeClient, namespace: str, name: str) -> bool:
    try:
        await client.get(PODS, name, namespace=namespace)
    except ApiError as exc:
        return exc.not_found
    return False


def test_events_on_a_pod_are_created_and_repeats_counted(
    cluster: LocalCluster, namespace: str
) -> None:
    pod_manifest = {
        "metadata": {"name": "requester", "namespace": namespace},
        "spec": {"containers": [{"name": "inference-server", "image": "stub"}]},
    }

    async def main() -> list[JsonObject]:
        async with kube(cluster) as client:
            pod = await client.create(PODS, pod_manifest)
            recorder = EventRecorder(KubeEventSink(client), EventSettings(instance="replica-0"))
            sender = asyncio.create_task(recorder.run())
            for _ in range(3):
                recorder.normal(pod, "Bound", "bound to launcher-x")
            recorder.warning(pod, "WakeFailed", "POST /wake_up: 500")
            await asyncio.wait_for(recorder.flush(), 20)
            sender.cancel()
            uid = pod["metadata"]["uid"]
            listed = await client.list(
                EVENTS, namespace=namespace, field_selector=f"involvedObject.uid={uid}"
            )
            return list(listed["items"])

    ours = [
        e for e in asyncio.run(main()) if e["source"].get("component") == "dual-pods-controller"
    ]
    events = {e["reason"]: e for e in ours}  # (the scheduler reports on the Pod too)
    assert sorted(events) == ["Bound", "WakeFailed"]
    assert events["Bound"]["count"] == 3 and events["Bound"]["type"] == "Normal"
    assert events["WakeFailed"]["type"] == "Warning"
    assert events["Bound"]["source"]["component"] == "dual-pods-controller"
    assert events["Bound"]["involvedObject"]["name"] == "requester"


def test_leader_election_hands_over_between_two_electors(
    cluster: LocalCluster, namespace: str
) -> None:
    def settings(identity: str, *, release: bool = True) -> LeaderElectionSettings:
        return LeaderElectionSettings(
            namespace=namespace,
            lease_name="fma-test",
            identity=identity,
            lease_duration_s=3,
            renew_deadline_s=2,
            retry_period_s=0.5,
            release_on_exit=release,
        )

    async def holder(client: KubeClient) -> str:
        lease = await client.get(LEASES, "fma-test", namespace=namespace)
        return str(lease["spec"].get("holderIdentity") or "")

    async def main() -> None:
        async with kube(cluster) as client:
            store = KubeLeaseStore(client, namespace, "fma-test")
            leading: dict[str, bool] = {}

            def elector(identity: str, *, release: bool = True) -> LeaderElector:
                return LeaderElector(
                    store,
                    settings(identity, release=release),
                    on_leading_changed=lambda on: leading.__setitem__(identity, on),
                )

            async def work() -> None:
                await asyncio.Future()

            a, b = elector("a", release=False), elector("b")
            task_a = asyncio.create_task(a.run(work))
            await until("a leads", lambda: leading.get("a") is True)
            task_b = asyncio.create_task(b.run(work))
            await until("b sees a", lambda: b.holder == "a")
            assert await holder(client) == "a" and not b.is_leader

            # a crashes without releasing: b waits a lease duration, then takes over.
            loop = asyncio.get_running_loop()
            crashed = loop.time()
            task_a.cancel()
            await until("b leads", lambda: leading.get("b") is True)
            assert loop.time() - crashed >= 2.5
            assert await holder(client) == "b"

            # b shuts down cleanly: it releases, and a new candidate takes over at once.
            c = elector("c")
            task_c = asyncio.create_task(c.run(work))
            await until("c sees b", lambda: c.holder == "b")
            handed = loop.time()
            task_b.cancel()
            await until("c leads", lambda: leading.get("c") is True)
            assert loop.time() - handed < 2.0
            lease = await client.get(LEASES, "fma-test", namespace=namespace)
            assert lease["spec"]["leaseTransitions"] == 2
            task_c.cancel()
            await asyncio.gather(task_a, task_b, task_c, return_exceptions=True)
            assert await holder(client) == ""

    asyncio.run(main())


def test_informer_queue_and_workers_converge(cluster: LocalCluster, namespace: str) -> None:
    """Events → keys → one worker per key → a conditional write → its event → a no-op pass."""

    async def main() -> dict[str, int]:
        async with kube(cluster) as client:
            source = KubeListWatch(
                client, CONFIG_MAPS, namespace=namespace, label_selector="fma-test=queue"
            )
            informer = Informer(source, settings=FAST)
            queue: WorkQueue[str] = WorkQueue()
            informer.add_handlers(
                Handlers(
                    on_add=lambda o: queue.add(o["metadata"]["name"]),
                    on_update=lambda _old, new: queue.add(new["metadata"]["name"]),
                )
            )
            writes: dict[str, int] = {}

            async def reconcile(name: str) -> Result | None:
                current = informer.store.get_by_name(namespace, name)
                if current is None:
                    return None

                def mark(obj: JsonObject) -> None:
                    obj["metadata"].setdefault("annotations", {})["fma.test/seen"] = "yes"

                updated = await update_if_changed(client, CONFIG_MAPS, current, mark)
                if updated is not current:
                    writes[name] = writes.get(name, 0) + 1
                return None

            tasks: list[asyncio.Task[Any]] = [
                asyncio.create_task(informer.run()),
                asyncio.create_task(run_workers(queue, reconcile, workers=2)),
            ]
            for index in range(5):
                await client.create(
                    CONFIG_MAPS, configmap(namespace, f"cm-{index}", **{"fma-test": "queue"})
                )

            def all_marked() -> bool:
                objs = informer.store.objects()
                return len(objs) == 5 and all(
                    (o["metadata"].get("annotations") or {}).get("fma.test/seen") == "yes"
                    for o in objs
                )

            await until("every ConfigMap marked", all_marked)
            await until("the queue drained", lambda: len(queue) == 0)
            queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return writes

    writes = asyncio.run(main())
    assert writes == {f"cm-{i}": 1 for i in range(5)}


@pytest.mark.usefixtures("crds_installed")
def test_focus_informers_sync_and_readyz_says_so(cluster: LocalCluster, namespace: str) -> None:
    async def main() -> tuple[int, int, str, set[str]]:
        async with kube(cluster) as client:
            informers = focus_informers(client, namespace, settings=FAST)
            metrics = ControllerMetrics()
            metrics.registry.register(InformerCollector(lambda: informers))
            readiness = HealthChecks()
            readiness.add(
                "informers", all_synced(lambda: {n: i.has_synced for n, i in informers.items()})
            )
            server = ObservabilityServer(
                metrics.registry,
                readiness=readiness,
                settings=ServerSettings(host="127.0.0.1", port=0),
            )
            await server.start()
            url = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient() as http:
                before = (await http.get(f"{url}/readyz")).status_code
                task = asyncio.create_task(run_informers(informers))
                assert await wait_all_synced(informers, 20)
                after = (await http.get(f"{url}/readyz")).status_code
                scraped = (await http.get(f"{url}/metrics")).text
            task.cancel()
            await server.close()
            names = {informer.name for informer in informers.values()}
            return before, after, scraped, names

    before, after, scraped, names = asyncio.run(main())
    assert (before, after) == (503, 200)
    for plural in ("pods", "nodes", "configmaps", "inferenceserverconfigs", "launcherconfigs"):
        assert f'fma_informer_synced{{resource="{plural}"}} 1.0' in scraped
    assert "nodes" in names  # cluster-scoped: watched without a namespace
    assert f"pods in {namespace}" in names
