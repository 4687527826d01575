"""fma's objects for the local cluster, as plain manifests: LC, ISC, requesters, Deployments.

Everything runs the repository's own code through the hollow kubelet's image map: fma's image
(`ghcr.io/llm-d/fma:*`) is `.venv/bin` (so `fma-launcher`, `fma-requester` are on PATH) and
`vllm/vllm-openai:*` is the vLLM stand-in. A launcher runs with `--mock-gpus` and reads its GPU
map from the `gpu-map` ConfigMap through `NODE_NAME`/`NAMESPACE` (contracts §2.4, §13.1), and
forks the stand-in (`--instance-entry`) instead of vLLM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from contract import auth, keys, objects
from contract.launcher import LAUNCHER_PORT
from contract.requester import PROBES_PORT, READY_PATH

FMA_IMAGE: Final = "ghcr.io/llm-d/fma:e2e"
VLLM_IMAGE: Final = "vllm/vllm-openai:e2e"
STANDIN_ENTRY: Final = "localcluster.vllm_standin.cli:launcher_instance"


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def launcher_config(
    name: str,
    *,
    max_instances: int = 2,
    kubeconfig: Path,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """An LC whose launcher forks the vLLM stand-in; `kubeconfig` lets it read `gpu-map`."""
    args = [
        "--mock-gpus",
        "--host",
        "$(POD_IP)",
        "--probe-interval",
        "0.1",
        "--stop-grace",
        "2",
        "--instance-entry",
        STANDIN_ENTRY,
        *extra_args,
    ]
    container = {
        "name": objects.INFERENCE_SERVER,
        "image": FMA_IMAGE,
        "command": ["fma-launcher"],
        "args": args,
        "env": [
            _field("POD_IP", "status.podIP"),
            _field("NODE_NAME", "spec.nodeName"),
            _field("NAMESPACE", "metadata.namespace"),
            {"name": "KUBECONFIG", "value": str(kubeconfig)},
        ],
        "ports": [{"name": "launcher", "containerPort": LAUNCHER_PORT}],
    }
    return launcher_config_of(name, {"terminationGracePeriodSeconds": 5}, container, max_instances)


def launcher_config_of(
    name: str, pod_spec: Mapping[str, Any], container: dict[str, Any], max_instances: int
) -> dict[str, Any]:
    """An LC whose launcher Pods run `container`, with the rest of `pod_spec`."""
    return {
        "apiVersion": objects.API_VERSION,
        "kind": "LauncherConfig",
        "metadata": {"name": name},
        "spec": {
            "maxInstances": max_instances,
            "podTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {**pod_spec, "containers": [container]},
            },
        },
    }


def inference_server_config(
    name: str,
    *,
    lc: str,
    port: int,
    model: str = "tiny",
    extra_options: str = "",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An ISC served by the stand-in: `--model <model>` on `port`, quick to start."""
    options = f"--model {model} --enable-sleep-mode --startup-delay 0.2 {extra_options}".strip()
    config: dict[str, Any] = {"port": port, "options": options}
    if labels:
        config["labels"] = dict(labels)
    return {
        "apiVersion": objects.API_VERSION,
        "kind": "InferenceServerConfig",
        "metadata": {"name": name},
        "spec": {"launcherConfigName": lc, "modelServerConfig": config},
    }


def launcher_population_policy(
    name: str,
    *,
    counts: Mapping[str, int],
    match_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An LPP asking for `counts[lc]` launchers of each LC on the matching nodes."""
    selector = {"matchLabels": dict(match_labels or {"nvidia.com/gpu.present": "true"})}
    return {
        "apiVersion": objects.API_VERSION,
        "kind": "LauncherPopulationPolicy",
        "metadata": {"name": name},
        "spec": {
            "enhancedNodeSelector": {"labelSelector": selector},
            "countForLauncher": [
                {"launcherConfigName": lc, "launcherCount": count} for lc, count in counts.items()
            ],
        },
    }


CONTROL_TRUST_CONFIG_MAP: Final = auth.TRUST_CONFIG_MAP
"""Where requesters written without the webhook read the control CA bundle; the controller keeps
it, the environment creates it up front so that stubs start before the controller does."""


def control_env(*, control: bool = True) -> list[dict[str, Any]]:
    """A hand-written requester's control-auth environment: its UID and the namespace's bundle,
    or (`control` False, for a controller run with `--control-auth off`) the off switch."""
    if not control:
        return auth.verifier_env(None)
    uid, _ = auth.verifier_env("")
    trust = {"configMapKeyRef": {"name": CONTROL_TRUST_CONFIG_MAP, "key": auth.CA_FILE}}
    return [uid, {"name": auth.TRUST_ENV, "valueFrom": trust}]


def control_trust_config_map(control_dir: Path) -> dict[str, Any]:
    """The `CONTROL_TRUST_CONFIG_MAP` of a namespace, from a control credential directory."""
    bundle = (control_dir / auth.CA_FILE).read_text()
    return {"metadata": {"name": CONTROL_TRUST_CONFIG_MAP}, "data": {auth.CA_FILE: bundle}}


def requester_container(*, gpus: int = 1, control: bool = True) -> dict[str, Any]:
    """Container `inference-server` running the requester stub (contracts §1.2, §6)."""
    return {
        "name": objects.INFERENCE_SERVER,
        "image": FMA_IMAGE,
        "command": ["fma-requester"],
        "env": [_field("POD_IP", "status.podIP"), *control_env(control=control)],
        "resources": {"limits": {objects.GPU_RESOURCE: str(gpus)}},
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": PROBES_PORT},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }


def requester_template(
    app: str,
    *,
    node: str,
    isc: str | None = None,
    server_patch: str | None = None,
    control: bool = True,
) -> dict[str, Any]:
    """The Pod template of requesters in launcher mode (`isc`) or direct mode (`server_patch`);
    `control` as in `control_env`."""
    annotations = (
        {keys.ISC_ANNOTATION: isc} if isc is not None else {keys.SERVER_PATCH: server_patch or ""}
    )
    return {
        "metadata": {"labels": {"app": app}, "annotations": annotations},
        "spec": {
            "nodeSelector": {keys.HOSTNAME: node},
            "terminationGracePeriodSeconds": 1,
            "containers": [requester_container(control=control)],
        },
    }


def requester_pod(name: str, *, node: str, isc: str, pin: bool = False) -> dict[str, Any]:
    """A bare requester Pod; `pin` sets `spec.nodeName` itself (no scheduler)."""
    template = requester_template(name, node=node, isc=isc)
    spec = template["spec"]
    if pin:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template["metadata"]},
            "spec": spec}  # fmt: skip


def deployment(name: str, template: dict[str, Any], *, replicas: int = 1) -> dict[str, Any]:
    """A Deployment of requesters that replaces Pods at once (no surge, no unavailability)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "Recreate"},
            "template": template,
        },
    }


def direct_server_patch(*, port: int = 8000, model: str = "tiny") -> str:
    """A server patch (Go template, contracts §1.4) that runs the stand-in as a direct provider."""
    return f"""\
metadata:
  labels:
    app: null
    fma-e2e-direct: "{{{{ .NodeName }}}}"
spec:
  containers:
  - name: inference-server
    image: {VLLM_IMAGE}
    command: null
    args: ["--model", "{model}", "--port", "{port}", "--enable-sleep-mode",
           "--startup-delay", "0.2"]
    env:
    - name: VLLM_SERVER_DEV_MODE
      value: "1"
    readinessProbe:
      httpGet: {{path: /health, port: {port}}}
      periodSeconds: 1
"""
