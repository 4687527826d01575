"""Labels the server patch changes so the provider is not counted as one of the set's Pods.

The provider starts as a copy of the requester's labels (contracts.md §1.4). If it still matched
the selector of the requester's ReplicaSet or StatefulSet, the set would count (and may delete)
it as one of its replicas. Setting a label the selector requires to null is enough to fall
outside it; when the selector is unknown but the Pod has a controller, every label is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.mutation._model import Skip
from webhook.mutation._pod_access import as_map, get_list, get_map, get_str

_POSITIVE_OPERATORS = frozenset({"In", "Exists"})


def _required_keys(selector: Mapping[str, Any]) -> list[str]:
    """Label keys the selector requires to be present (matchLabels, `In`, `Exists`).

    A plain map (without `matchLabels`/`matchExpressions`) is read as `matchLabels`, the way a
    ReplicationController's selector is written.
    """
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return list(selector)
    keys = list(get_map(selector, "matchLabels", "owner selector matchLabels") or {})
    expressions = get_list(selector, "matchExpressions", "owner selector matchExpressions")
    for index, raw in enumerate(expressions or ()):
        expression = as_map(raw, f"owner selector matchExpressions[{index}]")
        key = get_str(expression, "key", "owner selector key")
        if key and expression.get("operator") in _POSITIVE_OPERATORS:
            keys.append(key)
    return list(dict.fromkeys(keys))


def _has_controller(metadata: Mapping[str, Any]) -> bool:
    references = get_list(metadata, "ownerReferences", "metadata.ownerReferences") or ()
    return any(isinstance(ref, dict) and ref.get("controller") is True for ref in references)


def provider_label_changes(
    *,
    metadata: Mapping[str, Any],
    labels: Mapping[str, str],
    owner_selector: Mapping[str, Any] | None,
    warnings: list[str],
) -> dict[str, str | None]:
    """Label keys to set to null in the server patch."""
    if owner_selector is not None:
        try:
            keys = _required_keys(owner_selector)
        except Skip:
            keys = []
        if keys:
            return dict.fromkeys(keys)
        warnings.append(
            "fma: the owner's selector requires no label; the provider gets none of the Pod's "
            "labels but may still match it"
        )
        return dict.fromkeys(labels)
    if _has_controller(metadata):
        warnings.append(
            "fma: the Pod's controller selector is unknown; the provider gets none of the "
            "Pod's labels"
        )
        return dict.fromkeys(labels)
    return {}
