"""The hashes and payloads of contracts §4.3-§4.4 (instance ID, VllmConfig, bind annotations)
and the hash formulas of §4.1-§4.2.

These values travel between controllers, launchers and existing clusters, so they are computed
over exactly the bytes the reference hashes: `sigs.k8s.io/yaml` for the instance ID, Go JSON
for the rest. Golden vectors in the tests pin them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from contract.launcher import INFERENCE_PORT_ANNOTATION, ISC_NAME_ANNOTATION, VllmConfig
from controller.core._gojson import go_json, go_string
from controller.core._goyaml import go_yaml
from crds.models import ModelServerConfig


def _sha256(*parts: str) -> bytes:
    return hashlib.sha256("".join(parts).encode()).digest()


def b64std(digest: bytes) -> str:
    """Standard base64 without padding (43 characters for a SHA-256)."""
    return base64.b64encode(digest).decode().rstrip("=")


def model_server_config_json(config: ModelServerConfig) -> dict[str, Any]:
    """The Go JSON object of the `ModelServerConfig` struct: empty options and maps omitted."""
    out: dict[str, Any] = {"port": config.port}
    if config.options:
        out["options"] = config.options
    for name, value in (
        ("env_vars", config.env_vars),
        ("labels", config.labels),
        ("annotations", config.annotations),
    ):
        if value:
            out[name] = dict(value)
    return out


def instance_id(config: ModelServerConfig, gpu_uuids: Sequence[str]) -> str:
    """`"I" + b64url(sha256(yaml(modelServerConfig) + ";gpus=" + uuidCSV)) + "i"` (§4.3)."""
    document = go_yaml(model_server_config_json(config))
    digest = _sha256(document, ";gpus=", ",".join(gpu_uuids))
    return "I" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "i"


def vllm_config(isc_name: str, config: ModelServerConfig, gpu_uuids: Sequence[str]) -> VllmConfig:
    """The VllmConfig for an ISC on some GPUs: options get ` --port <port>` appended; empty
    `gpu_uuids` and `env_vars` are left out (Go's `omitempty`)."""
    return VllmConfig(
        options=f"{config.options or ''} --port {config.port}",
        gpu_uuids=list(gpu_uuids) or None,
        env_vars=dict(config.env_vars or {}) or None,
        annotations={ISC_NAME_ANNOTATION: isc_name, INFERENCE_PORT_ANNOTATION: str(config.port)},
    )


def vllm_config_json(config: VllmConfig) -> str:
    """The `vllm-config` annotation: Go JSON in struct field order (options, gpu_uuids,
    env_vars, annotations), empty fields omitted."""
    fields = {k: v for k, v in config.to_json().items() if k == "options" or v}
    return "{" + ",".join(f"{go_string(k)}:{go_json(v)}" for k, v in fields.items()) + "}"


def routing_metadata_json(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """`{"labels":{..},"annotations":{..}}` with empty maps omitted (§2.1)."""
    parts = []
    if labels:
        parts.append('"labels":' + go_json(dict(labels)))
    if annotations:
        parts.append('"annotations":' + go_json(dict(annotations)))
    return "{" + ",".join(parts) + "}"


def template_hash(pod_json: str) -> str:
    """`b64std(sha256(json(pod)))` of the node-independent launcher Pod (§4.2 step 3)."""
    return b64std(_sha256(pod_json))


def launcher_config_hash(template: str, node: str) -> str:
    """`b64std(sha256(templateHash + ";node=" + node))` (§4.2 node specialization)."""
    return b64std(_sha256(template, ";node=", node))


def nominal_hash(patched_json: str, gpu_indices: Sequence[int], node: str) -> str:
    """`b64std(sha256(patchedJSON + ";gpus=" + indexCSV + ";node=" + node))` (§4.1 step 4)."""
    indices = ",".join(str(index) for index in gpu_indices)
    return b64std(_sha256(patched_json, ";gpus=", indices, ";node=", node))
