"""The direct-mode provider Pod and its nominal hash (contracts §4.1).

The provider is the requester's de-individualized Pod with the user's server patch applied.
The `nominal` hash over the patched JSON, the GPU indices and the node is how a sleeping
provider is found again for the same request, so the base Pod is serialized the Go way
(`creationTimestamp: null`, `status: {}`, canonical quantities), the patch is applied with the
reference's strategic-merge rules, and the result is written as sorted, Go-escaped JSON.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract import keys, objects
from controller.core._deindividualize import deindividualize
from controller.core._gojson import go_json
from controller.core._gotemplate import TemplateError, render
from controller.core._hashes import nominal_hash
from controller.core._k8syaml import yaml_to_json_value
from controller.core._podjson import PodEncodeError, encode_pod
from controller.core._smp import PatchError, strategic_merge_pod


class ProviderBuildError(ValueError):
    """The nominal provider cannot be built; the message is for the requester's status."""


@dataclass(frozen=True, slots=True)
class DirectProvider:
    """A direct provider ready to create (already bound), its nominal hash and vLLM port."""

    pod: dict[str, Any]
    nominal: str
    port: int


def build_direct_provider(
    requester: Mapping[str, Any],
    *,
    node: str,
    gpu_uuids: Sequence[str],
    gpu_indices: Sequence[int],
) -> DirectProvider:
    """Build the provider for `requester` (a Pod as JSON) on `node` with the given GPUs."""
    meta = requester.get("metadata") or {}
    template = (meta.get("annotations") or {}).get(keys.SERVER_PATCH)
    if not template:
        raise ProviderBuildError(f"the {keys.SERVER_PATCH} annotation is missing")
    patched = _patched_pod(requester, template, node)
    patched_json = go_json(patched)
    digest = nominal_hash(patched_json, gpu_indices, node)
    try:
        encode_pod(patched, strict=True)
    except PodEncodeError as error:
        raise ProviderBuildError(
            f"failed to construct the nominal server-providing Pod: {error}"
        ) from error
    pod = json.loads(patched_json)
    port = _finish(pod, requester=meta, node=node, gpu_uuids=gpu_uuids, gpu_indices=gpu_indices)
    pod["metadata"].setdefault("annotations", {})[keys.NOMINAL] = digest
    return DirectProvider(pod=pod, nominal=digest, port=port)


def _patched_pod(requester: Mapping[str, Any], template: str, node: str) -> dict[str, Any]:
    """Steps 1-3: base Pod (Go-serialized), rendered template, strategic merge patch."""
    meta = requester.get("metadata") or {}
    base: dict[str, Any] = {
        key: requester[key] for key in ("apiVersion", "kind") if requester.get(key)
    }
    base["metadata"] = {k: meta[k] for k in ("labels", "namespace") if meta.get(k)}
    base["spec"] = deindividualize(copy.deepcopy(dict(requester.get("spec") or {})))
    try:
        original = json.loads(encode_pod(base))
        patch = yaml_to_json_value(render(template, {"NodeName": node, "LocalVolume": ""}))
        if patch is None:
            patch = {}
        if not isinstance(patch, dict):
            raise PatchError("the server patch must be a YAML mapping")
        return strategic_merge_pod(original, patch)
    except (TemplateError, PatchError, PodEncodeError, ValueError) as error:
        raise ProviderBuildError(
            f"failed to construct the nominal server-providing Pod: {error}"
        ) from error


def _finish(
    pod: dict[str, Any],
    *,
    requester: Mapping[str, Any],
    node: str,
    gpu_uuids: Sequence[str],
    gpu_indices: Sequence[int],
) -> int:
    """Step 5: pin to the node, hand over the GPUs, bind, and return the vLLM port."""
    spec = pod.setdefault("spec", {})
    spec["nodeSelector"] = dict(spec.get("nodeSelector") or {}) | {keys.HOSTNAME: node}
    server = next(
        (c for c in spec.get("containers") or [] if c.get("name") == objects.INFERENCE_SERVER), None
    )
    if server is None:
        raise ProviderBuildError(
            f'the nominal server-providing Pod has no container "{objects.INFERENCE_SERVER}"'
        )
    indices = ",".join(str(index) for index in gpu_indices)
    env = server.setdefault("env", []) or []
    server["env"] = env
    # `gpu-map` indices are NVML's (PCI bus order); CUDA counts fastest first unless told.
    for name, value in (("CUDA_VISIBLE_DEVICES", indices), ("CUDA_DEVICE_ORDER", "PCI_BUS_ID")):
        entry = next((e for e in env if e.get("name") == name), None)
        if entry is None:
            env.append({"name": name, "value": value})
        else:
            entry.clear()
            entry.update({"name": name, "value": value})
    resources = server.setdefault("resources", {}) or {}
    server["resources"] = resources
    for key in ("limits", "requests"):
        resources[key] = dict(resources.get(key) or {}) | {objects.GPU_RESOURCE: "0"}
    meta = pod.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    pod.pop("status", None)
    meta["generateName"] = f"{requester.get('name', '')}-dual-"
    meta["finalizers"] = [*(meta.get("finalizers") or []), keys.PROVIDER_FINALIZER]
    meta["annotations"] = dict(meta.get("annotations") or {}) | {
        keys.REQUESTER: f"{requester.get('uid', '')} {requester.get('name', '')}",
        keys.ACCELERATORS: ",".join(gpu_uuids),
    }
    meta["labels"] = dict(meta.get("labels") or {}) | {
        keys.DUAL: str(requester.get("name", "")),
        keys.SLEEPING: "false",
    }
    return vllm_port(server)


def vllm_port(container: Mapping[str, Any]) -> int:
    """The vLLM port: the readiness probe's httpGet port (`http`/`HTTP` mean 80, §1.4)."""
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    if not isinstance(probe, Mapping):
        raise ProviderBuildError(
            f'container "{objects.INFERENCE_SERVER}" of the server-providing Pod needs '
            "readinessProbe.httpGet; add one to the server patch"
        )
    port = probe.get("port")
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if port in ("http", "HTTP"):
        return 80
    raise ProviderBuildError(
        f'readinessProbe.httpGet.port {port!r} of container "{objects.INFERENCE_SERVER}" must be a '
        "number or http"
    )
