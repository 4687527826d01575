"""One pass over one (node, LC) key: gather its launcher Pods, decide, act (contracts §10).

The decision is `controller.core.decide_population`; this module only does the I/O around it:

1. Gather the key's launcher Pods from the informer's index, unless an expectation of ours
   is still pending (then wait for the watch event, which re-adds the key) or has expired
   (then LIST them from the apiserver).
2. Publish the phase counts and decide.
3. Delete (stale, then excess) with the UID and resourceVersion the decision saw; a 409 means
   someone changed the Pod meanwhile (e.g. the dual-pods controller bound it): it is not
   deleted, and the key runs again once the newer Pod is in the cache.
4. Merge-patch the stuck label, emit `LauncherStuck`, create the missing launchers (timed by
   `fma_launcher_create_seconds`), and record an expectation per write.
5. Come back when the next Pod would become stuck.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import Histogram

from controlauth import ControllerAuth
from controller.core import (
    DeletePod,
    EmitEvent,
    LauncherView,
    PodPatch,
    PopulationDecision,
    UpdatePod,
    decide_population,
    pod_view,
    with_control_env,
)
from controller.populator._counts import PodCounts
from controller.populator._expectations import Expectations, WriteKind
from controller.populator._instances import InstanceSource
from controller.populator._keys import KEY_INDEX, LauncherKey
from controller.populator._settings import Settings
from controller.populator._status import Rejections
from controller.populator._table import PolicyKeeper
from kube import (
    PODS,
    ApiError,
    EventRecorder,
    JsonObject,
    KubeClient,
    Result,
    Store,
    delete,
    metadata,
    patch_merge,
)

_log = logging.getLogger(__name__)

REQUEUE_MARGIN_S: Final = 0.05
"""Added to "requeue when the next Pod becomes stuck", so that the pass lands just after the
threshold (the phase test is strict) rather than exactly on it."""


@dataclass(kw_only=True)
class LauncherReconciler:
    """`reconcile(key)` for the work queue of (node, LC) keys."""

    client: KubeClient
    pods: Store
    keeper: PolicyKeeper
    expectations: Expectations
    counts: PodCounts
    rejections: Rejections
    instances: InstanceSource
    events: EventRecorder
    create_seconds: Histogram
    settings: Settings
    wall_clock: Callable[[], float]
    control: ControllerAuth | None = None
    """Gives each created launcher the control bundle (None: launchers open, compat mode)."""

    async def __call__(self, key: LauncherKey) -> Result | None:
        pods = await self._gather(key)
        if isinstance(pods, Result):
            return pods
        decision = decide_population(
            node=self.keeper.node(key.node),
            lc_name=key.lc,
            desired=self.keeper.desired(key),
            build=self.keeper.build_of(key.lc),
            launchers=[self._view(pod) for pod in pods],
            now=self.wall_clock(),
            settings=self.settings.thresholds,
        )
        self.counts.report(key, decision.phase_counts)
        conflicts = await self._act(key, pods, decision)
        if conflicts:
            return Result(retry=True)
        if decision.requeue_after is None:
            return None
        return Result(requeue_after=decision.requeue_after + REQUEUE_MARGIN_S)

    async def _gather(self, key: LauncherKey) -> list[JsonObject] | Result:
        state, remaining = self.expectations.state(key)
        if state == "pending":
            return Result(requeue_after=remaining)
        if state == "satisfied":
            return self.pods.by_index(KEY_INDEX, key.index_value)
        _log.info(
            "%s: expectations not met in %.0fs; listing", key, self.settings.expectation_timeout_s
        )
        self.expectations.reset(key)
        listed = await self.client.list(
            PODS, namespace=self.settings.namespace, label_selector=key.label_selector
        )
        return list(listed.get("items") or [])

    def _view(self, pod: JsonObject) -> LauncherView:
        view = pod_view(pod)
        return LauncherView(pod=view, instances=self.instances.instances(view.uid))

    async def _act(
        self, key: LauncherKey, pods: list[JsonObject], decision: PopulationDecision
    ) -> bool:
        """Perform the decision; True if a write met a conflict (the key should run again)."""
        by_uid = {str(metadata(pod).get("uid")): pod for pod in pods}
        failed: set[str] = set()
        for action in decision.actions:
            if not isinstance(action, DeletePod | UpdatePod | EmitEvent):
                raise TypeError(f"not a populator action: {action!r}")
            uid = action.pod.uid
            pod = by_uid.get(uid)
            if pod is not None and uid not in failed and not await self._perform(key, pod, action):
                failed.add(uid)  # no Event about a label that did not stick
        for template in decision.create:
            await self._create(key, template)
        return bool(failed)

    async def _perform(
        self, key: LauncherKey, pod: JsonObject, action: DeletePod | UpdatePod | EmitEvent
    ) -> bool:
        if isinstance(action, DeletePod):
            return await self._delete(key, pod, action.reason)
        if isinstance(action, UpdatePod):
            return await self._patch(key, pod, action.patch)
        self.events.event(pod, type=action.type, reason=action.reason, message=action.message)
        return True

    async def _delete(self, key: LauncherKey, pod: JsonObject, reason: str) -> bool:
        try:
            await delete(self.client, PODS, pod)
        except ApiError as exc:
            if exc.conflict:
                _log.info("%s: %s changed meanwhile; not deleted", key, _name(pod))
                return False
            raise
        _log.info("%s: deleted launcher %s (%s)", key, _name(pod), reason)
        self._expect(key, pod, "delete")
        return True

    async def _patch(self, key: LauncherKey, pod: JsonObject, patch: PodPatch) -> bool:
        body = {"metadata": {"labels": dict(patch.labels)}}
        try:
            await patch_merge(self.client, PODS, pod, body)
        except ApiError as exc:
            if exc.conflict or exc.not_found:
                return False
            raise
        _log.info("%s: labelled launcher %s %s", key, _name(pod), dict(patch.labels))
        self._expect(key, pod, "patch")
        return True

    async def _create(self, key: LauncherKey, template: JsonObject) -> None:
        namespace = metadata(template).get("namespace") or self.settings.namespace
        loop = asyncio.get_running_loop()
        started = loop.time()
        success = "false"
        try:
            trust = self.control.trust_pem() if self.control else None
            body = with_control_env(template, trust)
            created = await self.client.create(PODS, body, namespace=namespace)
            success = "true"
        except ApiError as exc:
            if exc.invalid:
                self.rejections.rejected(key.lc, exc.message)
            raise
        finally:
            self.create_seconds.labels(namespace, key.lc, success).observe(loop.time() - started)
        self.rejections.forget(key.lc)
        _log.info("%s: created launcher %s", key, _name(created))
        self._expect(key, created, "create")

    def _expect(self, key: LauncherKey, pod: JsonObject, kind: WriteKind) -> None:
        meta = metadata(pod)
        cached = self.pods.get_by_name(str(meta.get("namespace") or ""), str(meta.get("name")))
        self.expectations.expect(
            key,
            str(meta.get("uid") or ""),
            kind,
            version=str(meta.get("resourceVersion") or ""),
            cached=cached,
        )


def _name(pod: JsonObject) -> str:
    return str(metadata(pod).get("name") or "?")
