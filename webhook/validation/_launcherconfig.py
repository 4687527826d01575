"""LauncherConfig checks beyond the CRD schema: the launcher Pod template.

A template is "malformed" for the controllers when it has no `inference-server` container
(contracts §4.2), and they then stop managing that LauncherConfig's launchers. Template metadata
is copied onto every launcher Pod by the controllers themselves, whose writes the Pod guard
trusts, so a template must not carry the controller-owned keys: that would create launchers that
look bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from contract import rules
from contract.keys import DUAL_PODS_PREFIX, PROTECTED_ANNOTATIONS, PROTECTED_LABELS
from contract.objects import INFERENCE_SERVER
from webhook.validation import _names
from webhook.validation._podspec import check_pod_spec
from webhook.validation._verdict import Findings

_BASE: Final = "spec.podTemplate"
_TEMPLATE_METADATA_FIELDS: Final = frozenset({"labels", "annotations"})


def check_launcher_config(raw: Mapping[str, Any], findings: Findings) -> None:
    """Check the raw LauncherConfig object (already parsed by `crds.models` successfully)."""
    spec = raw.get("spec")
    template = spec.get("podTemplate") if isinstance(spec, dict) else None
    if not isinstance(template, dict) or template.get("spec") is None:
        findings.deny(
            f"{_BASE}.spec",
            "is required: launcher Pods are built from it",
            f'add a Pod spec with a container named "{INFERENCE_SERVER}"',
        )
        return
    _check_metadata(template.get("metadata"), findings)
    check_pod_spec(template["spec"], f"{_BASE}.spec", findings)


def _check_metadata(metadata: object, findings: Findings) -> None:
    path = f"{_BASE}.metadata"
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        findings.deny(path, "must be an object", "write {labels: {...}, annotations: {...}}")
        return
    for extra in sorted(set(metadata) - _TEMPLATE_METADATA_FIELDS):
        findings.deny(
            f"{path}.{extra}",
            "is not allowed: launcher Pods take only labels and annotations from the template",
            f"remove {extra}",
        )
    labels, annotations = metadata.get("labels"), metadata.get("annotations")
    if isinstance(labels, dict):
        _check_map(labels, f"{path}.labels", PROTECTED_LABELS, is_label=True, findings=findings)
    if isinstance(annotations, dict):
        _check_map(
            annotations,
            f"{path}.annotations",
            PROTECTED_ANNOTATIONS,
            is_label=False,
            findings=findings,
        )


def _check_map(
    entries: Mapping[str, Any],
    path: str,
    protected: frozenset[str],
    *,
    is_label: bool,
    findings: Findings,
) -> None:
    for key, value in entries.items():
        key_path = f"{path}{_names.field_key(key)}"
        check_key = rules.label_key if is_label else rules.annotation_key
        findings.deny_all(key_path, check_key(key), "use [prefix/]name")
        if is_label and isinstance(value, str):
            findings.deny_all(key_path, rules.label_value(value), "use a valid label value")
        if key in protected:
            findings.deny(
                key_path,
                "is written only by the fma controllers (it marks a launcher as bound or "
                "identifies it)",
                "remove it from the template",
            )
        elif key.startswith(DUAL_PODS_PREFIX):
            findings.warn(
                key_path, "is set by the fma controllers; the template's value is replaced"
            )
