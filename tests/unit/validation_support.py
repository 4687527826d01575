"""Helpers shared by the validation tests: AdmissionRequests and valid custom resources."""

from __future__ import annotations

import copy
from typing import Any

from webhook.admission import AdmissionRequest
from webhook.validation import ValidationContext, ValidationSettings

CONTROLLER = "system:serviceaccount:fma-system:fma-fma-controllers"
NAMESPACE = "team"
SETTINGS = ValidationSettings(controller_usernames=frozenset({CONTROLLER}))
CONTEXT = ValidationContext(settings=SETTINGS, launcher_configs={(NAMESPACE, "launcher")})

_RESOURCES = {
    "InferenceServerConfig": "inferenceserverconfigs",
    "LauncherConfig": "launcherconfigs",
    "LauncherPopulationPolicy": "launcherpopulationpolicies",
    "Pod": "pods",
}


def request(
    kind: str,
    obj: Any,
    *,
    operation: str = "CREATE",
    old: Any = None,
    user: str = "alice",
    name: str = "x",
    uid: str = "uid-1",
    sub_resource: str = "",
) -> AdmissionRequest:
    """An AdmissionRequest as the apiserver sends it for `obj`."""
    group, version = ("", "v1") if kind == "Pod" else ("fma.llm-d.ai", "v1alpha1")
    return AdmissionRequest.model_validate(
        {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": _RESOURCES.get(kind, "x")},
            "subResource": sub_resource,
            "name": name,
            "namespace": NAMESPACE,
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
        }
    )


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "fma.llm-d.ai/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": NAMESPACE},
        "spec": spec,
    }


def isc(**model_server_config: Any) -> dict[str, Any]:
    """A valid ISC naming the existing LauncherConfig `launcher`; keyword arguments override
    fields of `modelServerConfig` (None removes one)."""
    config: dict[str, Any] = {
        "port": 8005,
        "options": "--model /models/tiny --enable-sleep-mode",
        "env_vars": {"VLLM_LOGGING_LEVEL": "DEBUG"},
        "labels": {"llm-d.ai/model": "tiny"},
        "annotations": {"example.com/owner": "team"},
    }
    config.update(model_server_config)
    config = {k: v for k, v in config.items() if v is not None}
    return _resource(
        "InferenceServerConfig", {"modelServerConfig": config, "launcherConfigName": "launcher"}
    )


def launcher_container() -> dict[str, Any]:
    return {
        "name": "inference-server",
        "image": "ghcr.io/llm-d/fma:test",
        "env": [{"name": "HF_HOME", "value": "/cache"}],
        "ports": [{"name": "launcher", "containerPort": 8001}],
        "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }


def launcher_config(**template_spec: Any) -> dict[str, Any]:
    """A valid LC with a memory-backed /dev/shm; keyword arguments override template spec
    fields."""
    spec: dict[str, Any] = {
        "containers": [launcher_container()],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
    }
    spec.update(template_spec)
    template = {"metadata": {"labels": {"app": "launcher"}}, "spec": spec}
    return _resource("LauncherConfig", {"podTemplate": template, "maxInstances": 4})


def lpp(**enhanced_node_selector: Any) -> dict[str, Any]:
    """A valid LPP keeping one `launcher` per GPU node."""
    selector: dict[str, Any] = {
        "labelSelector": {
            "matchLabels": {"nvidia.com/gpu.present": "true"},
            "matchExpressions": [{"key": "pool", "operator": "In", "values": ["a", "b"]}],
        },
        "allocatableResources": {"nvidia.com/gpu": {"min": 1, "max": "8"}},
    }
    selector.update(enhanced_node_selector)
    spec = {
        "enhancedNodeSelector": selector,
        "countForLauncher": [{"launcherConfigName": "launcher", "launcherCount": 1}],
    }
    return _resource("LauncherPopulationPolicy", spec)


def modified(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the dotted `path` set (`[i]` for list items)."""
    result = copy.deepcopy(obj)
    parts = path.replace("[", ".[").split(".")
    target: Any = result
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value
    return result
