"""Launcher mode: an InferenceServerConfig equivalent to the Pod's vLLM, or the one it names."""

from __future__ import annotations

from typing import Any

import pytest

from crds.models import InferenceServerConfig
from tests.unit.mutation_support import apply, context, mutate, pod, vllm_container
from webhook.mutation import MutationResult

ISC_KEY = "dual-pods.llm-d.ai/inference-server-config"


def isc(
    name: str, options: str, *, port: int = 8000, env: dict[str, str] | None = None, **meta: Any
) -> InferenceServerConfig:
    config: dict[str, Any] = {"port": port, "options": options}
    if env is not None:
        config["env_vars"] = env
    return InferenceServerConfig.model_validate(
        {
            "metadata": {"name": name} | meta,
            "spec": {"modelServerConfig": config, "launcherConfigName": "lc"},
        }
    )


def chosen(result: MutationResult, original: dict[str, Any]) -> str | None:
    annotations = apply(original, result)["metadata"]["annotations"]
    assert ("dual-pods.llm-d.ai/server-patch" in annotations) == (result.mode == "direct")
    value: str | None = annotations.get(ISC_KEY)
    return value


@pytest.mark.parametrize(
    ("command", "args", "options"),
    [
        pytest.param(
            ["vllm", "serve", "m"], ["--dtype", "half"], "--model m --dtype half", id="model"
        ),
        pytest.param(["vllm", "serve"], ["--model=m", "--dtype=half"], "m --dtype half", id="eq"),
        pytest.param(
            ["vllm", "serve", "m"],
            ["--dtype", "half", "--max-model-len", "4096"],
            "m --max_model_len 4096 --dtype half --enable-sleep-mode",
            id="order-underscore-sleep",
        ),
        pytest.param(
            ["vllm", "serve", "m"], ["-tp", "2"], "m --tensor-parallel-size 2", id="alias"
        ),
        pytest.param(["vllm", "serve", "m", "--port", "8000"], None, "m", id="explicit-port"),
    ],
)
def test_equivalent_isc_selects_launcher_mode(
    command: list[str], args: list[str] | None, options: str
) -> None:
    original = pod(vllm_container(command=command, args=args))
    result = mutate(original, context(iscs=[isc("match", options)]))
    assert result.mode == "launcher"
    assert chosen(result, original) == "match"
    assert result.warnings == []


@pytest.mark.parametrize(
    ("options", "port", "env"),
    [
        ("other --dtype half", 8000, None),
        ("m --dtype float", 8000, None),
        ("m --dtype half", 9000, None),
        ("m --dtype half", 8000, {"A": "1"}),
        ("m --dtype half --dtype half", 8000, None),
        ("m --dtype half -- x", 8000, None),
    ],
)
def test_different_isc_keeps_direct_mode(
    options: str, port: int, env: dict[str, str] | None
) -> None:
    original = pod(vllm_container(command=["vllm", "serve", "m", "--dtype", "half"], args=None))
    result = mutate(original, context(iscs=[isc("other", options, port=port, env=env)]))
    assert result.mode == "direct"


def test_env_must_match_literally_except_dev_mode() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "VLLM_SERVER_DEV_MODE", "value": "1"}]
    original = pod(vllm_container(command=["vllm", "serve", "m"], args=None, env=env))
    assert mutate(original, context(iscs=[isc("same", "m", env={"A": "1"})])).mode == "launcher"
    secret = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    hidden = pod(vllm_container(command=["vllm", "serve", "m"], args=None, env=secret))
    assert mutate(hidden, context(iscs=[isc("same", "m", env={"A": "1"})])).mode == "direct"
    expanded = pod(vllm_container(command=["vllm", "serve", "$(MODEL)"], args=None))
    assert mutate(expanded, context(iscs=[isc("lit", "$(MODEL)")])).mode == "direct"


def test_several_matches_choose_the_first_name_and_warn() -> None:
    original = pod(vllm_container(command=["vllm", "serve", "m"], args=None))
    iscs = [isc("zeta", "m"), isc("alpha", "--model m"), isc("mid", "m --x")]
    result = mutate(original, context(iscs=iscs))
    assert chosen(result, original) == "alpha"
    assert len(result.warnings) == 1
    assert "alpha, zeta" in result.warnings[0]


def test_iscs_of_other_namespaces_are_ignored() -> None:
    original = pod(vllm_container(command=["vllm", "serve", "m"], args=None))
    result = mutate(original, context(iscs=[isc("elsewhere", "m", namespace="other")]))
    assert result.mode == "direct"


def test_explicit_choice_wins_and_warns_when_it_differs_or_is_missing() -> None:
    container = vllm_container(command=["vllm", "serve", "m"], args=None)
    named = pod(container, annotations={"fma.llm-d.ai/inference-server-config": "big"})
    result = mutate(named, context(iscs=[isc("big", "other-model", port=9000), isc("m", "m")]))
    assert chosen(result, named) == "big"
    assert "port 9000 vs the Pod's 8000" in result.warnings[0]
    assert "model 'other-model'" in result.warnings[0]
    missing = mutate(named, context())
    assert chosen(missing, named) == "big"
    assert "does not exist" in missing.warnings[0]


def test_dual_pods_annotation_counts_as_a_choice() -> None:
    original = pod(annotations={ISC_KEY: "chosen"})
    assert chosen(mutate(original), original) == "chosen"


@pytest.mark.parametrize(
    ("annotations", "text"),
    [
        ({"fma.llm-d.ai/inference-server-config": ""}, "is empty"),
        ({"fma.llm-d.ai/inference-server-config": "a", ISC_KEY: "b"}, "name different"),
    ],
)
def test_conflicting_choices_are_refused(annotations: dict[str, str], text: str) -> None:
    result = mutate(pod(annotations=annotations))
    assert result.skip_code == "conflict"
    assert result.skipped is not None and text in result.skipped
