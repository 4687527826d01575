"""What a Pod is to the dual-pods controller (contracts §8.1), read straight from its JSON.

Handlers classify every Pod event with these functions, and the Pod informer's indexes answer
the snapshot's questions without a scan: the provider bound to a requester UID, the launchers
and direct providers of a node, the requesters of a node or of an ISC, a launcher by its IP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from contract import keys
from kube import IndexFunc, JsonObject, node_name_index

BY_UID: Final = "uid"
BOUND_TO: Final = "bound-uid"
BY_NODE: Final = "node"
LAUNCHERS_ON: Final = "launcher-node"
NOMINAL_ON: Final = "nominal-node"
BY_ISC: Final = "isc"
LAUNCHER_IP: Final = "launcher-ip"


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def annotations_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(pod).get("annotations") or {}


def labels_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(pod).get("labels") or {}


def uid(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("uid") or "")


def name(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("name") or "")


def is_deleting(pod: Mapping[str, Any]) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_requester(pod: Mapping[str, Any]) -> bool:
    """A non-empty server patch, or the ISC annotation present at all (§1.2)."""
    found = annotations_of(pod)
    return bool(found.get(keys.SERVER_PATCH)) or keys.ISC_ANNOTATION in found


def bound_to(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(requester UID, requester name) of a bound provider (§1.3), else None."""
    value = annotations_of(pod).get(keys.REQUESTER)
    parts = value.split(" ") if value else []
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def is_launcher(pod: Mapping[str, Any]) -> bool:
    return keys.LC_NAME in labels_of(pod)


def scheduled_node(pod: Mapping[str, Any]) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


def provider_node(pod: Mapping[str, Any]) -> str | None:
    """A provider's node: where it is pinned (`kubernetes.io/hostname`), else where it runs."""
    spec = pod.get("spec") or {}
    return (spec.get("nodeSelector") or {}).get(keys.HOSTNAME) or spec.get("nodeName") or None


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("podIP") or None


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_terminated(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _one(value: str | None) -> Iterable[str]:
    return (value,) if value else ()


def _bound_uid(pod: JsonObject) -> Iterable[str]:
    binding = bound_to(pod)
    return (binding[0],) if binding else ()


def _launcher_node(pod: JsonObject) -> Iterable[str]:
    return _one(provider_node(pod)) if is_launcher(pod) else ()


def _nominal_node(pod: JsonObject) -> Iterable[str]:
    return _one(provider_node(pod)) if keys.NOMINAL in annotations_of(pod) else ()


def _isc(pod: JsonObject) -> Iterable[str]:
    return _one(annotations_of(pod).get(keys.ISC_ANNOTATION)) if is_requester(pod) else ()


def _launcher_ip(pod: JsonObject) -> Iterable[str]:
    return _one(pod_ip(pod)) if is_launcher(pod) else ()


def pod_indexers() -> dict[str, IndexFunc]:
    """The Pod informer's indexes (contracts §8.1 lists the reference's)."""
    return {
        BY_UID: lambda pod: _one(uid(pod)),
        BOUND_TO: _bound_uid,
        BY_NODE: node_name_index,
        LAUNCHERS_ON: _launcher_node,
        NOMINAL_ON: _nominal_node,
        BY_ISC: _isc,
        LAUNCHER_IP: _launcher_ip,
    }
