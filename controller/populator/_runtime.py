"""The launcher-populator runtime: informer handlers, the policy table, two work queues.

It shares the process, the informers, the apiserver connection and the metrics registry with
the dual-pods controller, and brings its own:

- a `KubeClient` on the same connection with field manager `launcher-populator`;
- an `EventRecorder` with source `launcher-populator` (passed in, or made and run here);
- Pod indexes by key and by LC, added to the shared Pod informer;
- the work queue of (node, LC) keys, and one of LC/LPP status writes.

Order of events: handlers are registered at once (Pod events may enqueue keys early; nothing
takes them yet); once the Pod, Node, LC and LPP informers have synced, the table is built
from their stores, every key known from the table or from an existing launcher Pod is queued,
and only then do the workers start (contracts §10: key work starts after the initial build).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from controlauth import ControllerAuth
from controller.observability import ControllerMetrics
from controller.populator._counts import PodCounts
from controller.populator._expectations import Expectations
from controller.populator._instances import InstanceSource, NoInstances
from controller.populator._keys import (
    KEY_INDEX,
    LC_INDEX,
    UID_INDEX,
    LauncherKey,
    key_index,
    key_of,
    lc_index,
    uid_index,
)
from controller.populator._reconcile import LauncherReconciler
from controller.populator._settings import COMPONENT, Settings
from controller.populator._status import Rejections, StatusKey, StatusReconciler
from controller.populator._table import Changes, PolicyKeeper
from kube import (
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
    NODES,
    PODS,
    EventRecorder,
    EventSettings,
    Handlers,
    Informer,
    JsonObject,
    KubeClient,
    KubeEventSink,
    KubeListWatch,
    WorkQueue,
    metadata,
    run_informers,
    run_workers,
)

_log = logging.getLogger(__name__)

KINDS = (PODS, NODES, LAUNCHER_CONFIGS, LAUNCHER_POPULATION_POLICIES)
INFORMERS = tuple(kind.plural for kind in KINDS)
"""The informers (by plural, as `focus_informers` names them) the populator reads."""


class Populator:
    """The launcher-populator of one focus namespace; `await run()` until cancelled.

    `informers` are the caller's (shared with the dual-pods controller and run by the caller),
    keyed by plural; those of `INFORMERS` it lacks are made and run here.
    """

    def __init__(
        self,
        client: KubeClient,
        informers: Mapping[str, Informer],
        settings: Settings,
        metrics: ControllerMetrics,
        events: EventRecorder | None = None,
        *,
        instances: InstanceSource | None = None,
        wall_clock: Callable[[], float] = time.time,
        control: ControllerAuth | None = None,
    ) -> None:
        if events is not None and events.settings.component != COMPONENT:
            raise ValueError(f"the populator's events need component {COMPONENT!r}")
        self.settings = settings
        self.client = KubeClient(client.http, field_manager=COMPONENT)
        self.own_informers = _missing_informers(client, informers, settings.namespace)
        """Informers the caller did not pass: made here, run by `run()`."""
        self.informers = {
            **{name: informers[name] for name in INFORMERS if name in informers},
            **self.own_informers,
        }
        self._own_events = events is None
        self.events = events or EventRecorder(
            KubeEventSink(self.client), EventSettings(component=COMPONENT)
        )
        self.keeper = PolicyKeeper(with_reflector=settings.with_reflector)
        self.expectations = Expectations(settings.expectation_timeout_s, _loop_time)
        self.counts = PodCounts(metrics.launcher_pod_count, self._lc_exists)
        self.queue: WorkQueue[LauncherKey] = WorkQueue()
        self.status_queue: WorkQueue[StatusKey] = WorkQueue()
        self.rejections = Rejections(lambda lc: self.status_queue.add(StatusKey("lc", lc)))
        pods = self.informers[PODS.plural].store
        for index, func in ((KEY_INDEX, key_index), (LC_INDEX, lc_index), (UID_INDEX, uid_index)):
            with contextlib.suppress(ValueError):  # already added (a second populator)
                pods.add_indexer(index, func)
        self._reconcilers(metrics, instances or NoInstances(), wall_clock, control)
        self._registered = False

    def _reconcilers(
        self,
        metrics: ControllerMetrics,
        instances: InstanceSource,
        wall: Callable[[], float],
        control: ControllerAuth | None,
    ) -> None:
        self.reconcile_launchers = LauncherReconciler(
            client=self.client,
            pods=self.informers[PODS.plural].store,
            keeper=self.keeper,
            expectations=self.expectations,
            counts=self.counts,
            rejections=self.rejections,
            instances=instances,
            events=self.events,
            create_seconds=metrics.launcher_create_seconds,
            settings=self.settings,
            wall_clock=wall,
            control=control,
        )
        self.reconcile_status = StatusReconciler(
            client=self.client,
            lcs=self.informers[LAUNCHER_CONFIGS.plural].store,
            lpps=self.informers[LAUNCHER_POPULATION_POLICIES.plural].store,
            keeper=self.keeper,
            rejections=self.rejections,
            namespace=self.settings.namespace,
        )

    @property
    def ready(self) -> bool:
        """True once the table is built and the workers run (for `/readyz`)."""
        return self.keeper.ready

    def launcher_changed(self, pod_uid: str) -> None:
        """The instances of launcher Pod `pod_uid` changed (its stream listed, or reported an
        event): decide its key again. Whoever feeds the `InstanceSource` calls this."""
        for pod in self.informers[PODS.plural].store.by_index(UID_INDEX, pod_uid):
            if (key := key_of(pod)) is not None:
                self.queue.add(key)

    def health(self) -> tuple[bool, str]:
        """A `/readyz` check."""
        return (True, "table built") if self.ready else (False, "waiting for the informers")

    async def run(self) -> None:
        """Build the table once the informers synced, then work until cancelled."""
        self._register()
        try:
            async with asyncio.TaskGroup() as group:
                if self._own_events:
                    group.create_task(self.events.run(), name="populator-events")
                if self.own_informers:
                    group.create_task(run_informers(self.own_informers), name="own-informers")
                for informer in self.informers.values():
                    await informer.wait_synced()
                self._start()
                group.create_task(
                    run_workers(
                        self.queue,
                        self.reconcile_launchers,
                        workers=self.settings.workers,
                        name="populator",
                    )
                )
                group.create_task(
                    run_workers(self.status_queue, self.reconcile_status, workers=1, name="status")
                )
        finally:
            self.queue.shutdown()
            self.status_queue.shutdown()

    # ----- plumbing ----------------------------------------------------------------------------

    def _start(self) -> None:
        changes = self.keeper.build()
        for pod in self.informers[PODS.plural].store.objects():
            key = key_of(pod)
            if key is not None:
                changes.keys.add(key)
        self._apply(changes)
        _log.info(
            "policy table built: %d keys, %d LCs, %d LPPs",
            len(self.keeper.table.desired),
            len(changes.lc_status),
            len(changes.lpp_status),
        )

    def _register(self) -> None:
        if self._registered:
            return
        self._registered = True
        self.informers[PODS.plural].add_handlers(
            Handlers(
                on_add=self._pod_seen,
                on_update=self._pod_changed,
                on_delete=lambda pod: self._pod_seen(pod, gone=True),
            )
        )
        for plural, setter in (
            (NODES.plural, self.keeper.set_node),
            (LAUNCHER_CONFIGS.plural, self.keeper.set_lc),
            (LAUNCHER_POPULATION_POLICIES.plural, self.keeper.set_lpp),
        ):
            self.informers[plural].add_handlers(_table_handlers(setter, self._apply))

    def _pod_seen(self, pod: JsonObject, *, gone: bool = False) -> None:
        self.expectations.observe(pod, gone=gone)
        key = key_of(pod)
        if key is not None:
            self.queue.add(key)

    def _pod_changed(self, old: JsonObject, new: JsonObject) -> None:
        self._pod_seen(new)
        key = key_of(old)
        if key is not None and key != key_of(new):
            self.queue.add(key)  # relabelled: the old key lost a Pod

    def _apply(self, changes: Changes) -> None:
        for key in changes.keys:
            self.queue.add(key)
        pods = self.informers[PODS.plural].store
        for lc in changes.lcs:
            for key in self.keeper.keys_of(lc):
                self.queue.add(key)
            for pod in pods.by_index(LC_INDEX, lc):
                if (pod_key := key_of(pod)) is not None:
                    self.queue.add(pod_key)
            self.counts.refresh(lc)
            self.rejections.forget(lc)
        for name in changes.lc_status:
            self.status_queue.add(StatusKey("lc", name))
        for name in changes.lpp_status:
            self.status_queue.add(StatusKey("lpp", name))

    def _lc_exists(self, lc: str) -> bool:
        return self.keeper.build_of(lc) is not None


def _table_handlers(
    setter: Callable[[str, JsonObject | None], Changes], apply: Callable[[Changes], None]
) -> Handlers:
    def name(obj: JsonObject) -> str:
        return str(metadata(obj).get("name") or "")

    return Handlers(
        on_add=lambda obj: apply(setter(name(obj), obj)),
        on_update=lambda _old, new: apply(setter(name(new), new)),
        on_delete=lambda obj: apply(setter(name(obj), None)),
    )


def _missing_informers(
    client: KubeClient, given: Mapping[str, Informer], namespace: str
) -> dict[str, Informer]:
    return {
        kind.plural: Informer(
            KubeListWatch(client, kind, namespace=namespace if kind.namespaced else None)
        )
        for kind in KINDS
        if kind.plural not in given
    }


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
