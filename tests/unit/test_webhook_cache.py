"""The watch caches without a cluster: `kube`'s informers over a scripted apiserver.

List, watch, resume, backoff and 410 are `kube.Informer`'s rules (tests/unit/test_kube_informer.py);
here we pin down what the webhook adds: which resources it watches (cluster-wide), what each
informer keeps, how objects reach the converted stores the handlers read, and when the cache
reports itself synced. Virtual time, `httpx.MockTransport`: the real `KubeClient` underneath.
The real apiserver is tests/cluster/test_webhook_cache.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from kube import (
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NAMESPACES,
    REPLICA_SETS,
    STATEFUL_SETS,
    InformerSettings,
    JsonObject,
    KubeClient,
)
from tests.virtualtime import run_virtual
from webhook.cache import Store, WebhookCache, parse_isc

PATHS = {
    "Namespace": NAMESPACES.path(),
    "InferenceServerConfig": INFERENCE_SERVER_CONFIGS.path(),
    "LauncherConfig": LAUNCHER_CONFIGS.path(),
    "ReplicaSet": REPLICA_SETS.path(),
    "StatefulSet": STATEFUL_SETS.path(),
}
CLOSE = object()
MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]


def obj(kind: str, name: str, rv: str, namespace: str = "team", **extra: Any) -> JsonObject:
    meta: JsonObject = {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"}
    if kind != "Namespace":
        meta["namespace"] = namespace
    meta |= extra.pop("metadata", {})
    return {"kind": kind, "metadata": meta, **extra}


def replica_set(name: str, rv: str, app: str) -> JsonObject:
    return obj(
        "ReplicaSet",
        name,
        rv,
        metadata={"managedFields": MANAGED, "labels": {"app": app}},
        spec={
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": []}},
        },
    )


def isc(name: str, rv: str, options: str = "--model /m") -> JsonObject:
    return obj(
        "InferenceServerConfig",
        name,
        rv,
        apiVersion="fma.llm-d.ai/v1alpha1",
        metadata={"managedFields": MANAGED},
        spec={"launcherConfigName": "lc", "modelServerConfig": {"port": 8000, "options": options}},
    )


class Apiserver:
    """LISTs answer from `objects`; each WATCH streams what a test pushes for its kind.

    A kind in `held` answers its LIST only once released (to see the cache not yet synced).
    """

    def __init__(self) -> None:
        self.rv = "10"
        self.objects: dict[str, list[JsonObject]] = {kind: [] for kind in PATHS}
        self.events: dict[str, asyncio.Queue[object]] = {kind: asyncio.Queue() for kind in PATHS}
        self.held: dict[str, asyncio.Event] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.closed = False

    def client(self) -> KubeClient:
        return KubeClient(_Closing(self, base_url="https://api.test", transport=self.transport()))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def push(self, kind: str, event_type: str, item: JsonObject | None = None, **raw: Any) -> None:
        self.events[kind].put_nowait({"type": event_type, "object": item or raw})

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.requests.append((request.url.path, params))
        kind = next(k for k, path in PATHS.items() if path == request.url.path)
        if params.get("watch") == "true":
            return httpx.Response(200, content=self._stream(kind))
        if kind in self.held:
            await self.held[kind].wait()
        page = {"metadata": {"resourceVersion": self.rv}, "items": self.objects[kind]}
        return httpx.Response(200, json=page)

    async def _stream(self, kind: str) -> AsyncIterator[bytes]:
        while True:
            event = await self.events[kind].get()
            if event is CLOSE:
                return
            yield (json.dumps(event) + "\n").encode()


class _Closing(httpx.AsyncClient):
    def __init__(self, apiserver: Apiserver, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._apiserver = apiserver

    async def aclose(self) -> None:
        self._apiserver.closed = True
        await super().aclose()


async def until(what: str, check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def with_cache(
    test: Callable[[Apiserver, WebhookCache], Awaitable[None]],
    prepare: Callable[[Apiserver], None] = lambda _: None,
) -> Apiserver:
    """Runs `test` with a cache whose informers run over a fresh `Apiserver`."""
    apiserver: Apiserver | None = None

    async def main() -> None:
        nonlocal apiserver
        apiserver = Apiserver()
        prepare(apiserver)
        cache = WebhookCache()
        cache.connect(
            apiserver.client(), settings=InformerSettings(watch_timeout_s=300), owned=True
        )
        async with cache.running():
            await test(apiserver, cache)

    run_virtual(main)
    assert apiserver is not None
    return apiserver


def test_lists_every_kind_cluster_wide_then_watches_it() -> None:
    def prepare(apiserver: Apiserver) -> None:
        apiserver.objects["Namespace"] = [
            obj("Namespace", "team", "3", metadata={"labels": {"fma.llm-d.ai/inject": "enabled"}})
        ]
        apiserver.objects["InferenceServerConfig"] = [isc("tiny", "4")]
        apiserver.objects["LauncherConfig"] = [obj("LauncherConfig", "lc", "5", spec={"x": 1})]
        apiserver.objects["ReplicaSet"] = [replica_set("chat-1", "6", "chat")]

    async def test(apiserver: Apiserver, cache: WebhookCache) -> None:
        assert await cache.wait_synced(5)
        assert cache.synced
        assert cache.namespace_labels("team") == {"fma.llm-d.ai/inject": "enabled"}
        assert [i.metadata.name for i in cache.iscs("team")] == ["tiny"]
        assert ("team", "lc") in cache.launcher_configs
        owner = cache.owner("ReplicaSet", "team", "chat-1")
        assert owner is not None and owner.uid == "uid-chat-1"
        assert owner.selector == {"matchLabels": {"app": "chat"}}
        assert cache.owner("StatefulSet", "team", "chat-1") is None
        await until("five watches", lambda: len(_watches(apiserver)) == 5)
        for path, params in _watches(apiserver):
            assert params["resourceVersion"] == "10", path
            assert params["allowWatchBookmarks"] == "true"
            assert 300 <= int(params["timeoutSeconds"]) < 600

    apiserver = with_cache(test, prepare)
    listed = {path for path, params in apiserver.requests if "watch" not in params}
    assert listed == set(PATHS.values()), "one cluster-wide LIST per kind"
    assert apiserver.closed, "the cache closes the client it owns when it stops"


def test_watch_events_reach_the_converted_stores() -> None:
    async def test(apiserver: Apiserver, cache: WebhookCache) -> None:
        assert await cache.wait_synced(5)
        apiserver.push("Namespace", "ADDED", obj("Namespace", "team", "11"))
        apiserver.push("InferenceServerConfig", "ADDED", isc("tiny", "12"))
        apiserver.push("ReplicaSet", "ADDED", replica_set("chat-1", "13", "chat"))
        apiserver.push(
            "StatefulSet", "ADDED", replica_set("db", "14", "db") | {"kind": "StatefulSet"}
        )
        await until("the ISC", lambda: bool(cache.iscs("team")))
        await until("the StatefulSet", lambda: cache.owner("StatefulSet", "team", "db") is not None)
        assert cache.namespace_labels("team") == {}

        labelled = obj("Namespace", "team", "15", metadata={"labels": {"a": "b"}})
        apiserver.push("Namespace", "MODIFIED", labelled)
        apiserver.push("ReplicaSet", "MODIFIED", replica_set("chat-1", "16", "other"))
        apiserver.push("InferenceServerConfig", "DELETED", isc("tiny", "17"))
        await until("the ISC deleted", lambda: not cache.iscs("team"))
        assert cache.namespace_labels("team") == {"a": "b"}
        owner = cache.owner("ReplicaSet", "team", "chat-1")
        assert owner is not None and owner.selector == {"matchLabels": {"app": "other"}}

        apiserver.push("InferenceServerConfig", "ADDED", obj("InferenceServerConfig", "bad", "18"))
        apiserver.push("LauncherConfig", "ADDED", obj("LauncherConfig", "lc", "19"))
        await until("the LC", lambda: ("team", "lc") in cache.launcher_configs)
        assert cache.iscs("team") == [], "an ISC that does not parse is left out"

    with_cache(test)


def test_informers_keep_only_what_the_handlers_need() -> None:
    """A ReplicaSet costs its selector, not its Pod template or managedFields."""

    def prepare(apiserver: Apiserver) -> None:
        apiserver.objects["ReplicaSet"] = [replica_set("chat-1", "6", "chat")]
        apiserver.objects["InferenceServerConfig"] = [isc("tiny", "4")]
        apiserver.objects["LauncherConfig"] = [obj("LauncherConfig", "lc", "5", spec={"x": 1})]

    async def test(apiserver: Apiserver, cache: WebhookCache) -> None:
        assert await cache.wait_synced(5)
        stored = cache.informers["ReplicaSet"].store.get("team/chat-1")
        assert stored == {
            "metadata": {
                "name": "chat-1",
                "namespace": "team",
                "uid": "uid-chat-1",
                "resourceVersion": "6",
            },
            "spec": {"selector": {"matchLabels": {"app": "chat"}}},
        }
        launcher_config = cache.informers["LauncherConfig"].store.get("team/lc")
        assert launcher_config is not None and "spec" not in launcher_config
        kept = cache.informers["InferenceServerConfig"].store.get("team/tiny")
        assert kept is not None and "managedFields" not in kept["metadata"]
        assert kept["spec"] == isc("tiny", "4")["spec"]

    with_cache(test, prepare)


def test_a_relist_after_410_drops_what_was_deleted_meanwhile() -> None:
    def prepare(apiserver: Apiserver) -> None:
        apiserver.objects["ReplicaSet"] = [
            replica_set("a", "5", "a"),
            replica_set("b", "6", "b"),
        ]

    async def test(apiserver: Apiserver, cache: WebhookCache) -> None:
        assert await cache.wait_synced(5)
        assert set(cache.owners["ReplicaSet"].in_namespace("team")) == {"a", "b"}
        apiserver.objects["ReplicaSet"] = [replica_set("b", "30", "changed")]
        apiserver.rv = "30"
        apiserver.push("ReplicaSet", "ERROR", code=410, message="too old")
        await until("the relist", lambda: cache.informers["ReplicaSet"].lists == 2)
        assert set(cache.owners["ReplicaSet"].in_namespace("team")) == {"b"}
        owner = cache.owner("ReplicaSet", "team", "b")
        assert owner is not None and owner.selector == {"matchLabels": {"app": "changed"}}

    with_cache(test, prepare)


def test_synced_only_once_every_kind_listed() -> None:
    def prepare(apiserver: Apiserver) -> None:
        apiserver.held["StatefulSet"] = asyncio.Event()

    async def test(apiserver: Apiserver, cache: WebhookCache) -> None:
        await until("four informers synced", lambda: _synced(cache) == 4)
        assert not cache.synced
        assert not await cache.wait_synced(1.0)
        apiserver.held["StatefulSet"].set()
        assert await cache.wait_synced(5)
        assert cache.synced

    assert not WebhookCache().synced, "a cache never connected is not synced"
    with_cache(test, prepare)


def test_preloaded_cache_is_synced_and_never_watched() -> None:
    cache = WebhookCache.from_objects(
        [obj("Namespace", "team", "1", metadata={"labels": {"x": "y"}}), isc("tiny", "2")]
    )
    assert cache.synced
    assert cache.namespace_labels("team") == {"x": "y"}
    assert [i.metadata.name for i in cache.iscs("team")] == ["tiny"]
    assert not cache.informers


def test_store_snapshots_do_not_change_under_readers() -> None:
    store: Store[str] = Store("Thing", lambda o: o["metadata"]["name"])
    store.replace([obj("Thing", "a", "1", namespace="ns")])
    snapshot = store.in_namespace("ns")
    store.upsert(obj("Thing", "b", "2", namespace="ns"))
    store.delete(obj("Thing", "a", "3", namespace="ns"))
    assert list(snapshot) == ["a"]
    assert list(store.in_namespace("ns")) == ["b"]
    assert ("ns", "b") in store
    assert ("ns", "a") not in store
    assert "b" not in store
    store.delete(obj("Thing", "b", "4", namespace="ns"))
    assert store.in_namespace("ns") == {}


def test_unparseable_isc_is_left_out() -> None:
    assert parse_isc({"kind": "InferenceServerConfig", "metadata": {"name": "x"}}) is None


def _watches(apiserver: Apiserver) -> list[tuple[str, dict[str, str]]]:
    return [(path, params) for path, params in apiserver.requests if params.get("watch")]


def _synced(cache: WebhookCache) -> int:
    return sum(informer.has_synced for informer in cache.informers.values())
