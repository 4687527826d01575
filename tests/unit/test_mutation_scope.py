"""Which Pods `mutate_pod` rewrites, and the reasons it gives for those it leaves alone."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.mutation_support import apply, context, mutate, pod, vllm_container
from webhook.mutation import MutationResult, mutate_pod


def assert_skipped(result: MutationResult, code: str, text: str, *, warned: bool) -> None:
    assert result.patch == []
    assert result.mode is None
    assert result.skip_code == code
    assert result.skipped is not None and text in result.skipped
    assert bool(result.warnings) == warned
    if warned:
        assert result.skipped in result.warnings[-1]


@pytest.mark.parametrize(
    ("namespace", "code"),
    [
        ("kube-system", "system_namespace"),
        ("kube-public", "system_namespace"),
        ("fma", "own_namespace"),
    ],
)
def test_system_and_own_namespaces_are_never_touched(namespace: str, code: str) -> None:
    result = mutate(pod(labels={"fma.llm-d.ai/inject": "true"}), context(namespace=namespace))
    assert_skipped(result, code, namespace, warned=False)


def test_opt_in_by_namespace_or_pod_label_and_opt_out() -> None:
    plain = pod()
    assert mutate(plain).mode == "direct"
    assert_skipped(
        mutate(plain, context(namespace_labels={})), "not_opted_in", "not opted in", warned=False
    )
    opted_in = pod(labels={"fma.llm-d.ai/inject": "true"})
    assert mutate(opted_in, context(namespace_labels={})).mode == "direct"
    opted_out = pod(labels={"fma.llm-d.ai/inject": "false"})
    assert_skipped(mutate(opted_out), "opted_out", "opted out", warned=False)
    odd = pod(labels={"fma.llm-d.ai/inject": "yes"})
    assert_skipped(mutate(odd), "malformed", '"true" or "false"', warned=True)
    assert_skipped(
        mutate(plain, context(namespace_labels={"fma.llm-d.ai/inject": "true"})),
        "not_opted_in",
        "enabled",
        warned=False,
    )


def test_second_invocation_is_a_no_op() -> None:
    original = pod()
    mutated = apply(original, mutate(original))
    assert_skipped(mutate(mutated), "already_mutated", "already mutated", warned=False)


@pytest.mark.parametrize(
    ("annotations", "labels", "code"),
    [
        ({"dual-pods.llm-d.ai/requester": "uid name"}, {}, "provider"),
        ({}, {"dual-pods.llm-d.ai/launcher-config-name": "lc"}, "provider"),
        ({"dual-pods.llm-d.ai/server-patch": "spec: {}"}, {}, "already_requester"),
    ],
)
def test_fma_pods_are_left_alone(
    annotations: dict[str, str], labels: dict[str, str], code: str
) -> None:
    result = mutate(pod(annotations=annotations, labels=labels))
    assert result.skip_code == code
    assert not result.warnings


@pytest.mark.parametrize(
    ("containers", "code", "text", "warned"),
    [
        ([{"name": "web", "image": "nginx"}], "not_vllm", "no container runs", False),
        (
            [vllm_container(), vllm_container(name="second")],
            "several_vllm",
            "'vllm', 'second'",
            True,
        ),
        (
            [vllm_container(command=["sh", "-c", "vllm serve m | tee log"], args=None)],
            "unparseable",
            "spec.containers[0] runs vLLM, but the shell script uses '|'",
            True,
        ),
        ([vllm_container(resources={})], "no_gpu", "asks for no nvidia.com/gpu", True),
        (
            [vllm_container(resources={"limits": {"nvidia.com/gpu": "0"}})],
            "no_gpu",
            "spec.containers[0]",
            True,
        ),
        (
            [vllm_container(resources={"limits": {"nvidia.com/gpu": "1.5"}})],
            "malformed",
            "whole number",
            True,
        ),
        (
            [vllm_container(), {"name": "inference-server", "image": "x"}],
            "conflict",
            "spec.containers[1] is already named inference-server",
            True,
        ),
        (
            [vllm_container(command="vllm serve m")],
            "malformed",
            "spec.containers[0].command is a str, not a list",
            True,
        ),
    ],
)
def test_containers_it_cannot_rewrite(
    containers: list[dict[str, Any]], code: str, text: str, warned: bool
) -> None:
    assert_skipped(mutate(pod(*containers)), code, text, warned=warned)


def test_gpu_request_alone_counts() -> None:
    container = vllm_container(resources={"requests": {"nvidia.com/gpu": 2}})
    result = mutate(pod(container))
    stub = result.patch[-1]["value"]
    assert stub["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert stub["resources"]["requests"]["nvidia.com/gpu"] == 2


def test_host_network_is_refused() -> None:
    original = pod()
    original["spec"]["hostNetwork"] = True
    assert_skipped(mutate(original), "conflict", "hostNetwork", warned=True)


def test_oversized_annotations_are_refused() -> None:
    container = vllm_container(env=[{"name": "BIG", "value": "x" * 200_000}])
    assert_skipped(mutate(pod(container)), "too_large", "256 KiB", warned=True)


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"metadata": []},
        {"metadata": {"labels": {"a": 1}}},
        {"metadata": {}, "spec": {"containers": {}}},
        {"metadata": {}, "spec": {"containers": ["vllm"]}},
    ],
)
def test_malformed_pods_are_skipped_with_the_field(broken: Any) -> None:
    result = mutate_pod(broken, context())
    assert result.skip_code == "malformed"
    assert result.patch == []
    assert result.warnings


def test_internal_errors_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("webhook.mutation._mutate.build_requester_container", explode)
    result = mutate(pod())
    assert result.skip_code == "internal_error"
    assert result.skipped is not None and "boom" in result.skipped
    assert result.patch == []


def test_input_is_not_modified() -> None:
    original = pod(labels={"app": "x"})
    snapshot = repr(original)
    mutate(original)
    assert repr(original) == snapshot


@pytest.mark.parametrize(
    ("metadata", "paths"),
    [
        (None, ["/metadata"]),
        ({"name": "p"}, ["/metadata/annotations"]),
        (
            {"annotations": {"a/b~c": "kept"}},
            [
                "/metadata/annotations/fma.llm-d.ai~1mutated",
                "/metadata/annotations/fma.llm-d.ai~1original-container",
                "/metadata/annotations/dual-pods.llm-d.ai~1server-patch",
            ],
        ),
    ],
)
def test_annotation_operations_fit_the_metadata(
    metadata: dict[str, Any] | None, paths: list[str]
) -> None:
    original = pod()
    original["metadata"] = metadata
    result = mutate(original)
    assert [op["path"] for op in result.patch[:-1]] == paths
    mutated = apply(original, result)
    annotations = mutated["metadata"]["annotations"]
    assert annotations["fma.llm-d.ai/mutated"] == "v1"
    if metadata and "annotations" in metadata:
        assert annotations["a/b~c"] == "kept"


def test_public_names() -> None:
    """The package's surface; everything else lives in private modules."""
    import webhook.mutation

    assert set(webhook.mutation.__all__) == {
        "MUTATED_VALUE",
        "SYSTEM_NAMESPACES",
        "Mode",
        "MutationContext",
        "MutationResult",
        "MutationSettings",
        "SkipCode",
        "default_requester_image",
        "mutate_pod",
    }
