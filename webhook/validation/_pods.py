"""The Pod guard: who may write the controllers' annotations and labels (contracts §11).

The reference enforces §11 with CEL on UPDATE only, exempting any ServiceAccount named
`*-fma-controllers`. That leaves three holes (reference-differences D2) which this guard closes:
- CREATE is checked too, so a Pod cannot be born with a forged binding
  (`dual-pods.llm-d.ai/requester`) or posing as a launcher (`launcher-config-name`);
- a bound requester is frozen in both modes: `server-patch` and `admin-port` as well as
  `inference-server-config` and the `dual` label;
- the exemption is a list of exact usernames, not a pattern over every namespace.
Absent and empty values compare equal, as in the reference.

Which Pods reach this guard is the registration's choice (webhook/registration.py): every Pod of
a served namespace, and elsewhere the Pods carrying `dual` or `launcher-config-name`; the rules
here do not depend on the namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from contract import keys
from webhook.admission import AdmissionRequest
from webhook.validation._names import field_key
from webhook.validation._verdict import (
    CODE_BAD_REQUEST,
    CODE_FORBIDDEN,
    ValidationContext,
    Verdict,
)

# The reference policies' messages, verbatim (contracts §11); ours append the fields and a fix.
MESSAGE_MANAGED: Final = (
    "One or more annotations/labels are managed by FMA controllers and cannot be modified directly."
)
MESSAGE_BOUND: Final = (
    "One or more annotations/labels are managed by FMA controllers and cannot be modified once "
    "the server-requesting pod is bound to a providing pod."
)
_FIX_MANAGED: Final = (
    "Fix: leave these keys to the fma controllers; remove them from Pods you create and keep "
    "them unchanged in updates."
)
_FIX_BOUND: Final = (
    "Fix: keep them unchanged while the Pod is bound; to serve something else, change the Pod "
    "template of its Deployment/ReplicaSet (or delete this Pod) so a new requester is created."
)

_Metadata = tuple[dict[str, str], dict[str, str]]  # (annotations, labels)


def validate_pod(request: AdmissionRequest, ctx: ValidationContext) -> Verdict:
    """Deny writes of controller-owned Pod metadata by anyone but the controllers."""
    if request.operation not in ("CREATE", "UPDATE"):
        return Verdict(True)
    if ctx.is_controller(request.user_info.username):
        return Verdict(True)
    if not isinstance(request.object, dict):
        return Verdict(False, "the request carries no Pod object", code=CODE_BAD_REQUEST)
    new = _metadata(request.object)
    old = _metadata(request.old_object) if request.operation == "UPDATE" else ({}, {})
    problems = []
    managed = _changes(old, new, keys.PROTECTED_ANNOTATIONS, keys.PROTECTED_LABELS)
    if managed:
        problems.append(f"{MESSAGE_MANAGED} Fields: {', '.join(managed)}. {_FIX_MANAGED}")
    if request.operation == "UPDATE" and _is_bound_requester(old):
        # `dual` is also a managed label: report it once, under the first rule.
        labels = keys.BOUND_REQUESTER_LABELS - keys.PROTECTED_LABELS
        bound = _changes(old, new, keys.BOUND_REQUESTER_ANNOTATIONS, labels)
        if bound:
            problems.append(f"{MESSAGE_BOUND} Fields: {', '.join(bound)}. {_FIX_BOUND}")
    if problems:
        return Verdict(False, " ".join(problems), code=CODE_FORBIDDEN)
    return Verdict(True)


def _is_bound_requester(metadata: _Metadata) -> bool:
    """A requester (either mode) whose `dual` label names its provider."""
    annotations, labels = metadata
    has_mode = bool(annotations.get(keys.ISC_ANNOTATION) or annotations.get(keys.SERVER_PATCH))
    return has_mode and bool(labels.get(keys.DUAL))


def _changes(
    old: _Metadata, new: _Metadata, annotation_keys: Iterable[str], label_keys: Iterable[str]
) -> list[str]:
    """Field paths of the listed keys whose value differs (absent = empty), with what happened."""
    found = []
    for index, (field, listed) in enumerate(
        (("annotations", annotation_keys), ("labels", label_keys))
    ):
        before, after = old[index], new[index]
        for key in sorted(listed):
            was, now = before.get(key, ""), after.get(key, "")
            if was != now:
                change = "added" if not was else "removed" if not now else "changed"
                found.append(f"metadata.{field}{field_key(key)} ({change})")
    return found


def _metadata(obj: object) -> _Metadata:
    """Annotations and labels of a Pod as string maps, whatever shape the JSON has."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return {}, {}
    return _string_map(metadata.get("annotations")), _string_map(metadata.get("labels"))


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): _as_text(v) for k, v in value.items()}


def _as_text(value: Any) -> str:
    """Compare non-string values (never sent by a real apiserver) by their JSON text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
