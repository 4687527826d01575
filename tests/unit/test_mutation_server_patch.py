"""Direct mode: the server patch must rebuild the user's vLLM container on the provider."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contract import auth
from tests.unit.mutation_support import (
    apply,
    context,
    mutate,
    pod,
    render_go_template,
    server_patch,
    strategic_merge,
    vllm_container,
)

DEV_MODE = {"name": "VLLM_SERVER_DEV_MODE", "value": "1"}
STUB_ENV_NAMES = {
    "PROBES_PORT",
    "SPI_PORT",
    "PROXY_PORT",
    "FMA_SERVING_PORTS",
    *(e["name"] for e in auth.verifier_env(None)),
}
REPLACE = {"$patch": "replace"}


def provider_container(original: dict[str, Any], **ctx: Any) -> dict[str, Any]:
    """What the controller builds: the requester's stub merged with the patch's container
    (`ports` replaced when the patch says so; test_mutation_ports.py checks the same with the
    controller's own builder)."""
    mutated = apply(original, mutate(original, context(**ctx)))
    (stub,) = [c for c in mutated["spec"]["containers"] if c["name"] == "inference-server"]
    (entry,) = server_patch(mutated)["spec"]["containers"]
    merged: dict[str, Any] = strategic_merge(stub, entry)
    ports = entry.get("ports")
    if ports:
        assert ports[0] == REPLACE
        merged["ports"] = ports[1:]
    return merged


def without_stub_leftovers(container: dict[str, Any]) -> dict[str, Any]:
    """The provider container minus what the reference also leaves from the stub: its env."""
    container = copy.deepcopy(container)
    container["env"] = [e for e in container["env"] if e["name"] not in STUB_ENV_NAMES]
    return container


def test_provider_gets_the_original_container_back() -> None:
    original_container = vllm_container(
        env=[{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "t"}}}],
        ports=[{"name": "http", "containerPort": 8000}],
        volumeMounts=[{"name": "cache", "mountPath": "/root/.cache"}],
        resources={"limits": {"nvidia.com/gpu": "2", "memory": "40Gi"}},
        readinessProbe={"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
    )
    provider = provider_container(pod(original_container))
    expected = original_container | {
        "name": "inference-server",
        "args": ["--max-model-len", "4096", "--enable-sleep-mode"],
        "env": [*original_container["env"], DEV_MODE],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 5},
    }
    assert without_stub_leftovers(provider) == expected


def test_entrypoint_image_loses_the_stub_command() -> None:
    container = vllm_container(command=None, args=["--model", "m", "--port", "9000"])
    del container["command"]
    provider = without_stub_leftovers(provider_container(pod(container)))
    assert "command" not in provider
    assert provider["args"] == ["--model", "m", "--port", "9000", "--enable-sleep-mode"]
    assert provider["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": 9000},
        "periodSeconds": 2,
    }
    assert provider["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert "securityContext" not in provider


def test_shell_script_gets_the_flag_inside() -> None:
    container = vllm_container(
        command=["/bin/sh", "-c", "exec vllm serve m --port 8001"], args=None
    )
    provider = provider_container(pod(container))
    assert provider["command"] == [
        "/bin/sh",
        "-c",
        "exec vllm serve m --port 8001 --enable-sleep-mode",
    ]
    assert provider["readinessProbe"]["httpGet"]["port"] == 8001


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--enable-sleep-mode"], ["--enable-sleep-mode"]),
        (["--enable_sleep_mode"], ["--enable_sleep_mode"]),
        (["--no-enable-sleep-mode"], ["--no-enable-sleep-mode", "--enable-sleep-mode"]),
        (["--enable-sleep-mode=false"], ["--enable-sleep-mode=false", "--enable-sleep-mode"]),
    ],
)
def test_sleep_flag_is_added_only_when_off(args: list[str], expected: list[str]) -> None:
    provider = provider_container(pod(vllm_container(args=args)))
    assert provider["args"] == expected


def test_dev_mode_env_is_forced_with_a_warning() -> None:
    container = vllm_container(env=[{"name": "VLLM_SERVER_DEV_MODE", "value": "0"}])
    result = mutate(pod(container))
    assert any("VLLM_SERVER_DEV_MODE" in warning for warning in result.warnings)
    provider = provider_container(pod(container))
    assert [e for e in provider["env"] if e["name"] == "VLLM_SERVER_DEV_MODE"] == [DEV_MODE]


@pytest.mark.parametrize(
    ("probe", "expected", "warned"),
    [
        (
            {"exec": {"command": ["true"]}, "periodSeconds": 3},
            {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 3},
            True,
        ),
        (
            {"httpGet": {"path": "/v1/models", "port": 9999}},
            {"httpGet": {"path": "/v1/models", "port": 8000}},
            True,
        ),
        (
            {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}},
            {"httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"}},
            False,
        ),
    ],
)
def test_readiness_probe_is_http_on_the_vllm_port(
    probe: dict[str, Any], expected: dict[str, Any], warned: bool
) -> None:
    container = vllm_container(readinessProbe=probe)
    result = mutate(pod(container))
    assert any("readinessProbe" in warning for warning in result.warnings) == warned
    assert provider_container(pod(container))["readinessProbe"] == expected


def test_template_braces_are_escaped() -> None:
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    container = vllm_container(args=["--chat-template", template])
    mutated = apply(pod(container), mutate(pod(container)))
    text = mutated["metadata"]["annotations"]["dual-pods.llm-d.ai/server-patch"]
    assert "{{ m" not in text
    assert server_patch(mutated)["spec"]["containers"][0]["args"][1] == template


def test_strings_go_might_misread_are_quoted() -> None:
    container = vllm_container(
        args=["--x", "y", "--y", "1e3", "--z", "0o17", "--w", "on"],
        env=[{"name": "N", "value": "n"}],
    )
    mutated = apply(pod(container), mutate(pod(container)))
    text = render_go_template(mutated["metadata"]["annotations"]["dual-pods.llm-d.ai/server-patch"])
    for scalar in ('"y"', '"1e3"', '"0o17"', '"on"', '"n"'):
        assert f"- {scalar}\n" in text or f"value: {scalar}\n" in text


@pytest.mark.parametrize(
    ("selector", "labels"),
    [
        (
            {"matchLabels": {"app": "chat", "pod-template-hash": "abc"}},
            {"app": None, "pod-template-hash": None},
        ),
        (
            {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a"]},
                    {"key": "x", "operator": "NotIn", "values": ["b"]},
                ]
            },
            {"tier": None},
        ),
        ({"app": "chat"}, {"app": None}),
    ],
)
def test_owner_selector_keys_are_nulled(selector: dict[str, Any], labels: dict[str, None]) -> None:
    original = pod(labels={"app": "chat", "tier": "a", "team": "ml"})
    result = mutate(original, context(owner_selector=selector))
    assert server_patch(apply(original, result))["metadata"] == {"labels": labels}
    assert result.warnings == []


def test_unknown_selector_of_a_controlled_pod_drops_every_label() -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "rs",
        "uid": "1",
        "controller": True,
    }
    original = pod(labels={"app": "chat", "team": "ml"}, ownerReferences=[owner])
    result = mutate(original)
    assert server_patch(apply(original, result))["metadata"] == {
        "labels": {"app": None, "team": None}
    }
    assert "selector is unknown" in result.warnings[0]


def test_pod_without_owner_keeps_its_labels() -> None:
    original = pod(labels={"app": "chat"})
    assert "metadata" not in server_patch(apply(original, mutate(original)))


def test_the_service_account_token_mount_is_left_to_the_provider_admission() -> None:
    token = {
        "name": "kube-api-access-x1y2z",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    models = {"name": "models", "mountPath": "/models"}
    container = provider_container(pod(vllm_container(volumeMounts=[models, token])))
    assert container["volumeMounts"] == [models]
