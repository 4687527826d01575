"""ISC routing metadata: validation at bind time and application once the instance serves.

Contract problem texts (§8.5 step 8) are kept. fma's change (reference-differences E3): when the
committed metadata collides with a key already on the launcher at apply time, the key is skipped
and the collision reported in the requester status, instead of deleting the requester.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass

from contract.rules import routing_problems


@dataclass(frozen=True, slots=True)
class RoutingMetadata:
    """Labels and annotations an ISC asks for on the launcher that serves it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def validate(meta: RoutingMetadata) -> list[str]:
    """Problems of the metadata on its own (key syntax, reserved prefixes, label values), in the
    reference's words (§8.5 step 8). The decision is `contract.rules.routing_problems`, the one
    the validating webhook makes at admission, so an admitted ISC binds."""
    problems = []
    bad_keys: set[tuple[str, str]] = set()
    for p in routing_problems(meta.labels, meta.annotations):
        if p.what == "key":
            bad_keys.add((p.kind, p.key))
            detail = "; ".join(p.details)
            problems.append(f'ISC {p.kind} key "{p.key}" is not a valid qualified name: {detail}')
        elif p.what == "reserved":
            if (p.kind, p.key) not in bad_keys:
                problems.append(f'ISC {p.kind} key "{p.key}" uses a reserved prefix')
        else:
            problems.append(
                f'ISC label value "{p.value}" for key "{p.key}" is not valid: '
                + "; ".join(p.details)
            )
    return problems


def collisions(
    meta: RoutingMetadata, pod_labels: Mapping[str, str], pod_annotations: Mapping[str, str]
) -> tuple[list[str], RoutingMetadata]:
    """Keys already on the launcher with another value: problems, and the metadata without them."""
    problems: list[str] = []
    labels = _kept(_LABEL_COLLISION, meta.labels, pod_labels, problems)
    annotations = _kept(_ANNOTATION_COLLISION, meta.annotations, pod_annotations, problems)
    return problems, RoutingMetadata(labels, annotations)


_LABEL_COLLISION = 'ISC label key "{key}" collides with existing pod label'
_ANNOTATION_COLLISION = 'ISC annotation key "{key}" collides with existing pod annotation'
"""The reference's texts, whole, so that a reader (and the docs' check) finds each one."""


def _kept(
    message: str, wanted: Mapping[str, str], existing: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """The `wanted` entries that do not collide with `existing`; each collision is a problem."""
    kept = {}
    for key, value in wanted.items():
        if key in existing and existing[key] != value:
            problems.append(message.format(key=key))
        else:
            kept[key] = value
    return kept


@functools.lru_cache(maxsize=256)
def parse_committed(value: str | None) -> RoutingMetadata | None:
    """The `isc-routing-metadata` annotation, or None if missing or invalid.

    Cached by its text: every pass over a bound server reads it, and a result is never
    changed (its mappings are read only)."""
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
