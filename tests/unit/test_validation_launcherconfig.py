"""LauncherConfig checks: the launcher Pod template must be able to become a Pod."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_support import (
    CONTEXT,
    launcher_config,
    launcher_container,
    modified,
    request,
)
from webhook.validation import Verdict, validate_custom_resource

TEMPLATE = "spec.podTemplate.spec"


def check(obj: dict[str, Any]) -> Verdict:
    return validate_custom_resource(request("LauncherConfig", obj), CONTEXT)


def denial(obj: dict[str, Any]) -> str:
    verdict = check(obj)
    assert not verdict.allowed
    assert verdict.message.startswith('LauncherConfig "x" is invalid: ')
    return verdict.message


def test_valid_launcher_config_is_allowed_without_warnings() -> None:
    assert check(launcher_config()) == Verdict(True)


def test_missing_inference_server_container_is_denied() -> None:
    sidecar = {**launcher_container(), "name": "launcher"}
    message = denial(launcher_config(containers=[sidecar]))
    assert f'{TEMPLATE}.containers: has no container named "inference-server"' in message
    assert 'fix: name the launcher container "inference-server"' in message


def test_inference_server_as_init_container_does_not_count() -> None:
    init = launcher_container()
    main = {**launcher_container(), "name": "main"}
    assert "has no container named" in denial(
        launcher_config(containers=[main], initContainers=[init])
    )


@pytest.mark.parametrize("template", [None, {}, {"metadata": {"labels": {"a": "b"}}}])
def test_missing_template_spec_is_denied(template: dict[str, Any] | None) -> None:
    obj = modified(launcher_config(), "spec.podTemplate", template)
    if template is None:
        del obj["spec"]["podTemplate"]
    assert "spec.podTemplate.spec: is required" in denial(obj)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("containers", [], f"{TEMPLATE}.containers: must be a non-empty list"),
        ("containers", "x", "containers"),
        ("initContainers", {}, f"{TEMPLATE}.initContainers: must be a non-empty list"),
        ("volumes", {}, f"{TEMPLATE}.volumes: must be a list"),
        ("volumes", [{"emptyDir": {}}], f"{TEMPLATE}.volumes[0]: must be an object with a name"),
    ],
)
def test_malformed_lists_are_denied(field: str, value: Any, expected: str) -> None:
    assert expected in denial(launcher_config(**{field: value}))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"image": ""}, "containers[0].image: is required"),
        ({"image": None}, "containers[0].image: is required"),
        ({"command": "python -m x"}, "containers[0].command: must be a list of strings"),
        ({"args": [1]}, "containers[0].args: must be a list of strings"),
        ({"env": [{"value": "x"}]}, "containers[0].env[0]: must be an object with a name"),
        ({"env": [{"name": "1X"}]}, "containers[0].env[0].name"),
        ({"ports": [{"containerPort": 0}]}, "containers[0].ports[0].containerPort"),
        ({"ports": [{"containerPort": "80"}]}, "containers[0].ports[0].containerPort"),
        ({"ports": [{"containerPort": 80, "name": "HTTP"}]}, "containers[0].ports[0].name"),
        (
            {"ports": [{"containerPort": 80, "name": "a"}, {"containerPort": 81, "name": "a"}]},
            "duplicate port name 'a'",
        ),
        ({"resources": {"limits": {"cpu": "lots"}}}, "containers[0].resources.limits[cpu]"),
        (
            {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
            "resources.requests[memory]: must be less than or equal to the limit",
        ),
        ({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "no volume named 'nope'"),
        ({"volumeMounts": [{"name": "dshm"}]}, "volumeMounts[0].mountPath: is required"),
    ],
)
def test_container_problems_are_denied_with_their_path(
    change: dict[str, Any], expected: str
) -> None:
    container = {**launcher_container(), **change}
    container = {k: v for k, v in container.items() if v is not None}
    assert expected in denial(launcher_config(containers=[container]))


def test_container_names_must_be_labels_and_unique() -> None:
    twin = launcher_container()
    assert "duplicate container name 'inference-server'" in denial(
        launcher_config(containers=[launcher_container(), twin])
    )
    bad = {**launcher_container(), "name": "Inference_Server"}
    assert f"{TEMPLATE}.containers[1].name" in denial(
        launcher_config(containers=[launcher_container(), bad])
    )


def test_gpu_request_in_template_is_a_warning() -> None:
    container = launcher_container()
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": "1"}}
    verdict = check(launcher_config(containers=[container]))
    assert verdict.allowed
    assert len(verdict.warnings) == 2
    assert all("the controllers set this to 0" in w for w in verdict.warnings)
    container["resources"] = {"limits": {"nvidia.com/gpu": 0}}
    assert check(launcher_config(containers=[container])) == Verdict(True)


@pytest.mark.parametrize(
    "volumes",
    [
        [],
        [{"name": "dshm", "emptyDir": {}}],
        [{"name": "dshm", "hostPath": {"path": "/dev/shm"}}],
    ],
)
def test_no_memory_backed_shm_is_a_warning(volumes: list[dict[str, Any]]) -> None:
    container = launcher_container()
    if not volumes:
        del container["volumeMounts"]
    verdict = check(launcher_config(containers=[container], volumes=volumes))
    assert verdict.allowed
    assert len(verdict.warnings) == 1
    assert "has no memory-backed /dev/shm" in verdict.warnings[0]


def test_template_metadata_takes_only_labels_and_annotations() -> None:
    obj = modified(launcher_config(), "spec.podTemplate.metadata.name", "fixed")
    assert "spec.podTemplate.metadata.name: is not allowed" in denial(obj)


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("labels", "dual-pods.llm-d.ai/dual"),
        ("labels", "dual-pods.llm-d.ai/launcher-config-name"),
        ("annotations", "dual-pods.llm-d.ai/requester"),
        ("annotations", "dual-pods.llm-d.ai/instance-id"),
    ],
)
def test_template_must_not_carry_controller_owned_keys(field: str, key: str) -> None:
    obj = modified(launcher_config(), f"spec.podTemplate.metadata.{field}", {key: "x"})
    assert f"spec.podTemplate.metadata.{field}[{key}]: is written only by the fma" in denial(obj)


def test_template_may_carry_other_controller_keys_with_a_warning() -> None:
    labels = {"dual-pods.llm-d.ai/sleeping": "true", "app.kubernetes.io/name": "launcher"}
    verdict = check(modified(launcher_config(), "spec.podTemplate.metadata.labels", labels))
    assert verdict.allowed
    assert verdict.warnings == [
        "spec.podTemplate.metadata.labels[dual-pods.llm-d.ai/sleeping]: is set by the fma "
        "controllers; the template's value is replaced"
    ]


def test_template_label_keys_and_values_are_checked() -> None:
    obj = modified(launcher_config(), "spec.podTemplate.metadata.labels", {"a b": "c d"})
    message = denial(obj)
    assert message.count('spec.podTemplate.metadata.labels["a b"]') == 2
