"""InferenceServerConfig checks beyond the CRD schema.

Everything here is something the reference only discovers at bind time, when the error lands on
a requester's status (or, for routing metadata, deletes the requester: reference-differences E3);
checking at admission tells the author instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from contract import rules
from contract.launcher import LAUNCHER_PORT
from crds.models import InferenceServerConfig
from webhook.validation import _names
from webhook.validation._options import check_options
from webhook.validation._references import check_launcher_config_reference
from webhook.validation._verdict import Findings, ValidationContext

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
    check_routing_metadata(config.labels or {}, config.annotations or {}, findings)
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


def check_routing_metadata(
    labels: Mapping[str, str], annotations: Mapping[str, str], findings: Findings
) -> None:
    """Routing labels and annotations go onto launcher Pods. The decision is
    `contract.rules.routing_problems`, the one the controller makes at bind time, so what is
    admitted here binds there; plus Kubernetes' size limit on annotations."""
    for problem in rules.routing_problems(labels, annotations):
        field = "labels" if problem.kind == "label" else "annotations"
        path = f"{_BASE}.{field}{_names.field_key(problem.key)}"
        if problem.what == "key":
            findings.deny_all(
                path,
                [
                    f"key {problem.key!r} is not a valid qualified name: {p}"
                    for p in problem.details
                ],
                "use [prefix/]name, e.g. example.com/model",
            )
        elif problem.what == "reserved":
            findings.deny(
                path,
                f"key {problem.key!r} uses the reserved prefix {problem.details[0]}",
                "use a prefix of your own, e.g. example.com/",
            )
        else:
            findings.deny_all(
                path,
                [f"value {problem.value!r} {p}" for p in problem.details],
                "use at most 63 characters: alphanumerics, '-', '_', '.'",
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_SIZE_LIMIT:
        findings.deny(
            f"{_BASE}.annotations",
            f"total size {size} bytes exceeds Kubernetes' {ANNOTATIONS_SIZE_LIMIT}-byte limit",
            "keep routing annotations small; put bulky data in a ConfigMap",
        )
