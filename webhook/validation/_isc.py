"""InferenceServerConfig checks beyond the CRD schema.

Everything here is something the reference only discovers at bind time, when the error lands on
a requester's status (or, for routing metadata, deletes the requester: known-gaps E3); checking
at admission tells the author instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from crds.models import InferenceServerConfig
from webhook.validation import _names
from webhook.validation._options import check_options
from webhook.validation._references import check_launcher_config_reference
from webhook.validation._verdict import Findings, ValidationContext

LAUNCHER_PORT: Final = 8001
# Kubernetes' limit on all annotations of one object (`TotalAnnotationSizeLimitB`).
ANNOTATIONS_SIZE_LIMIT: Final = 256 * 1024
# Set per instance by the launcher from the requester's GPUs; a value here is overwritten.
_LAUNCHER_SET_ENV: Final = frozenset({"CUDA_VISIBLE_DEVICES"})
_BASE: Final = "spec.modelServerConfig"


def check_inference_server_config(
    isc: InferenceServerConfig, namespace: str, ctx: ValidationContext, findings: Findings
) -> None:
    """All ISC checks; denials and warnings go to `findings`."""
    config = isc.spec.model_server_config
    check_options(config.options or "", f"{_BASE}.options", findings)
    if config.port == LAUNCHER_PORT:
        findings.deny(
            f"{_BASE}.port",
            f"{LAUNCHER_PORT} is the launcher's own port in the same Pod, so vLLM cannot listen "
            "on it",
            "choose another port, e.g. 8005",
        )
    _check_env(config.env_vars or {}, findings)
    check_routing_labels(config.labels or {}, f"{_BASE}.labels", findings)
    check_routing_annotations(config.annotations or {}, f"{_BASE}.annotations", findings)
    check_launcher_config_reference(
        isc.spec.launcher_config_name, namespace, "spec.launcherConfigName", ctx, findings
    )


def _check_env(env: Mapping[str, str], findings: Findings) -> None:
    for name, value in env.items():
        path = f"{_BASE}.env_vars{_names.field_key(name)}"
        findings.deny_all(
            path, _names.env_var_name(name), "use letters, digits, '_', '-' and '.' only"
        )
        if "\x00" in value:
            findings.deny(path, "value contains a NUL character", "remove it")
        if name in _LAUNCHER_SET_ENV:
            findings.warn(path, f"{name} is set by the launcher from the assigned GPUs")


def check_routing_labels(labels: Mapping[str, str], path: str, findings: Findings) -> None:
    """Routing labels go onto launcher Pods: valid keys outside reserved prefixes, valid values."""
    for key, value in labels.items():
        key_path = f"{path}{_names.field_key(key)}"
        _check_routing_key(key, _names.label_key(key), key_path, findings)
        findings.deny_all(
            key_path,
            [f"value {value!r} {p}" for p in _names.label_value(value)],
            "use at most 63 characters: alphanumerics, '-', '_', '.'",
        )


def check_routing_annotations(
    annotations: Mapping[str, str], path: str, findings: Findings
) -> None:
    """Routing annotations: valid keys outside reserved prefixes, within the size limit."""
    for key in annotations:
        _check_routing_key(
            key, _names.annotation_key(key), f"{path}{_names.field_key(key)}", findings
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_SIZE_LIMIT:
        findings.deny(
            path,
            f"total size {size} bytes exceeds Kubernetes' {ANNOTATIONS_SIZE_LIMIT}-byte limit",
            "keep routing annotations small; put bulky data in a ConfigMap",
        )


def _check_routing_key(key: str, problems: list[str], path: str, findings: Findings) -> None:
    findings.deny_all(
        path,
        [f"key {key!r} is not a valid qualified name: {p}" for p in problems],
        "use [prefix/]name, e.g. example.com/model",
    )
    prefix = _names.reserved_prefix(key)
    if prefix is not None:
        findings.deny(
            path,
            f"key {key!r} uses the reserved prefix {prefix}",
            "use a prefix of your own, e.g. example.com/",
        )
