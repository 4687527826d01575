"""The dual-pods controller: caches, work queue, workers, decisions and the executor, wired.

    informers ─┐                       ┌─ decide_server / decide_unbound_launcher / decide_isc_gc
    launcher   ├─ EventRouter ─ queue ─┤      (controller.core, pure)
    streams   ─┘                       └─ Executor ─ apiserver, launchers, instances, requesters

`DualPodsController.run()` starts the informers, waits until they listed, then runs the
workers until cancelled. Each pass of an item: wait if the caches do not show the item's own
last writes yet; gather a snapshot; decide; execute; keep the server's memory. A pass that
changed something runs again at once (a decision is one step of the protocol); one that asked
for a `Requeue` runs again then (or on the next event, whichever comes first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx

from controller.core import (
    ServerMemory,
    Settings,
    decide_isc_gc,
    decide_server,
    decide_unbound_launcher,
)
from controller.core import _names as n
from controller.kube import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NODES,
    PODS,
    EventRecorder,
    Informer,
    InformerSettings,
    KubeClient,
    Result,
    WorkQueue,
    focus_informers,
    run_informers,
    run_workers,
)
from controller.launcherapi import LauncherWatches, LauncherWatchSettings, launcher_http_client
from controller.observability import ControllerMetrics
from controller.reconciler import _pods as p
from controller.reconciler._duality import Duality
from controller.reconciler._executor import Executor, Outcome, PassContext
from controller.reconciler._expectations import Expectations
from controller.reconciler._http import HttpSettings, PeerCalls
from controller.reconciler._instances import InstanceBook
from controller.reconciler._keys import IscKey, Key, KeyLabels, LauncherKey, ServerKey
from controller.reconciler._peers import Peers
from controller.reconciler._podwrites import PodWrites
from controller.reconciler._router import EventRouter
from controller.reconciler._snapshot import server_snapshot
from controller.reconciler._state import ClusterState

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReconcilerSettings:
    """Everything the dual-pods controller is configured with (see `fma-controller --help`)."""

    namespace: str
    workers: int = 2
    core: Settings = field(default_factory=Settings)
    http: HttpSettings = field(default_factory=HttpSettings)
    informers: InformerSettings | None = None
    launcher_watch: LauncherWatchSettings = field(
        default_factory=lambda: LauncherWatchSettings(updates=True)
    )
    expectation_timeout_s: float = 10.0
    """How long a pass waits for the caches to show the item's own writes at most."""
    expectation_recheck_s: float = 1.0
    """A waiting item is looked at again this often (the awaited watch event is quicker)."""


class DualPodsController:
    """One focus namespace's dual-pods controller; `run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        settings: ReconcilerSettings,
        *,
        metrics: ControllerMetrics,
        recorder: EventRecorder,
        peer_http: httpx.AsyncClient | None = None,
    ) -> None:
        ns = settings.namespace
        self.settings = settings
        self.informers: dict[str, Informer] = focus_informers(
            client,
            ns,
            kinds=(PODS, NODES, CONFIG_MAPS, INFERENCE_SERVER_CONFIGS, LAUNCHER_CONFIGS),
            indexers={PODS.plural: p.pod_indexers()},
            settings=settings.informers,
        )
        self.labels = KeyLabels()
        self.queue: WorkQueue[Key] = WorkQueue(metrics=metrics.queue, label=self.labels)
        self.book = InstanceBook()
        self._http = peer_http or launcher_http_client()
        self.watches = LauncherWatches(self._http, _NoListener(), settings.launcher_watch)
        self.state = ClusterState(ns, self.informers, self.watches, self.book)
        self.router = EventRouter(self.state, self._enqueue, book=self.book, metrics=metrics)
        self.watches.listener = self.router
        self.expectations = Expectations(
            timeout_s=settings.expectation_timeout_s, clock=time.monotonic
        )
        self.executor = Executor(
            pods=PodWrites(client, ns),
            peers=Peers(PeerCalls(self._http, metrics, namespace=ns), settings.http),
            state=self.state,
            book=self.book,
            expectations=self.expectations,
            recorder=recorder,
            metrics=metrics,
            enqueue_node=self.router.enqueue_node,
        )
        self.duality = Duality(metrics.duality, ns)
        self.memories: dict[str, ServerMemory] = {}
        self.ready = asyncio.Event()

    def synced(self) -> dict[str, bool]:
        return {name: informer.has_synced for name, informer in self.informers.items()}

    async def run(self) -> None:
        """Informers, then workers; until cancelled (everything stops with it)."""
        self.router.register(self.informers, self.watches)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run_informers(self.informers), name="informers")
                for informer in self.informers.values():
                    await informer.wait_synced()
                _log.info("caches synced; %d items queued", len(self.queue))
                self.ready.set()
                group.create_task(
                    run_workers(self.queue, self.reconcile, workers=self.settings.workers),
                    name="workers",
                )
        finally:
            self.queue.shutdown()
            await self.watches.aclose()
            await self._http.aclose()

    def _enqueue(self, key: Key, node: str) -> None:
        self.labels.remember(key, node)
        self.queue.add(key)

    # ----- one pass ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> Result | None:
        if self.expectations.wait_for(key, self.state.pod):
            return Result(requeue_after=self.settings.expectation_recheck_s)
        outcome: Outcome | None
        if isinstance(key, ServerKey):
            outcome = await self._server(key)
        elif isinstance(key, LauncherKey):
            outcome = await self._launcher(key)
        else:
            outcome = await self._isc_gc(key)
        if outcome is None:
            return None
        if outcome.failure is not None:
            level = logging.INFO if outcome.expected else logging.WARNING
            _log.log(level, "%s: %s; retrying", key, outcome.failure)
            return Result(retry=True)
        if outcome.requeue_after is not None:
            return Result(requeue_after=outcome.requeue_after)
        return Result(requeue_after=0.0) if outcome.acted else None

    async def _server(self, key: ServerKey) -> Outcome:
        memory = self.memories.get(key.uid, ServerMemory())
        now = time.time()
        snap = server_snapshot(self.state, key, memory=memory, settings=self.settings.core, now=now)
        actions = decide_server(snap)
        provider = snap.providers[0] if len(snap.providers) == 1 else None
        target = snap.requester or provider
        isc = snap.requester.annotations.get(n.ISC_ANNOTATION, "") if snap.requester else ""
        ctx = PassContext(
            item=key, decided_at=now, isc_name=isc, target=dict(target.raw) if target else None
        )
        outcome = await self.executor.run(actions, memory, ctx)
        if outcome.forget:
            self.memories.pop(key.uid, None)
            self.duality.forget(key.uid)
            self.labels.forget(key)
        else:
            self.memories[key.uid] = outcome.memory
            self.duality.update(snap, outcome.memory)
        return outcome

    async def _launcher(self, key: LauncherKey) -> Outcome | None:
        pod = self.state.pod_by_uid(key.uid)
        if pod is None or p.bound_to(pod) is not None:
            if pod is None:
                self.labels.forget(key)
            return None
        now = time.time()
        actions = decide_unbound_launcher(self.state.launcher_view(pod, now))
        ctx = PassContext(item=key, decided_at=now, target=pod)
        return await self.executor.run(actions, ServerMemory(), ctx)

    async def _isc_gc(self, key: IscKey) -> Outcome | None:
        isc, error = self.state.isc(key.name)
        if isc is None and error != "not found":
            _log.warning("ISC %s cannot be read (%s); no garbage collection", key.name, error)
            return None
        now = time.time()
        actions = decide_isc_gc(key.name, isc, self.state.all_launchers(now))
        ctx = PassContext(item=key, decided_at=now, isc_name=key.name)
        return await self.executor.run(actions, ServerMemory(), ctx)


class _NoListener:
    """Placeholder until the router is built (the streams start only after `run`)."""

    def on_relist(self, launcher: str, view: object) -> None:
        pass

    def on_event(self, launcher: str, event: object, view: object) -> None:
        pass
