"""Writes with preconditions: every change the controller makes is conditional on what it saw.

The controller decides from its cache, which can be behind the apiserver. A write that is not
conditional could undo someone else's change (a user's edit, the other replica during a
leader handover, a Pod deleted and recreated under the same name). So every write here carries
the uid and resourceVersion of the object the decision was based on, and a mismatch fails with
409 Conflict; the worker then retries the key after the newer object has arrived (see
`kube._workers`). What the apiserver does with each form (checked on v1.20):

| write | stale version | recreated object |
|---|---|---|
| PUT carrying uid + resourceVersion (`update`) | 409 | 409 (uid precondition) |
| merge/strategic patch with them in `metadata` (`patch_merge`) | 409 | 409 (version stale too) |
| JSON patch led by `replace /metadata/resourceVersion` (`patch_json`) | 409 | 409 |
| DELETE with `preconditions` (`delete`) | 409 | 409 |

A JSON-patch `test` op would fail with 422 instead, indistinguishable from a bad patch, which
is why `patch_json` pins the version with `replace`. Resource versions are unique across the
whole store, so a matching version implies a matching uid.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from kube._client import ApiError, KubeClient, PatchType, Preconditions
from kube._resources import JsonObject, ResourceKind, metadata


def preconditions_of(obj: JsonObject) -> Preconditions:
    """The uid and resourceVersion `obj` was read at."""
    meta = metadata(obj)
    return Preconditions(
        uid=str(meta.get("uid") or "") or None,
        resource_version=str(meta.get("resourceVersion") or "") or None,
    )


def mutable_copy(obj: JsonObject) -> JsonObject:
    """A deep copy to build a write from; cached objects are shared and must stay untouched."""
    return copy.deepcopy(obj)


def is_conflict(exc: BaseException) -> bool:
    """True for a failed precondition: re-read (wait for the watch) and decide again."""
    return isinstance(exc, ApiError) and exc.conflict


def _require(obj: JsonObject) -> tuple[str, str, str | None]:
    meta = metadata(obj)
    name, uid, version = meta.get("name"), meta.get("uid"), meta.get("resourceVersion")
    if not (name and uid and version):
        raise ValueError("a conditional write needs metadata.name, uid and resourceVersion")
    return str(uid), str(version), meta.get("namespace")


async def update(
    client: KubeClient, kind: ResourceKind, obj: JsonObject, *, subresource: str | None = None
) -> JsonObject:
    """PUT `obj`, conditional on the uid and resourceVersion it carries."""
    _require(obj)
    return await client.replace(kind, obj, subresource=subresource)


async def update_if_changed(
    client: KubeClient,
    kind: ResourceKind,
    current: JsonObject,
    mutate: Callable[[JsonObject], None],
    *,
    subresource: str | None = None,
) -> JsonObject:
    """Applies `mutate` to a copy of `current` and PUTs it only if that changed anything.

    Returns the object as stored afterwards (`current` itself when nothing changed), so a
    reconciler can write "desired" every pass and cost the apiserver nothing when in step.
    """
    desired = mutable_copy(current)
    mutate(desired)
    if desired == current:
        return current
    return await update(client, kind, desired, subresource=subresource)


async def patch_merge(
    client: KubeClient,
    kind: ResourceKind,
    current: JsonObject,
    patch: JsonObject,
    *,
    patch_type: PatchType = "merge",
    subresource: str | None = None,
) -> JsonObject:
    """A merge (or strategic) patch, conditional on `current`'s uid and resourceVersion."""
    if patch_type == "json":
        raise ValueError("use patch_json for JSON patches")
    uid, version, namespace = _require(current)
    conditional: dict[str, Any] = dict(patch)
    meta = dict(conditional.get("metadata") or {})
    meta.update(uid=uid, resourceVersion=version)
    conditional["metadata"] = meta
    return await client.patch(
        kind,
        str(metadata(current)["name"]),
        conditional,
        namespace=namespace,
        patch_type=patch_type,
        subresource=subresource,
    )


async def patch_json(
    client: KubeClient,
    kind: ResourceKind,
    current: JsonObject,
    operations: Sequence[JsonObject],
    *,
    subresource: str | None = None,
) -> JsonObject:
    """A JSON patch, conditional on `current`'s resourceVersion (see the module table)."""
    _uid, version, namespace = _require(current)
    pin = {"op": "replace", "path": "/metadata/resourceVersion", "value": version}
    return await client.patch(
        kind,
        str(metadata(current)["name"]),
        [pin, *operations],
        namespace=namespace,
        patch_type="json",
        subresource=subresource,
    )


async def delete(
    client: KubeClient,
    kind: ResourceKind,
    current: JsonObject,
    *,
    check_version: bool = True,
    propagation_policy: str | None = "Background",
    missing_ok: bool = True,
) -> bool:
    """DELETE conditional on `current`'s uid (and resourceVersion unless `check_version` is off).

    Returns False when the object was already gone (404) and `missing_ok`; a uid mismatch (the
    name now belongs to another object) is a 409, never a silent delete of the newcomer.
    """
    uid, version, namespace = _require(current)
    preconditions = Preconditions(uid=uid, resource_version=version if check_version else None)
    try:
        await client.delete(
            kind,
            str(metadata(current)["name"]),
            namespace=namespace,
            preconditions=preconditions,
            propagation_policy=propagation_policy,
        )
    except ApiError as exc:
        if exc.not_found and missing_ok:
            return False
        raise
    return True
