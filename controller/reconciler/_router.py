"""From events to work items (contracts §8.1): informer handlers and the launcher listener.

Handlers run on the event loop right after a cache changed and only classify and enqueue:

| Event | Items |
|---|---|
| requester (scheduled) | its inference server |
| bound provider | the server of the requester it names (old and new binding alike) |
| unbound launcher | the launcher item; its stream is started once it is Ready |
| Node | the servers of the node's requesters (cordon, deletion) |
| ConfigMap `gpu-map` | every server |
| ISC | its GC item (spec changed or deleted) and the requesters naming it |
| LauncherConfig | every server (a waiting requester may now create its launcher) |
| launcher stream | the launcher's server if bound, else its launcher item |

The items of a *bound* server (its provider or its launcher changed: most often its vLLM became
ready, and a user's requester waits for the relay) are queued as urgent: ahead of new binds,
which at scale can be hundreds deep (the queue's urgent lane; kube.WorkQueue).

It also keeps `fma_requester_count{isc_name}` and `fma_isc_count{launcher_config_name}`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

from contract import keys
from contract.objects import GPU_MAP
from controller.core import node_view
from controller.launcherapi import InstanceEvent, LauncherView
from controller.observability import ControllerMetrics
from controller.reconciler import _pods as p
from controller.reconciler._instances import InstanceBook
from controller.reconciler._keys import IscKey, Key, LauncherKey, ServerKey
from controller.reconciler._state import ClusterState
from kube import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NODES,
    PODS,
    Handlers,
    Informer,
    JsonObject,
    metadata,
)

_log = logging.getLogger(__name__)


class Streams(Protocol):
    """Starting and stopping launcher streams (`LauncherWatches` in production)."""

    def ensure(self, key: str, ip: str) -> None: ...

    def discard(self, key: str) -> None: ...

    def watch(self, key: str) -> object | None: ...


class Enqueue(Protocol):
    def __call__(self, key: Key, node: str, *, urgent: bool = False) -> None: ...


"""Adds a work item; the string is the node for the queue metrics ("" if unknown)."""


@dataclass(eq=False)
class EventRouter:
    """Turns cache and stream events into work items; see the module docstring.

    A dataclass: besides its collaborators it holds only the streams (`register` sets them)
    and the last exported ISC counts.
    """

    state: ClusterState
    enqueue: Enqueue
    _: KW_ONLY
    book: InstanceBook
    metrics: ControllerMetrics
    clock: Callable[[], float] = time.time
    watches: Streams | None = field(default=None, init=False)
    _isc_counts: Counter[str] = field(default_factory=Counter, init=False)

    def register(self, informers: Mapping[str, Informer], watches: Streams) -> None:
        self.watches = watches
        routes: list[tuple[str, Callable[[JsonObject | None, JsonObject | None], None]]] = [
            (PODS.plural, self.pod_changed),
            (NODES.plural, self.node_changed),
            (CONFIG_MAPS.plural, self.config_map_changed),
            (INFERENCE_SERVER_CONFIGS.plural, self.isc_changed),
            (LAUNCHER_CONFIGS.plural, self.lc_changed),
        ]
        for plural, route in routes:
            informers[plural].add_handlers(_handlers(route))

    # ----- helpers for the executor ---------------------------------------------------------------

    def enqueue_node(self, node: str) -> None:
        """Every requester on `node` (an unbound launcher there changed)."""
        for pod in self.state.requesters(node=node):
            self.enqueue(ServerKey(p.uid(pod), p.name(pod)), node)

    def enqueue_all(self) -> None:
        for pod in self.state.requesters():
            node = p.scheduled_node(pod)
            if node:
                self.enqueue(ServerKey(p.uid(pod), p.name(pod)), node)

    # ----- Pods ----------------------------------------------------------------------------------

    def pod_changed(self, old: JsonObject | None, new: JsonObject | None) -> None:
        items: dict[Key, tuple[str, bool]] = {}
        for pod in (old, new):
            if pod is not None:
                for key, node, urgent in _keys_of(pod):
                    seen = items.get(key)
                    items[key] = (seen[0] or node, seen[1] or urgent) if seen else (node, urgent)
        for key, (node, urgent) in items.items():
            self.enqueue(key, node, urgent=urgent)
        self._follow_launcher(new if new is not None else old, gone=new is None)
        self._count_requesters(old, new)

    def _follow_launcher(self, pod: JsonObject | None, *, gone: bool) -> None:
        if pod is None or not p.is_launcher(pod) or self.watches is None:
            return
        uid, ip = p.uid(pod), p.pod_ip(pod)
        if gone or p.is_terminated(pod) or ip is None:
            self.watches.discard(uid)
            if gone:
                self.book.forget_launcher(uid)
            return
        if p.is_ready(pod) or self.watches.watch(uid) is not None:
            # Started once Ready (then it listens), kept afterwards; a new IP restarts it.
            self.watches.ensure(uid, ip)

    def _count_requesters(self, old: JsonObject | None, new: JsonObject | None) -> None:
        before = _isc_of(old)
        after = _isc_of(new)
        if before == after:
            return
        if before is not None:
            self.metrics.requester_count.labels(before).dec()
        if after is not None:
            self.metrics.requester_count.labels(after).inc()

    # ----- other kinds ---------------------------------------------------------------------------

    def node_changed(self, old: JsonObject | None, new: JsonObject | None) -> None:
        """A Node's requesters, unless nothing a decision reads of it changed.

        A kubelet writes its Node's status every few seconds (heartbeats, conditions); a
        decision reads only its `NodeView` (cordon, deletion, labels, allocatable)."""
        if old is not None and new is not None and node_view(old) == node_view(new):
            return
        name = str(metadata(new or old or {}).get("name") or "")
        if name:
            for pod in self.state.requesters(node=name):
                self.enqueue(ServerKey(p.uid(pod), p.name(pod)), name)

    def config_map_changed(self, old: JsonObject | None, new: JsonObject | None) -> None:
        if metadata(new or old or {}).get("name") == GPU_MAP:
            self.enqueue_all()

    def isc_changed(self, old: JsonObject | None, new: JsonObject | None) -> None:
        name = str(metadata(new or old or {}).get("name") or "")
        if old is not None and (new is None or old.get("spec") != new.get("spec")):
            self.enqueue(IscKey(name), "")
        for pod in self.state.requesters(isc=name):
            self.enqueue(ServerKey(p.uid(pod), p.name(pod)), p.scheduled_node(pod) or "")
        self._count_iscs()

    def lc_changed(self, old: JsonObject | None, new: JsonObject | None) -> None:
        self.enqueue_all()

    def _count_iscs(self) -> None:
        counts: Counter[str] = Counter(
            str((obj.get("spec") or {}).get("launcherConfigName") or "")
            for obj in self.state.isc_store.objects()
        )
        for lc in set(self._isc_counts) | set(counts):
            self.metrics.isc_count.labels(lc).set(counts.get(lc, 0))
        self._isc_counts = counts

    # ----- launcher streams (LauncherListener) ---------------------------------------------------

    def on_relist(self, launcher: str, view: LauncherView) -> None:
        self._launcher_changed(launcher, view)

    def on_event(self, launcher: str, event: InstanceEvent, view: LauncherView) -> None:
        now = self.clock()
        if event.log_only or (
            event.previous is not None
            and self.book.same_view(
                launcher, event.instance_id, event.previous, event.instance, now
            )
        ):
            # The log relay's news, or a change no decision sees (the launcher confirming the
            # wake or sleep we made and hold): nothing to decide.
            self.book.seen(launcher, view.instances, now)
            return
        self._launcher_changed(launcher, view)

    def _launcher_changed(self, launcher: str, view: LauncherView) -> None:
        self.book.seen(launcher, view.instances, self.clock())
        pod = self.state.pod_by_uid(launcher)
        if pod is None:
            return
        binding = p.bound_to(pod)
        node = p.provider_node(pod) or ""
        if binding is not None:
            self.enqueue(ServerKey(*binding), node, urgent=True)
        else:
            self.enqueue(LauncherKey(launcher, p.name(pod)), node)


def _keys_of(pod: JsonObject) -> Iterator[tuple[Key, str, bool]]:
    """(item, node, urgent) of each item a Pod event concerns; a bound provider's is urgent."""
    binding = p.bound_to(pod)
    node = p.scheduled_node(pod)
    if p.is_requester(pod) and node:
        yield ServerKey(p.uid(pod), p.name(pod)), node, False
    if binding is not None:
        yield ServerKey(*binding), p.provider_node(pod) or "", True
    elif p.is_launcher(pod):
        yield LauncherKey(p.uid(pod), p.name(pod)), p.provider_node(pod) or "", False


def _isc_of(pod: JsonObject | None) -> str | None:
    if pod is None:
        return None
    value = p.annotations_of(pod).get(keys.ISC_ANNOTATION)
    return str(value) if value is not None else None


def _handlers(route: Callable[[JsonObject | None, JsonObject | None], None]) -> Handlers:
    return Handlers(
        on_add=lambda new: route(None, new),
        on_update=route,
        on_delete=lambda old: route(old, None),
    )
