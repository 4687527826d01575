"""Helpers shared by the mutation tests: Pod builders, patch application, and small stand-ins
for the Go side (template rendering, strategic merge) that check what the controller will see."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import jsonpatch
import yaml

from webhook.mutation import MutationContext, MutationResult, MutationSettings, mutate_pod

SETTINGS = MutationSettings(requester_image="ghcr.io/llm-d/fma:test", webhook_namespace="fma")
ENABLED = {"fma.llm-d.ai/inject": "enabled"}


def context(**overrides: Any) -> MutationContext:
    """An opted-in namespace `team` with fixed settings, unless overridden."""
    values: dict[str, Any] = {
        "namespace": "team",
        "namespace_labels": ENABLED,
        "settings": SETTINGS,
    }
    return MutationContext(**(values | overrides))


def vllm_container(**overrides: Any) -> dict[str, Any]:
    """A typical vLLM container: `vllm serve` on one GPU."""
    container: dict[str, Any] = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.10.0",
        "command": ["vllm", "serve", "Qwen/Qwen3-0.6B"],
        "args": ["--max-model-len", "4096"],
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return container | overrides


def pod(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chat", "namespace": "team"} | metadata,
        "spec": {"containers": list(containers) or [vllm_container()]},
    }


def apply(original: Mapping[str, Any], result: MutationResult) -> dict[str, Any]:
    """The Pod the apiserver stores: `result.patch` applied to a copy of `original`."""
    patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(original)), result.patch)
    return patched


def mutate(original: Mapping[str, Any], ctx: MutationContext | None = None) -> MutationResult:
    return mutate_pod(original, ctx or context())


_ESCAPE = '{{"{{"}}'


def render_go_template(text: str) -> str:
    """Render a template that may contain only the `{{"{{"}}` action, as Go would.

    Any other action fails: the webhook's patches must use no template data.
    """
    out: list[str] = []
    position = 0
    for match in re.finditer(r"\{\{", text):
        if match.start() < position:
            continue
        if not text.startswith(_ESCAPE, match.start()):
            raise AssertionError(f"unexpected template action at {match.start()}: {text[:200]!r}")
        out.append(text[position : match.start()] + "{{")
        position = match.start() + len(_ESCAPE)
    out.append(text[position:])
    return "".join(out)


def server_patch(result_pod: Mapping[str, Any]) -> dict[str, Any]:
    """The direct-mode patch of a mutated Pod, rendered and parsed."""
    text = result_pod["metadata"]["annotations"]["dual-pods.llm-d.ai/server-patch"]
    document: dict[str, Any] = yaml.safe_load(render_go_template(text))
    return document


_MERGE_KEYS = {"env": "name", "ports": "containerPort", "volumeMounts": "mountPath"}


def strategic_merge(base: Any, patch: Any, *, field: str | None = None) -> Any:
    """The strategic merge of a container patch onto a container, for the fields stubs and
    containers use: objects merge recursively, null deletes, `env`/`ports`/`volumeMounts`
    merge by key, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, field=key)
            else:
                merged[key] = value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            same = [i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)]
            if same:
                merged_list[same[0]] = strategic_merge(merged_list[same[0]], item)
            else:
                merged_list.append(item)
        return merged_list
    return copy.deepcopy(patch)
