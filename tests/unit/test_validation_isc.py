"""InferenceServerConfig checks: what the CRD schema cannot say, denied with field and fix."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_support import CONTEXT, NAMESPACE, SETTINGS, isc, modified, request
from webhook.validation import ValidationContext, Verdict, validate_custom_resource


def check(obj: dict[str, Any]) -> Verdict:
    return validate_custom_resource(request("InferenceServerConfig", obj), CONTEXT)


def test_valid_isc_is_allowed_without_warnings() -> None:
    assert check(isc()) == Verdict(True)


@pytest.mark.parametrize(
    "options",
    ["--model m --port 8000", "--model m --port=8000", "--port 1 --enable-sleep-mode"],
)
def test_port_in_options_is_denied(options: str) -> None:
    verdict = check(isc(options=options))
    assert not verdict.allowed
    assert verdict.code == 422
    assert 'InferenceServerConfig "x" is invalid' in verdict.message
    assert "spec.modelServerConfig.options: must not set --port" in verdict.message
    assert "spec.modelServerConfig.port" in verdict.message  # the fix names the right field


def test_similar_options_are_not_port() -> None:
    assert check(isc(options="--model m --portal x --enable-sleep-mode")).allowed


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ('--model m --additional-config \'{"k": 1}', "option --additional-config"),
        ("--model m --chat-template='x", "option --chat-template"),
        ('"--model m', "before any option"),
        ("--served-model-name a\\", "backslash"),
    ],
)
def test_unsplittable_options_are_denied_naming_the_option(options: str, named: str) -> None:
    verdict = check(isc(options=options))
    assert not verdict.allowed
    assert "spec.modelServerConfig.options" in verdict.message
    assert named in verdict.message


def test_quoted_options_are_allowed_with_a_portability_warning() -> None:
    verdict = check(isc(options="--enable-sleep-mode --additional-config '{\"k\": 1}'"))
    assert verdict.allowed
    assert any("reference v0.6 launcher" in w for w in verdict.warnings)


def test_missing_sleep_mode_is_a_warning() -> None:
    verdict = check(isc(options="--model m"))
    assert verdict.allowed
    assert any("--enable-sleep-mode" in w for w in verdict.warnings)


def test_launcher_port_is_denied() -> None:
    verdict = check(isc(port=8001))
    assert "spec.modelServerConfig.port: 8001 is the launcher's own port" in verdict.message


@pytest.mark.parametrize(
    "key",
    [
        "dual-pods.llm-d.ai/dual",
        "kubernetes.io/hostname",
        "k8s.io/x",
        "Kubernetes.io/x",
    ],
)
@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_reserved_prefixes_are_denied(field: str, key: str) -> None:
    verdict = check(isc(**{field: {key: "v"}}))
    assert not verdict.allowed
    assert f"spec.modelServerConfig.{field}[{key}]" in verdict.message
    assert "reserved prefix" in verdict.message


@pytest.mark.parametrize(
    "key",
    ["a/b/c", "/name", "-bad", "UPPER.example.com/x", "x" * 64, "example.com/", "a b"],
)
def test_invalid_label_keys_are_denied(key: str) -> None:
    verdict = check(isc(labels={key: "v"}))
    assert not verdict.allowed
    assert "is not a valid qualified name" in verdict.message


def test_annotation_keys_are_checked_lower_cased_like_the_apiserver() -> None:
    assert check(isc(annotations={"Example.COM/Owner": "x"})).allowed
    assert not check(isc(labels={"Example.COM/Owner": "x"})).allowed


@pytest.mark.parametrize("value", ["has space", "-x", "x" * 64, "ü"])
def test_invalid_label_values_are_denied(value: str) -> None:
    verdict = check(isc(labels={"example.com/a": value}))
    assert not verdict.allowed
    assert "spec.modelServerConfig.labels[example.com/a]: value" in verdict.message


def test_annotation_values_may_be_anything_within_the_size_limit() -> None:
    assert check(isc(annotations={"example.com/a": "any thing: {} \n"})).allowed
    verdict = check(isc(annotations={"example.com/a": "x" * (256 * 1024)}))
    assert "exceeds Kubernetes' 262144-byte limit" in verdict.message


@pytest.mark.parametrize("name", ["1ABC", "A=B", "", "..x", "a b"])
def test_invalid_env_names_are_denied(name: str) -> None:
    verdict = check(isc(env_vars={name: "v"}))
    assert not verdict.allowed
    assert "spec.modelServerConfig.env_vars[" in verdict.message


@pytest.mark.parametrize("name", ["my.env-name", "MY_ENV.NAME", "_x", "-x", ".x"])
def test_kubernetes_env_names_are_allowed(name: str) -> None:
    assert check(isc(env_vars={name: "v"})).allowed


def test_env_value_with_nul_is_denied_and_cuda_devices_warned() -> None:
    assert not check(isc(env_vars={"A": "a\x00b"})).allowed
    verdict = check(isc(env_vars={"CUDA_VISIBLE_DEVICES": "0"}))
    assert verdict.allowed
    assert verdict.warnings == [
        "spec.modelServerConfig.env_vars[CUDA_VISIBLE_DEVICES]: CUDA_VISIBLE_DEVICES is set by "
        "the launcher from the assigned GPUs"
    ]


def test_missing_launcher_config_is_a_warning_not_a_denial() -> None:
    obj = modified(isc(), "spec.launcherConfigName", "later")
    verdict = check(obj)
    assert verdict.allowed
    assert verdict.warnings == [
        f'spec.launcherConfigName: LauncherConfig "later" does not exist in namespace '
        f'"{NAMESPACE}" (yet); nothing is launched for this reference until it is created'
    ]


def test_unknown_launcher_configs_skip_the_reference_check() -> None:
    obj = modified(isc(), "spec.launcherConfigName", "later")
    unsynced = ValidationContext(settings=SETTINGS, launcher_configs=None)
    assert validate_custom_resource(request("InferenceServerConfig", obj), unsynced) == Verdict(
        True
    )


@pytest.mark.parametrize("name", ["", "Bad_Name", "a" * 254])
def test_impossible_launcher_config_names_are_denied(name: str) -> None:
    verdict = check(modified(isc(), "spec.launcherConfigName", name))
    assert not verdict.allowed
    assert "spec.launcherConfigName" in verdict.message


def test_schema_errors_are_denied_with_their_path() -> None:
    verdict = check(modified(isc(), "spec.modelServerConfig.port", "8000"))
    assert not verdict.allowed
    assert "spec.modelServerConfig.port: Input should be a valid integer" in verdict.message
    assert "kubectl explain inferenceserverconfig.spec" in verdict.message


def test_every_problem_is_reported_at_once() -> None:
    verdict = check(isc(port=8001, options="--port 1", labels={"k8s.io/a": "-"}))
    assert verdict.message.count("(fix: ") == 4


def test_recommended_kubernetes_labels_are_allowed_as_routing_labels() -> None:
    assert check(isc(labels={"app.kubernetes.io/name": "chat"})).allowed
