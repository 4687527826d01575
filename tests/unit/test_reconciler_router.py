"""From cache and stream events to work items (contracts §8.1), and the launcher streams' life."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType

from controller.launcherapi import InstanceEvent
from controller.launcherapi import LauncherView as StreamView
from controller.observability import ControllerMetrics
from controller.reconciler import IscKey, Key, LauncherKey, ServerKey
from controller.reconciler._router import EventRouter
from tests.unit.reconciler_support import NOW, node, pod, state

ISC = "dual-pods.llm-d.ai/inference-server-config"
LC_LABEL = "dual-pods.llm-d.ai/launcher-config-name"
BOUND = {"dual-pods.llm-d.ai/requester": "req-uid req"}


@dataclass
class Streams:
    watched: dict[str, str] = field(default_factory=dict)

    def ensure(self, key: str, ip: str) -> None:
        self.watched[key] = ip

    def discard(self, key: str) -> None:
        self.watched.pop(key, None)

    def watch(self, key: str) -> object | None:
        return self.watched.get(key)


class Added(list[tuple[Key, str]]):
    """The items queued, in order; `urgent` those queued ahead of ordinary items."""

    def __init__(self) -> None:
        super().__init__()
        self.urgent: list[Key] = []

    def __call__(self, key: Key, node: str, *, urgent: bool = False) -> None:
        self.append((key, node))
        if urgent:
            self.urgent.append(key)


def router(*pods: dict[str, object], **objects: object) -> tuple[EventRouter, Added, Streams]:
    cluster = state(pods=list(pods), **objects)  # type: ignore[arg-type]
    added = Added()
    metrics = ControllerMetrics()
    made = EventRouter(cluster, added, book=cluster.book, metrics=metrics, clock=lambda: NOW)
    streams = Streams()
    made.watches = streams
    return made, added, streams


def test_requesters_are_items_once_scheduled() -> None:
    made, added, _ = router()
    pending = pod("req", uid="u", annotations={ISC: "isc1"}, node=None)
    made.pod_changed(None, pending)
    assert added == []
    made.pod_changed(pending, pod("req", uid="u", annotations={ISC: "isc1"}))
    assert added == [(ServerKey("u", "req"), "n1")]
    sample = made.metrics.registry.get_sample_value
    assert sample("fma_requester_count", {"isc_name": "isc1"}) == 1
    made.pod_changed(pending, None)
    assert sample("fma_requester_count", {"isc_name": "isc1"}) == 0


def test_a_provider_wakes_its_requester_and_an_unbound_launcher_its_item() -> None:
    made, added, _ = router()
    bound = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, annotations=BOUND, pinned="n1")
    unbound = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, pinned="n1")
    made.pod_changed(bound, unbound)  # unbinding: the server and the launcher item
    assert added == [(ServerKey("req-uid", "req"), "n1"), (LauncherKey("l-uid", "l"), "n1")]
    assert added.urgent == [ServerKey("req-uid", "req")]  # a bound server's news goes first


def test_launcher_streams_start_when_ready_and_stop_when_gone() -> None:
    made, _, streams = router()
    starting = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, ip="10.0.1.1")
    made.pod_changed(None, starting)
    assert streams.watched == {}
    ready = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, ip="10.0.1.1", ready=True)
    made.pod_changed(starting, ready)
    assert streams.watched == {"l-uid": "10.0.1.1"}
    unready = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, ip="10.0.1.1")
    made.pod_changed(ready, unready)
    assert streams.watched == {"l-uid": "10.0.1.1"}  # kept: it still answers, maybe
    made.pod_changed(unready, None)
    assert streams.watched == {}


def test_stream_events_go_to_the_bound_server_or_the_launcher_item() -> None:
    bound = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, annotations=BOUND, pinned="n1")
    made, added, _ = router(bound)
    view = StreamView(1, MappingProxyType({"i1": {"instance_id": "i1"}}))
    made.on_event("l-uid", InstanceEvent("CREATED", {"instance_id": "i1"}, 1), view)
    assert added == [(ServerKey("req-uid", "req"), "n1")]
    assert added.urgent == [ServerKey("req-uid", "req")]
    assert len(made.book) == 1  # first seen now
    made.on_relist("gone-uid", view)
    assert len(added) == 1


def test_a_launcher_confirming_our_wake_queues_nothing_and_real_news_does() -> None:
    bound = pod("l", uid="l-uid", labels={LC_LABEL: "lc"}, annotations=BOUND, pinned="n1")
    made, added, _ = router(bound)

    def report(phase: str, revision: int, status: str = "running") -> dict[str, object]:
        return {"instance_id": "i1", "status": status, "phase": phase, "revision": revision}

    def updated(before: dict[str, object], after: dict[str, object]) -> None:
        view = StreamView(after["revision"], MappingProxyType({"i1": after}))  # type: ignore[arg-type]
        event = InstanceEvent("UPDATED", after, after["revision"], previous=before)  # type: ignore[arg-type]
        made.on_event("l-uid", event, view)

    made.book.hold("l-uid", "i1", "awake", 3, now=NOW)  # we woke it at revision 3
    updated(report("sleeping", 3), report("ready", 4))
    assert added == [], "the launcher only says what we hold"
    updated(report("ready", 4), report("sleeping", 5))
    assert added == [(ServerKey("req-uid", "req"), "n1")], "it fell asleep: news"
    added.clear()
    updated(report("sleeping", 5), report("sleeping", 6, status="stopped"))
    assert added == [(ServerKey("req-uid", "req"), "n1")], "it stopped"


def test_a_node_heartbeat_queues_nothing() -> None:
    requester = pod("req", uid="u", annotations={ISC: "isc1"})
    made, added, _ = router(requester, nodes=[node()])
    beat = {**node(), "status": {"conditions": [{"type": "Ready", "lastHeartbeatTime": "now"}]}}
    made.node_changed(node(), beat)
    assert added == []


def test_node_gpu_map_isc_and_lc_changes() -> None:
    requester = pod("req", uid="u", annotations={ISC: "isc1"})
    isc = {"metadata": {"name": "isc1", "namespace": "ns"}, "spec": {"launcherConfigName": "lc"}}
    made, added, _ = router(requester, nodes=[node()], iscs=[isc])
    made.node_changed(node(), node(unschedulable=True))
    made.config_map_changed(None, {"metadata": {"name": "other"}})
    made.config_map_changed(None, {"metadata": {"name": "gpu-map"}, "data": {"n1": json.dumps({})}})
    assert added == [(ServerKey("u", "req"), "n1")] * 2
    added.clear()
    made.isc_changed(None, isc)  # new: its requesters may proceed, nothing to collect
    assert added == [(ServerKey("u", "req"), "n1")]
    added.clear()
    edited = {**isc, "spec": {"launcherConfigName": "lc", "modelServerConfig": {"port": 1}}}
    made.isc_changed(isc, edited)
    assert added[0] == (IscKey("isc1"), "")
    sample = made.metrics.registry.get_sample_value
    assert sample("fma_isc_count", {"launcher_config_name": "lc"}) == 1
    added.clear()
    made.lc_changed(None, {"metadata": {"name": "lc"}})
    assert added == [(ServerKey("u", "req"), "n1")]
