"""The dual-pods controller: caches, work queue, workers, decisions and the executor, wired.

    informers ─┐                       ┌─ decide_server / decide_unbound_launcher / decide_isc_gc
    launcher   ├─ EventRouter ─ queue ─┤      (controller.core, pure)
    streams   ─┘                       └─ Executor ─ apiserver, launchers, instances, requesters

`DualPodsController.run()` starts the informers, waits until they listed, then runs the
workers until cancelled. Each pass of an item: wait if the caches do not show the item's own
last writes yet; gather a snapshot; decide; execute; keep the server's memory. A pass that
changed something is followed at once by the next one, in the same worker (a decision is one
step of the protocol, and the caches show our own writes at once); one that asked for a
`Requeue` runs again then (or on the next event, whichever comes first). A pass that calls
something slow (a wake, a sleep) leaves the worker and finishes in a task of its own, the item
staying locked meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from contract import keys
from controlauth import ControllerAuth
from controller.core import (
    Action,
    ServerMemory,
    ServerSnapshot,
    Settings,
    decide_isc_gc,
    decide_server,
    decide_unbound_launcher,
)
from controller.launcherapi import (
    InstanceEvent,
    LauncherView,
    LauncherWatches,
    LauncherWatchSettings,
    launcher_http_client,
)
from controller.observability import ControllerMetrics
from controller.reconciler import _pods as p
from controller.reconciler._duality import Duality
from controller.reconciler._executor import Executor, PassContext
from controller.reconciler._expectations import Expectations
from controller.reconciler._http import HttpSettings, PeerCalls, PeerHttp, peer_call_client
from controller.reconciler._instances import InstanceBook
from controller.reconciler._keys import Key, KeyLabels, LauncherKey, ServerKey
from controller.reconciler._logrelay import LogRelay
from controller.reconciler._peers import Peers
from controller.reconciler._podwrites import PodWrites
from controller.reconciler._prefetch import GpuPrefetch
from controller.reconciler._router import EventRouter
from controller.reconciler._snapshot import server_snapshot
from controller.reconciler._state import ClusterState
from kube import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NODES,
    PODS,
    Detached,
    EventRecorder,
    Handlers,
    Informer,
    InformerSettings,
    JsonObject,
    KubeClient,
    Result,
    WorkQueue,
    focus_informers,
    run_informers,
    run_workers,
)

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
    passes_in_a_row: int = 8
    """Passes over one item in one go while each acts (then it goes to the end of the queue)."""
    max_detached: int = 64
    """Passes with a slow call that go on outside the workers at once; beyond that, a worker
    runs the pass itself (back-pressure, and no decision waits for a slot and goes stale)."""
    relay_logs: bool = True
    """Copy each bound server's vLLM log to its requester's stdout (`kubectl logs`)."""
    gpu_prefetch: int = 0
    """GPU queries asked ahead of the passes at once (`GpuPrefetch`); 0: none, each pass asks.

    Off by default: on the 2-core benchmark cluster, where one hollow kubelet process starts and
    probes all 1000 Pods, asking ahead let the controller create providers faster than that
    process could start and probe them; probes timed out, readiness flapped, and 500 requesters
    took 125-260 s to be Ready instead of 50 (four runs of `bench/scale.py`, with 2 and with 16
    calls at once). Where each node has its own kubelet that throttle is gone."""


class DualPodsController:
    """One focus namespace's dual-pods controller; `run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        settings: ReconcilerSettings,
        *,
        metrics: ControllerMetrics,
        recorder: EventRecorder,
        peer_transport: httpx.AsyncBaseTransport | None = None,
        control: ControllerAuth | None = None,
        log_client: KubeClient | None = None,
    ) -> None:
        """`control`: the credentials that sign calls to launchers and stubs (contracts §14);
        None only with `--control-auth off`, for launchers and stubs that check nothing.
        `peer_transport`: replaces the network to launchers, stubs and instances (tests give an
        `httpx.MockTransport`). `log_client`: the apiserver client that follows direct
        providers' logs, one stream per bound server for as long as it serves, so it must not
        share `client`'s pool (`kube.stream_client`); None: `client`, for a handful of servers
        (tests)."""
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
        self._detached = asyncio.Semaphore(settings.max_detached)
        self.queue: WorkQueue[Key] = WorkQueue(metrics=metrics.queue, label=self.labels)
        self.book = InstanceBook()
        self._http = (
            httpx.AsyncClient(transport=peer_transport)
            if peer_transport
            else launcher_http_client()
        )
        self._calls_http = PeerHttp(peer_transport) if peer_transport else peer_call_client()
        self.watches = LauncherWatches(self._http, _NoListener(), settings.launcher_watch)
        self.state = ClusterState(ns, self.informers, self.watches, self.book)
        self.router = EventRouter(self.state, self._enqueue, book=self.book, metrics=metrics)
        self.logs: LogRelay | None = None
        if settings.relay_logs:
            self.logs = LogRelay(
                self.state,
                self._calls_http,
                log_client or client,
                ns,
                signer=control.signer if control else None,
            )
        self.watches.listener = _Listeners(self.router, self.logs)
        self.expectations = Expectations(
            timeout_s=settings.expectation_timeout_s, clock=time.monotonic
        )
        signer = control.signer if control else None
        calls = PeerCalls(self._calls_http, metrics, namespace=ns, signer=signer)
        peers = Peers(calls, settings.http)
        self.memories: dict[str, ServerMemory] = {}
        self.prefetch: GpuPrefetch | None = None
        if settings.gpu_prefetch > 0:
            self.prefetch = GpuPrefetch(
                peers,
                metrics.gpu_prefetch,
                known=self._knows_gpus,
                answered=self._requeue_requester,
                limit=settings.gpu_prefetch,
                poll_s=settings.core.stub_poll_interval,
                window_s=settings.core.stub_start_window,
            )
        self.executor = Executor(
            pods=PodWrites(client, ns, control=control),
            peers=peers,
            prefetch=self.prefetch,
            state=self.state,
            book=self.book,
            expectations=self.expectations,
            recorder=recorder,
            metrics=metrics,
            enqueue_node=self.router.enqueue_node,
            write_through=self._write_through,
        )
        self.duality = Duality(metrics.duality, ns)
        self.ready = asyncio.Event()
        self._writing_for: Key | None = None
        """The item whose pass is storing its own write in the Pod cache right now."""

    def _requeue_requester(self, pod: Mapping[str, Any]) -> None:
        self._enqueue(ServerKey(p.uid(pod), p.name(pod)), p.scheduled_node(pod) or "")

    def _knows_gpus(self, uid: str) -> bool:
        memory = self.memories.get(uid)
        return memory is not None and memory.gpu_uuids is not None

    def synced(self) -> dict[str, bool]:
        return {name: informer.has_synced for name, informer in self.informers.items()}

    async def run(self) -> None:
        """Informers, then workers; until cancelled (everything stops with it)."""
        self.router.register(self.informers, self.watches)
        if self.logs is not None:
            self.informers[PODS.plural].add_handlers(_pod_handlers(self.logs))
        if self.prefetch is not None:
            self.informers[PODS.plural].add_handlers(_pod_handlers(self.prefetch))
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
            if self.logs is not None:
                await self.logs.aclose()
            if self.prefetch is not None:
                await self.prefetch.aclose()
            await self._http.aclose()
            await self._calls_http.aclose()

    def _enqueue(self, key: Key, node: str, *, urgent: bool = False) -> None:
        if key == self._writing_for:
            return
        self.labels.remember(key, node)
        self.queue.add(key, urgent=urgent)

    def _write_through(self, obj: JsonObject, item: Key) -> bool:
        """Stores a Pod our pass of `item` wrote; the cache event queues other items only.

        The pass decides again right after a write (`_execute`: `Outcome.wrote`), so the item's
        own key queued by its own write would only make one more pass with nothing to do once
        the worker is done: two of a hot actuation's ten passes were that.
        """
        self._writing_for = item
        try:
            return self.informers[PODS.plural].write_through(obj)
        finally:
            self._writing_for = None

    # ----- passes --------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> Result | Detached | None:
        """Passes over `key` until one has nothing to do next (see `_passes`)."""
        return await self._passes(key, detachable=True)

    async def _passes(self, key: Key, *, detachable: bool) -> Result | Detached | None:
        """Decide and execute, again while a pass acted, up to `passes_in_a_row` times.

        A decision is one step of the protocol (query, bind, wake, relay...), and the caches
        show each step's own writes at once (`Informer.write_through`), so the next step is
        decided right away instead of after a round trip through the queue. A pass with a slow
        call (`Executor.slow`) is `Detached` from the worker and goes on in a task of its own.
        """
        later: float | None = None  # a Requeue of a pass whose queries were answered
        for _ in range(self.settings.passes_in_a_row):
            if self.expectations.wait_for(key, self.state.pod):
                return Result(requeue_after=_earliest(later, self.settings.expectation_recheck_s))
            step = self._decide(key)
            if step is None:
                return _requeue(later)
            if detachable and self.executor.slow(step.actions) and not self._detached.locked():
                await self._detached.acquire()  # free: `locked()` said so, and nothing awaited
                return Detached(self._finish_detached(key, step, later))
            result = await self._execute(step)
            if not isinstance(result, _Again):
                return _merge(result, later)
            later = _earliest(later, result.requeue_after)
        return Result(requeue_after=0.0)  # fairness: back to the end of the queue

    async def _finish_detached(self, key: Key, step: _Step, later: float | None) -> Result | None:
        try:
            result = await self._execute(step)
            if not isinstance(result, _Again):
                return _merge(result, later)
            finished = await self._passes(key, detachable=False)
            assert not isinstance(finished, Detached)
            return _merge(finished, _earliest(later, result.requeue_after))
        finally:
            self._detached.release()

    def _decide(self, key: Key) -> _Step | None:
        """One decision on the caches as they are now (synchronous: a consistent snapshot)."""
        now = time.time()
        if isinstance(key, ServerKey):
            return self._decide_server(key, now)
        if isinstance(key, LauncherKey):
            pod = self.state.pod_by_uid(key.uid)
            if pod is None or p.bound_to(pod) is not None:
                if pod is None:
                    self.labels.forget(key)
                return None
            actions = decide_unbound_launcher(self.state.launcher_view(pod, now))
            return _Step(actions, ServerMemory(), PassContext(item=key, decided_at=now, target=pod))
        isc, error = self.state.isc(key.name)
        if isc is None and error != "not found":
            _log.warning("ISC %s cannot be read (%s); no garbage collection", key.name, error)
            return None
        actions = decide_isc_gc(key.name, isc, self.state.all_launchers(now))
        ctx = PassContext(item=key, decided_at=now, isc_name=key.name)
        return _Step(actions, ServerMemory(), ctx)

    def _decide_server(self, key: ServerKey, now: float) -> _Step:
        memory = self.memories.get(key.uid, ServerMemory())
        snap = server_snapshot(self.state, key, memory=memory, settings=self.settings.core, now=now)
        actions = decide_server(snap)
        provider = snap.providers[0] if len(snap.providers) == 1 else None
        target = snap.requester or provider
        isc = snap.requester.annotations.get(keys.ISC_ANNOTATION, "") if snap.requester else ""
        ctx = PassContext(
            item=key, decided_at=now, isc_name=isc, target=dict(target.raw) if target else None
        )
        return _Step(actions, memory, ctx, snap)

    async def _execute(self, step: _Step) -> Result | _Again | None:
        outcome = await self.executor.run(step.actions, step.memory, step.ctx)
        key = step.ctx.item
        if step.snap is not None and isinstance(key, ServerKey):
            if outcome.forget:
                self.memories.pop(key.uid, None)
                self.duality.forget(key.uid)
                self.labels.forget(key)
            else:
                self.memories[key.uid] = outcome.memory
                self.duality.update(step.snap, outcome.memory)
        if outcome.failure is not None:
            level = logging.INFO if outcome.expected else logging.WARNING
            if outcome.poll_after is not None:
                _log.debug("%s: %s; polling again", key, outcome.failure)
                return Result(requeue_after=outcome.poll_after)
            _log.log(level, "%s: %s; retrying", key, outcome.failure)
            return Result(retry=True)
        if outcome.requeue_after is not None and not (outcome.answered or outcome.wrote):
            return Result(requeue_after=outcome.requeue_after)
        return _Again(outcome.requeue_after) if outcome.acted else None


@dataclass(frozen=True, slots=True)
class _Again:
    """A pass acted: decide again (and requeue after `requeue_after` at the latest)."""

    requeue_after: float | None = None


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _requeue(after: float | None) -> Result | None:
    return Result(requeue_after=after) if after is not None else None


def _merge(result: Result | None, later: float | None) -> Result | None:
    """`result`, keeping a Requeue that an earlier pass in the row asked for."""
    if later is None or (result is not None and result.retry):
        return result
    if result is None or result.requeue_after is None:
        return Result(requeue_after=later)
    return Result(requeue_after=min(result.requeue_after, later))


@dataclass(frozen=True, slots=True)
class _Step:
    """One decision, ready to execute."""

    actions: list[Action]
    memory: ServerMemory
    ctx: PassContext
    snap: ServerSnapshot | None = None
    """The snapshot of a server decision (its memory is kept after execution)."""


class _Listeners:
    """The launcher streams feed the router (work items) and the log relay (log growth)."""

    def __init__(self, router: EventRouter, logs: LogRelay | None) -> None:
        self.router = router
        self.logs = logs

    def on_relist(self, launcher: str, view: LauncherView) -> None:
        self.router.on_relist(launcher, view)
        if self.logs is not None:
            self.logs.log_grew(launcher, view.instances)

    def on_event(self, launcher: str, event: InstanceEvent, view: LauncherView) -> None:
        self.router.on_event(launcher, event, view)
        if self.logs is not None:
            self.logs.log_grew(launcher, view.instances)


class _PodListener(Protocol):
    """What follows the Pod cache besides the router (the log relay, the GPU prefetch)."""

    def pod_changed(self, pod: Mapping[str, Any]) -> None: ...

    def pod_deleted(self, pod: Mapping[str, Any]) -> None: ...


def _pod_handlers(listener: _PodListener) -> Handlers:
    return Handlers(
        on_add=listener.pod_changed,
        on_update=lambda _old, new: listener.pod_changed(new),
        on_delete=listener.pod_deleted,
    )


class _NoListener:
    """Placeholder until the router is built (the streams start only after `run`)."""

    def on_relist(self, launcher: str, view: object) -> None:
        pass

    def on_event(self, launcher: str, event: object, view: object) -> None:
        pass
