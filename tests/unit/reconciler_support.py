"""Plain-object builders for the reconciler's unit tests: Pods as JSON, filled caches, a
recording apiserver and peers (httpx mock transports), and an executor wired to them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from controller.launcherapi import LauncherView as StreamView
from controller.observability import ControllerMetrics
from controller.reconciler import (
    ClusterState,
    Executor,
    Expectations,
    HttpSettings,
    InstanceBook,
    PeerCalls,
)
from controller.reconciler._http import PeerHttp
from controller.reconciler._peers import Peers
from controller.reconciler._pods import pod_indexers
from controller.reconciler._podwrites import PodWrites
from kube import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NODES,
    PODS,
    EventRecorder,
    Informer,
    JsonObject,
    KubeClient,
)

NS = "ns"
NOW = 1_000_000.0


def pod(
    name: str,
    *,
    uid: str | None = None,
    rv: str = "10",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    finalizers: list[str] | None = None,
    node: str | None = "n1",
    pinned: str | None = None,
    ip: str | None = "10.0.0.1",
    ready: bool = False,
    phase: str = "Running",
    created: str = "2026-01-01T00:00:00Z",
) -> JsonObject:
    """A Pod as the apiserver sends it, with what the reconciler reads."""
    spec: JsonObject = {"containers": [{"name": "inference-server", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    if pinned:
        spec["nodeSelector"] = {"kubernetes.io/hostname": pinned}
    status: JsonObject = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}  # fmt: skip
    if ip:
        status["podIP"] = ip
    meta: JsonObject = {
        "name": name,
        "namespace": NS,
        "uid": uid or f"{name}-uid",
        "resourceVersion": rv,
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
        "creationTimestamp": created,
    }
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


class _NoSource:
    description = "test objects"

    async def list_page(self, *, limit: int, continue_token: str | None) -> JsonObject:
        raise AssertionError("unit tests fill the stores directly")

    def watch(
        self, *, resource_version: str, timeout_s: int
    ) -> AbstractAsyncContextManager[AsyncIterator[JsonObject]]:
        raise AssertionError("unit tests fill the stores directly")


@dataclass
class FakeStreams:
    """`InstanceSource`: launcher instance lists by launcher Pod UID."""

    views: dict[str, dict[str, JsonObject]] = field(default_factory=dict)

    def view(self, key: str) -> StreamView | None:
        found = self.views.get(key)
        return StreamView(0, MappingProxyType(found)) if found is not None else None


def informers(objects: Mapping[str, list[JsonObject]] | None = None) -> dict[str, Informer]:
    kinds = (PODS, NODES, CONFIG_MAPS, INFERENCE_SERVER_CONFIGS, LAUNCHER_CONFIGS)
    made = {
        kind.plural: Informer(_NoSource(), indexers=pod_indexers() if kind is PODS else None)
        for kind in kinds
    }
    for plural, items in (objects or {}).items():
        for obj in items:
            made[plural].store.upsert(obj)
    return made


def state(
    *,
    pods: Sequence[JsonObject] = (),
    nodes: Sequence[JsonObject] = (),
    iscs: Sequence[JsonObject] = (),
    lcs: Sequence[JsonObject] = (),
    config_maps: Sequence[JsonObject] = (),
    streams: FakeStreams | None = None,
    book: InstanceBook | None = None,
) -> ClusterState:
    objects = {
        PODS.plural: list(pods),
        NODES.plural: list(nodes),
        INFERENCE_SERVER_CONFIGS.plural: list(iscs),
        LAUNCHER_CONFIGS.plural: list(lcs),
        CONFIG_MAPS.plural: list(config_maps),
    }
    return ClusterState(NS, informers(objects), streams or FakeStreams(), book or InstanceBook())


def node(name: str = "n1", *, unschedulable: bool = False) -> JsonObject:
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable}}


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Every request a mock transport saw, and the handler that answers them."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def echo_apiserver(request: httpx.Request) -> httpx.Response:
    """Answers a write with the object it got, its resourceVersion bumped (+1)."""
    body = json.loads(request.content) if request.content else {}
    meta = body.get("metadata") or {}
    version = int(meta.get("resourceVersion") or 10) + 1
    name = request.url.path.rsplit("/", 1)[-1]
    if request.method == "POST":
        name = (meta.get("generateName") or "pod-") + "abcde"
    answer = {"kind": "Pod", "metadata": {**meta, "name": name, "uid": meta.get("uid") or
              f"{name}-uid", "resourceVersion": str(version)}}  # fmt: skip
    return httpx.Response(201 if request.method == "POST" else 200, json=answer)


@dataclass
class Wiring:
    executor: Executor
    apiserver: Recorder
    peers: Recorder
    recorder: EventRecorder
    metrics: ControllerMetrics
    expectations: Expectations
    book: InstanceBook
    enqueued: list[str]


class _Sink:
    def __init__(self) -> None:
        self.events: list[JsonObject] = []

    async def create(self, namespace: str, event: JsonObject) -> JsonObject:
        self.events.append(event)
        return event

    async def patch(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        return patch


@asynccontextmanager
async def executor(
    cluster: ClusterState,
    *,
    apiserver: Handler = echo_apiserver,
    peers: Handler = lambda request: httpx.Response(200, json={}),
) -> AsyncIterator[Wiring]:
    api, peer = Recorder(apiserver), Recorder(peers)
    kube = KubeClient(httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="https://k"))
    http = PeerHttp(httpx.MockTransport(peer))
    metrics = ControllerMetrics()
    recorder = EventRecorder(_Sink())
    expectations = Expectations(timeout_s=10, clock=lambda: NOW)
    enqueued: list[str] = []
    run = Executor(
        pods=PodWrites(kube, NS),
        peers=Peers(PeerCalls(http, metrics, namespace=NS), HttpSettings()),
        state=cluster,
        book=cluster.book,
        expectations=expectations,
        recorder=recorder,
        metrics=metrics,
        enqueue_node=enqueued.append,
        clock=lambda: NOW,
    )
    try:
        yield Wiring(run, api, peer, recorder, metrics, expectations, cluster.book, enqueued)
    finally:
        await kube.aclose()
        await http.aclose()
