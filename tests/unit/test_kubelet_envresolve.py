"""Container environment resolution, as the kubelet's makeEnvironmentVariables does it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localcluster.kubelet.envresolve import (
    EnvError,
    PodRuntime,
    config_map_data,
    downward_defaults,
    format_map,
    process_env,
    referenced_objects,
    resolve_env,
    secret_data,
)
from localcluster.kubelet.podspec import parse_pod

RUNTIME = PodRuntime(pod_ip="127.1.1.5", host_ip="127.1.1.1", node_allocatable={"cpu": "8"})


def _pod(container: dict[str, Any]) -> Any:
    container = {"name": "c", "image": "img", **container}
    return parse_pod(
        {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": 'say "hi"'},
            },
            "spec": {"nodeName": "node-1", "serviceAccountName": "sa", "containers": [container]},
        }
    )


def _resolve(container: dict[str, Any], fetched: Any = None) -> dict[str, str]:
    pod = _pod(container)
    return resolve_env(pod, pod.containers[0], RUNTIME, fetched or {})


def test_values_expand_against_earlier_variables_only() -> None:
    env = _resolve(
        {
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-$(C)"},
                {"name": "C", "value": "c"},
                {"name": "EMPTY"},
                {"name": "ESCAPED", "value": "$$(A)"},
            ]
        }
    )
    assert env == {"A": "a", "B": "a-$(C)", "C": "c", "EMPTY": "", "ESCAPED": "$(A)"}


def test_field_refs() -> None:
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "APP": "metadata.labels['app']",
        "MISSING": "metadata.labels['nope']",
        "NOTE": "metadata.annotations['note']",
        "LABELS": "metadata.labels",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "IP": "status.podIP",
        "HOST": "status.hostIP",
    }
    env = _resolve(
        {
            "env": [
                {"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()
            ]
        }
    )
    assert env == {
        "NAME": "p",
        "NS": "ns",
        "UID": "u-1",
        "APP": "web",
        "MISSING": "",
        "NOTE": 'say "hi"',
        "LABELS": 'app="web"\ntier="front"',
        "NODE": "node-1",
        "SA": "sa",
        "IP": "127.1.1.5",
        "HOST": "127.1.1.1",
    }


def test_unsupported_field_path_is_an_error() -> None:
    with pytest.raises(EnvError, match=r"unsupported fieldPath: spec\.hostname"):
        _resolve(
            {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]}
        )


def _key_ref(kind: str, name: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": f"V_{key.upper()}", "valueFrom": {kind: ref}}


def test_config_map_and_secret_key_refs_honour_optional() -> None:
    fetched = {
        ("ConfigMap", "cm"): {"color": "blue"},
        ("Secret", "s"): {"token": "t0k"},
        ("ConfigMap", "gone"): None,
    }
    container = {
        "env": [
            _key_ref("configMapKeyRef", "cm", "color"),
            _key_ref("secretKeyRef", "s", "token"),
            _key_ref("configMapKeyRef", "cm", "size", optional=True),
            _key_ref("configMapKeyRef", "gone", "any", optional=True),
        ]
    }
    assert _resolve(container, fetched) == {"V_COLOR": "blue", "V_TOKEN": "t0k"}
    pod = _pod(container)
    assert referenced_objects(pod.containers[0]) == {
        ("ConfigMap", "cm"),
        ("Secret", "s"),
        ("ConfigMap", "gone"),
    }


def test_missing_required_references_are_errors_with_the_kubelets_message() -> None:
    with pytest.raises(EnvError, match='configmaps "gone" not found'):
        _resolve({"env": [_key_ref("configMapKeyRef", "gone", "k")]}, {("ConfigMap", "gone"): None})
    with pytest.raises(EnvError, match=r"couldn't find key size in ConfigMap ns/cm$"):
        _resolve({"env": [_key_ref("configMapKeyRef", "cm", "size")]}, {("ConfigMap", "cm"): {}})
    with pytest.raises(EnvError, match='secrets "s" not found'):
        _resolve({"envFrom": [{"secretRef": {"name": "s"}}]}, {("Secret", "s"): None})


def test_env_from_with_prefix_skips_invalid_names_and_env_wins() -> None:
    fetched = {("ConfigMap", "cm"): {"A": "1", "B": "2", "bad key": "x"}, ("Secret", "s"): None}
    container = {
        "envFrom": [
            {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
            {"secretRef": {"name": "s", "optional": True}},
        ],
        "env": [{"name": "CM_A", "value": "override $(CM_B)"}],
    }
    assert _resolve(container, fetched) == {"CM_A": "override 2", "CM_B": "2"}


def test_resource_field_refs_default_limits_to_node_allocatable() -> None:
    container = {
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m"}},
        "env": [
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        ],
    }
    assert _resolve(container) == {"MEM_MI": "1024", "CPU": "8", "REQ_M": "250", "REQ_CPU": "1"}


def test_object_data_helpers() -> None:
    assert config_map_data({"data": {"a": "1"}, "binaryData": {"b": "AA=="}}) == {"a": "1"}
    assert secret_data({"data": {"t": base64.b64encode(b"v").decode()}}) == {"t": "v"}
    assert format_map({"b": "2", "a": 'x"y'}) == 'a="x\\"y"\nb="2"'


def test_process_env_layers() -> None:
    pod = _pod({})
    env = process_env(
        host_environ={"HOME": "/root", "PATH": "/usr/bin", "SECRET": "no"},
        keep=["HOME", "LANG"],
        image_env={"IMG": "1", "SHARED": "image"},
        image_path=["/venv/bin"],
        downward=downward_defaults(pod, RUNTIME),
        device_env={"NVIDIA_VISIBLE_DEVICES": "GPU-1"},
        container_env={"SHARED": "container", "POD_IP": "from-spec"},
    )
    assert env["HOME"] == "/root"
    assert "SECRET" not in env
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["SHARED"] == "container"
    assert env["POD_IP"] == "from-spec"
    assert env["POD_NAME"] == "p"
    assert env["NODE_NAME"] == "node-1"
    assert env["HOSTNAME"] == "p"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-1"
