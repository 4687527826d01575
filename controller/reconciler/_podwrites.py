"""The Kubernetes side of the actions: Pod updates, deletes and creates, all conditional.

An `UpdatePod` becomes one JSON merge patch of `metadata` carrying the UID and the
resourceVersion the decision saw (contracts §8: every write with preconditions; a stale version
is a 409). Finalizers are a list, which a merge patch replaces whole, so the new list is built
from the Pod at that very version — the cached object, or the one the previous write of this
pass returned. Deletes carry the UID always and the resourceVersion when the action asks for
preconditions; an already deleted Pod counts as deleted.
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
from controller.reconciler._expectations import Expectation
from kube import PODS, ApiError, JsonObject, KubeClient, Preconditions, metadata


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
        body = merge_patch(action, base, version)
        updated = await self.client.patch(
            PODS, action.pod.name, body, namespace=self.namespace, patch_type="merge"
        )
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


def _expect(ref: PodRef, want: Any, obj: Mapping[str, Any] | None) -> Expectation:
    version = _version(obj)
    return Expectation(ref.name, ref.uid, want, int(version) if version.isdigit() else 0)
