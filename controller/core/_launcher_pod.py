"""The launcher Pod built from a LauncherConfig (contracts §4.2).

The DPC (cold path) and the launcher-populator build the same node-independent Pod, hash it
(`launcher-populator-template-hash`), and then specialize it for a node
(`launcher-config-hash`). A launcher is reused only when its hash equals the one computed now,
so every byte of the build matters: the sorts, the labels, the ownerReference with the LC's UID.

fma differs from the reference in one optional point: it has no `state-change-reflector`
sidecar (reference-differences C1: the controller follows the launcher's watch stream instead). The
sidecar is added only when `with_reflector=True`; it is added after the hash is computed, so
it does not change `launcher-config-hash` either way.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from contract import auth, keys, objects
from contract.launcher import HEALTH_PATH, INSTANCES_PATH, LAUNCHER_PORT
from contract.vllm import DEV_MODE_ENV
from controller.core._deindividualize import deindividualize
from controller.core._hashes import launcher_config_hash, template_hash
from controller.core._podjson import PodEncodeError, encode_pod
from crds.models import LauncherConfig

FORCED_ENV: Final = (
    ("PYTHONPATH", "/app"),
    ("NVIDIA_VISIBLE_DEVICES", "all"),
    ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
    (DEV_MODE_ENV, "1"),
)


def _launcher_probe(path: str, *, delay_s: int, period_s: int, timeout_s: int) -> dict[str, Any]:
    """An HTTP GET of the launcher API at `path`: one success passes, three failures fail."""
    return {
        "httpGet": {"path": path, "port": LAUNCHER_PORT, "scheme": "HTTP"},
        "initialDelaySeconds": delay_s,
        "periodSeconds": period_s,
        "timeoutSeconds": timeout_s,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


LIVENESS_PROBE: Final = _launcher_probe(HEALTH_PATH, delay_s=10, period_s=20, timeout_s=1)
READINESS_PROBE: Final = _launcher_probe(INSTANCES_PATH, delay_s=2, period_s=5, timeout_s=2)


class LauncherTemplateError(ValueError):
    """The LauncherConfig's template cannot make a launcher Pod (the LC is malformed)."""


@dataclass(frozen=True, slots=True)
class LauncherTemplate:
    """The node-independent launcher Pod of an LC and its hash."""

    lc_name: str
    pod: dict[str, Any]
    template_hash: str

    def for_node(self, node: str) -> dict[str, Any]:
        """The node-specialized Pod (labels, nodeSelector, `launcher-config-hash`)."""
        pod = copy.deepcopy(self.pod)
        meta = pod["metadata"]
        meta["labels"][keys.NODE_NAME] = node
        meta["annotations"][keys.CONFIG_HASH] = self.config_hash(node)
        pod["spec"].setdefault("nodeSelector", {})[keys.HOSTNAME] = node
        return pod

    def config_hash(self, node: str) -> str:
        """The `launcher-config-hash` of this template on `node`."""
        return launcher_config_hash(self.template_hash, node)


_BUILT: dict[tuple[int, bool], tuple[weakref.ref[LauncherConfig], LauncherTemplate]] = {}
"""Templates by the parsed LC they were built from (`id`, checked through a weak reference)."""


def build_launcher_template(
    lc: LauncherConfig, *, with_reflector: bool = False
) -> LauncherTemplate:
    """Build, hash and complete the launcher Pod of `lc`; raise LauncherTemplateError.

    Built once per parsed LC object: the controller parses an LC once per resourceVersion
    (`ClusterState`) and every unbound pass needs its template, whose build is a deep copy, a
    canonical encoding and a hash of the whole Pod. The template lives as long as the parsed
    object; a malformed LC's error is not kept. (Keying on UID and resourceVersion instead
    would not do: test apiservers hand out the same pair for different objects.)
    """
    key = (id(lc), with_reflector)
    cached = _BUILT.get(key)
    if cached is not None and cached[0]() is lc:
        return cached[1]
    built = _build(lc, with_reflector=with_reflector)
    _BUILT[key] = (weakref.ref(lc, lambda _gone: _BUILT.pop(key, None)), built)
    return built


def _build(lc: LauncherConfig, *, with_reflector: bool) -> LauncherTemplate:
    name = lc.metadata.name or ""
    template = lc.spec.pod_template
    spec = (
        copy.deepcopy(template.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
        if template and template.spec
        else {}
    )
    meta_in = template.metadata if template and template.metadata else None
    spec = _sorted_spec(deindividualize(spec))
    labels = dict(meta_in.labels or {}) if meta_in else {}
    labels.update(
        {keys.COMPONENT: keys.COMPONENT_LAUNCHER, keys.LC_NAME: name, keys.SLEEPING: "true"}
    )
    metadata: dict[str, Any] = {
        "generateName": f"launcher-{name}-",
        "namespace": lc.metadata.namespace or "",
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": objects.API_VERSION,
                "kind": "LauncherConfig",
                "name": name,
                "uid": lc.metadata.uid or "",
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ],
    }
    if meta_in and meta_in.annotations:
        metadata["annotations"] = dict(meta_in.annotations)
    pod: dict[str, Any] = {"metadata": metadata, "spec": spec}
    try:
        digest = template_hash(encode_pod(pod))
    except PodEncodeError as error:
        raise LauncherTemplateError(f"spec.podTemplate: {error}") from error
    metadata.setdefault("annotations", {})[keys.TEMPLATE_HASH] = digest
    _complete_container(spec, with_reflector=with_reflector)
    return LauncherTemplate(lc_name=name, pod=pod, template_hash=digest)


def _sorted_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The stable sorts of §4.2 step 1, so list order in the LC does not change the hash."""

    def by(*fields: str, default: Any = "") -> Any:
        return lambda item: tuple(
            item.get(k, default if k != "containerPort" else 0) for k in fields
        )

    for key, sort_key in (
        ("volumes", by("name")),
        ("tolerations", by("key", "operator", "value", "effect")),
        ("imagePullSecrets", by("name")),
    ):
        if spec.get(key):
            spec[key] = sorted(spec[key], key=sort_key)
    for group in ("containers", "initContainers"):
        for container in spec.get(group) or []:
            for key, sort_key in (
                ("volumeMounts", by("name", "mountPath")),
                ("ports", by("name", "containerPort", "protocol")),
                ("envFrom", by("prefix")),
            ):
                if container.get(key):
                    container[key] = sorted(container[key], key=sort_key)
    return spec


def _complete_container(spec: dict[str, Any], *, with_reflector: bool) -> None:
    """Step 4 (env, probes, GPU zeroing) and, optionally, step 5 (the sidecar)."""
    containers = spec.get("containers") or []
    server = next((c for c in containers if c.get("name") == objects.INFERENCE_SERVER), None)
    if server is None:
        raise LauncherTemplateError(f'container "{objects.INFERENCE_SERVER}" not found')
    _set_env(server, [{"name": name, "value": value} for name, value in FORCED_ENV])
    server["livenessProbe"] = copy.deepcopy(LIVENESS_PROBE)
    server["readinessProbe"] = copy.deepcopy(READINESS_PROBE)
    resources = server.get("resources") or {}
    for key in ("limits", "requests"):
        if isinstance(resources.get(key), dict):
            resources[key][objects.GPU_RESOURCE] = "0"
    if isinstance(spec.get("overhead"), dict):
        spec["overhead"].pop(objects.GPU_RESOURCE, None)
    if with_reflector:
        _add_reflector(containers, server)


def with_control_env(pod: Mapping[str, Any], trust_pem: str | None) -> dict[str, Any]:
    """A copy of the launcher `pod` whose launcher admits only the controller (contracts §14).

    Added when the Pod is created, not to the template: the bundle is the one of that moment (a
    CA rotation must not make existing launchers look stale), and the hashes stay the
    reference's. `trust_pem` None: the install's compatibility mode, an open launcher."""
    completed = copy.deepcopy(dict(pod))
    for container in completed.get("spec", {}).get("containers") or []:
        if container.get("name") == objects.INFERENCE_SERVER:
            _set_env(container, auth.verifier_env(trust_pem))
    return completed


def _set_env(container: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Sets each entry, replacing one of the same name: fma's value wins over the template's."""
    env = container.setdefault("env", [])
    for entry in entries:
        current = next((e for e in env if e.get("name") == entry["name"]), None)
        if current is None:
            env.append(entry)
        else:
            current.clear()
            current.update(entry)


def _add_reflector(containers: list[dict[str, Any]], server: dict[str, Any]) -> None:
    sidecar: dict[str, Any] = {
        "name": objects.REFLECTOR,
        "image": server.get("image", ""),
        "command": ["python3", "/app/launcher_pod_notifier.py"],
        "env": [
            {"name": "LAUNCHER_BASE_URL", "value": f"http://127.0.0.1:{LAUNCHER_PORT}"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"cpu": "100m", "memory": "128Mi"},
        },
    }
    if server.get("imagePullPolicy"):
        sidecar["imagePullPolicy"] = server["imagePullPolicy"]
    for index, container in enumerate(containers):
        if container.get("name") == objects.REFLECTOR:
            containers[index] = sidecar
            return
    containers.append(sidecar)
