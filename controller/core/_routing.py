"""ISC routing metadata: validation at bind time and application once the instance serves.

Contract problem texts (§8.5 step 8) are kept. fma's change (known-gaps E3): when the committed
metadata collides with a key already on the launcher at apply time, the key is skipped and the
collision reported in the requester status, instead of deleting the requester.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from controller.core import _names as n

_NAME: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_RESERVED: Final = ("dual-pods.llm-d.ai", "kubernetes.io", "k8s.io")


@dataclass(frozen=True, slots=True)
class RoutingMetadata:
    """Labels and annotations an ISC asks for on the launcher that serves it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a qualified name (`[prefix/]name`), or None."""
    prefix, _, name = key.rpartition("/")
    if key.count("/") > 1:
        return "a qualified name must have at most one '/'"
    if "/" in key and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return "the prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return (
            "the name part must be 1-63 characters of alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def _reserved(key: str) -> bool:
    prefix = key.partition("/")[0].lower() if "/" in key else ""
    return prefix in _RESERVED or prefix.endswith((".kubernetes.io", ".k8s.io"))


def validate(meta: RoutingMetadata) -> list[str]:
    """Problems of the metadata on its own (key syntax, reserved prefixes, label values)."""
    problems = []
    for kind, items in (("label", meta.labels), ("annotation", meta.annotations)):
        for key, value in items.items():
            checked = key if kind == "label" else key.lower()
            if problem := qualified_name_problem(checked):
                problems.append(f'ISC {kind} key "{key}" is not a valid qualified name: {problem}')
            elif _reserved(key):
                problems.append(f'ISC {kind} key "{key}" uses a reserved prefix')
            if kind == "label" and (len(value) > 63 or not _VALUE.fullmatch(value)):
                problems.append(
                    f'ISC label value "{value}" for key "{key}" is not valid: must be empty or '
                    "up to 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
                )
    return problems


def collisions(
    meta: RoutingMetadata, pod_labels: Mapping[str, str], pod_annotations: Mapping[str, str]
) -> tuple[list[str], RoutingMetadata]:
    """Keys already on the launcher with another value: problems, and the metadata without them."""
    problems = []
    labels = {}
    for key, value in meta.labels.items():
        if key in pod_labels and pod_labels[key] != value:
            problems.append(f'ISC label key "{key}" collides with existing pod label')
        else:
            labels[key] = value
    annotations = {}
    for key, value in meta.annotations.items():
        if key in pod_annotations and pod_annotations[key] != value:
            problems.append(f'ISC annotation key "{key}" collides with existing pod annotation')
        else:
            annotations[key] = value
    return problems, RoutingMetadata(labels, annotations)


def parse_committed(value: str | None) -> RoutingMetadata | None:
    """The `isc-routing-metadata` annotation, or None if missing or invalid."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    labels, annotations = data.get("labels") or {}, data.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        return None
    return RoutingMetadata(
        {str(k): str(v) for k, v in labels.items()},
        {str(k): str(v) for k, v in annotations.items()},
    )


def is_applied(
    meta: RoutingMetadata, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> bool:
    """Every committed key is on the Pod with its value (§8.5 step 1)."""
    return all(labels.get(k) == v for k, v in meta.labels.items()) and all(
        annotations.get(k) == v for k, v in meta.annotations.items()
    )


ROUTING_ANNOTATION: Final = n.ROUTING_METADATA
