"""The Kubernetes side of the actions: Pod updates, deletes and creates, all conditional.

A versioned `UpdatePod` becomes one JSON merge patch of `metadata` carrying the UID and the
resourceVersion the decision saw (contracts §8: every write with preconditions; a stale version
is a 409). Finalizers are a list, which a merge patch replaces whole, so the new list is built
from the Pod at that very version — the cached object, or the one the previous write of this
pass returned. An unversioned one (`UpdatePod.versioned`) is a strategic merge patch carrying
the UID: `ObjectMeta.finalizers` merges as a set there, so it adds and removes single entries
(`$deleteFromPrimitiveList`) and needs neither a base nor a version. Deletes carry the UID
always and the resourceVersion when the action asks for preconditions; an already deleted Pod
counts as deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controlauth import ControllerAuth
from controller.core import (
    CreateLauncher,
    CreatePod,
    DeletePod,
    PodRef,
    UpdatePod,
    with_control_env,
)
from controller.reconciler import _pods as p
from controller.reconciler._expectations import Expectation
from kube import PODS, ApiError, JsonObject, KubeClient, PatchType, Preconditions, metadata


def _version(obj: Mapping[str, Any] | None) -> str:
    return str((obj or {}).get("metadata", {}).get("resourceVersion") or "")


def merge_patch(action: UpdatePod, base: JsonObject | None, version: str) -> JsonObject:
    """The merge patch of `action` on a Pod whose current state is `base` (pure)."""
    patch = action.patch
    meta: dict[str, Any] = {"uid": action.pod.uid}
    if version:
        meta["resourceVersion"] = version
    if patch.labels:
        meta["labels"] = dict(patch.labels)
    if patch.annotations:
        meta["annotations"] = dict(patch.annotations)
    if patch.add_finalizers or patch.remove_finalizers:
        if base is None:
            raise ValueError(f"Pod {action.pod.name} is not in the cache; cannot edit finalizers")
        current = list(metadata(base).get("finalizers") or [])
        kept = [f for f in current if f not in patch.remove_finalizers]
        meta["finalizers"] = kept + [f for f in patch.add_finalizers if f not in kept]
    return {"metadata": meta}


def strategic_patch(action: UpdatePod) -> JsonObject:
    """The strategic merge patch of an unversioned `action`: each key and finalizer on its own."""
    patch = action.patch
    meta: dict[str, Any] = {"uid": action.pod.uid}
    if patch.labels:
        meta["labels"] = dict(patch.labels)
    if patch.annotations:
        meta["annotations"] = dict(patch.annotations)
    if patch.add_finalizers:
        meta["finalizers"] = list(patch.add_finalizers)
    if patch.remove_finalizers:
        meta["$deleteFromPrimitiveList/finalizers"] = list(patch.remove_finalizers)
    return {"metadata": meta}


class PodWrites:
    """Performs the Pod actions of one pass; remembers what each write returned."""

    def __init__(
        self, client: KubeClient, namespace: str, *, control: ControllerAuth | None = None
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.control = control
        """Gives each created launcher the control bundle (None: launchers open, compat mode)."""

    async def update(
        self, action: UpdatePod, base: JsonObject | None, version: str
    ) -> tuple[JsonObject, Expectation]:
        kind: PatchType = "merge" if action.versioned else "strategic"
        body = merge_patch(action, base, version) if action.versioned else strategic_patch(action)
        try:
            updated = await self.client.patch(
                PODS, action.pod.name, body, namespace=self.namespace, patch_type=kind
            )
        except ApiError as exc:
            if exc.invalid and "metadata.uid" in exc.message:
                # Without a version the apiserver checks the UID as an immutable field (422):
                # the Pod of that name is another one, ours is gone.
                message = f'pod "{action.pod.name}" with UID {action.pod.uid} is gone'
                raise ApiError(404, "NotFound", message, exc.body) from exc
            raise
        if _deleted_by(updated):
            return updated, _expect(action.pod, "absent", None)
        return updated, _expect(action.pod, "version", updated)

    async def delete(self, action: DeletePod, version: str) -> tuple[JsonObject, Expectation]:
        preconditions = Preconditions(
            uid=action.pod.uid, resource_version=version if action.preconditions else None
        )
        try:
            answer = await self.client.delete(
                PODS,
                action.pod.name,
                namespace=self.namespace,
                preconditions=preconditions,
                propagation_policy="Background",
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
            answer = {}
        is_pod = answer.get("kind") == "Pod"
        return answer, _expect(action.pod, "gone", answer if is_pod else None)

    async def create(self, action: CreatePod) -> tuple[JsonObject, Expectation]:
        body = copy.deepcopy(dict(action.pod))
        if isinstance(action, CreateLauncher):
            body = with_control_env(body, self.control.trust_pem() if self.control else None)
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Pod")
        body.setdefault("metadata", {})["namespace"] = self.namespace
        created = await self.client.create(PODS, body, namespace=self.namespace)
        meta = metadata(created)
        ref = PodRef(name=str(meta.get("name") or ""), uid=str(meta.get("uid") or ""))
        return created, _expect(ref, "present", created)


def _deleted_by(answer: JsonObject) -> bool:
    """Whether the update deleted the Pod: it emptied the finalizers of a Pod being deleted with
    no grace left (the kubelet is done with it). The apiserver then deletes the Pod instead of
    storing the update, and answers with the update applied but at the version stored before
    (checked on v1.20). The cache holds that version already, with the finalizer, so it would
    keep it, and the next pass would remove the finalizer again from a Pod that is gone: a 404
    on most unbinds at scale. So the pass waits for the Pod to leave the cache instead."""
    meta = metadata(answer)
    return (
        p.is_deleting(answer)
        and meta.get("deletionGracePeriodSeconds") == 0
        and not meta.get("finalizers")
    )


def _expect(ref: PodRef, want: Any, obj: Mapping[str, Any] | None) -> Expectation:
    version = _version(obj)
    return Expectation(ref.name, ref.uid, want, int(version) if version.isdigit() else 0)
