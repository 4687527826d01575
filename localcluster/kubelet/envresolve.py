"""A container's environment, resolved the way the kubelet's makeEnvironmentVariables does.

Order and precedence (later wins): `envFrom` sources in order, then `env` entries in order. An
`env` value is `$(VAR)`-expanded against the variables defined before it. `configMapKeyRef` and
`secretKeyRef` honour `optional` (a missing optional object or key leaves the variable unset);
a missing required one is a CreateContainerConfigError with the kubelet's message.

ConfigMaps and Secrets are read through the API by the caller: `referenced_objects` says which,
the caller fetches them (None for "not found"), and `resolve_env` stays pure.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from kubernetes.utils.quantity import parse_quantity

from localcluster.kubelet.expansion import expand, mapping_for
from localcluster.kubelet.podspec import ContainerSpec, Json, PodView

ObjectKind = Literal["ConfigMap", "Secret"]
ObjectRef = tuple[ObjectKind, str]
# Fetched ConfigMap data / decoded Secret data by reference; None when the object does not exist.
Fetched = Mapping[ObjectRef, Mapping[str, str] | None]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class EnvError(Exception):
    """A required reference could not be resolved (the container cannot be created)."""


@dataclass(frozen=True)
class PodRuntime:
    """What only the kubelet knows about the Pod: addresses and the node's allocatable."""

    pod_ip: str
    host_ip: str
    node_allocatable: Mapping[str, str]


def referenced_objects(container: ContainerSpec) -> set[ObjectRef]:
    """Every ConfigMap and Secret that `env` and `envFrom` of `container` read."""
    refs: set[ObjectRef] = set()
    for source in container.env_from:
        if ref := source.get("configMapRef"):
            refs.add(("ConfigMap", str(ref.get("name", ""))))
        if ref := source.get("secretRef"):
            refs.add(("Secret", str(ref.get("name", ""))))
    for var in container.env:
        value_from = var.get("valueFrom") or {}
        if ref := value_from.get("configMapKeyRef"):
            refs.add(("ConfigMap", str(ref.get("name", ""))))
        if ref := value_from.get("secretKeyRef"):
            refs.add(("Secret", str(ref.get("name", ""))))
    return refs


def config_map_data(raw: Json) -> dict[str, str]:
    """A ConfigMap's `data` (binaryData is not exposed as environment variables)."""
    return {str(k): str(v) for k, v in (raw.get("data") or {}).items()}


def secret_data(raw: Json) -> dict[str, str]:
    """A Secret's decoded `data` merged with `stringData`."""
    data = {str(k): base64.b64decode(v).decode() for k, v in (raw.get("data") or {}).items()}
    data.update({str(k): str(v) for k, v in (raw.get("stringData") or {}).items()})
    return data


def resolve_env(
    pod: PodView, container: ContainerSpec, runtime: PodRuntime, fetched: Fetched
) -> dict[str, str]:
    """The container's variables in definition order; raises EnvError like the kubelet does."""
    env: dict[str, str] = {}
    for source in container.env_from:
        env.update(_env_from(pod, source, fetched))
    for var in container.env:
        name = str(var["name"])
        value_from = var.get("valueFrom")
        if not value_from:
            value = str(var.get("value") or "")
            env[name] = expand(value, mapping_for(env)) if value else ""
            continue
        resolved = _value_from(pod, container, runtime, value_from, fetched)
        if resolved is not None:
            env[name] = resolved
    return env


def _env_from(pod: PodView, source: Json, fetched: Fetched) -> dict[str, str]:
    prefix = str(source.get("prefix") or "")
    if ref := source.get("configMapRef"):
        kind: ObjectKind = "ConfigMap"
    elif ref := source.get("secretRef"):
        kind = "Secret"
    else:
        return {}
    data = _lookup(pod, kind, ref, fetched)
    if data is None:
        return {}
    return {prefix + k: v for k, v in data.items() if _ENV_NAME.match(prefix + k)}


def _lookup(
    pod: PodView, kind: ObjectKind, ref: Json, fetched: Fetched
) -> Mapping[str, str] | None:
    name = str(ref.get("name", ""))
    data = fetched.get((kind, name))
    if data is None and not ref.get("optional"):
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        raise EnvError(f'{plural} "{name}" not found (namespace {pod.namespace})')
    return data


def _value_from(
    pod: PodView, container: ContainerSpec, runtime: PodRuntime, value_from: Json, fetched: Fetched
) -> str | None:
    if field := value_from.get("fieldRef"):
        return field_value(pod, runtime, str(field.get("fieldPath", "")))
    if resource := value_from.get("resourceFieldRef"):
        return resource_value(pod, container, runtime, resource)
    if ref := value_from.get("configMapKeyRef"):
        return _key_value(pod, "ConfigMap", ref, fetched)
    if ref := value_from.get("secretKeyRef"):
        return _key_value(pod, "Secret", ref, fetched)
    return None


def _key_value(pod: PodView, kind: ObjectKind, ref: Json, fetched: Fetched) -> str | None:
    data = _lookup(pod, kind, ref, fetched)
    if data is None:
        return None
    key = str(ref.get("key", ""))
    if key in data:
        return data[key]
    if ref.get("optional"):
        return None
    raise EnvError(f"couldn't find key {key} in {kind} {pod.namespace}/{ref.get('name', '')}")


def field_value(pod: PodView, runtime: PodRuntime, path: str) -> str:
    """A downward-API `fieldRef` (the kubelet's podFieldSelectorRuntimeValue)."""
    meta: Mapping[str, Any] = pod.raw.get("metadata") or {}
    spec: Mapping[str, Any] = pod.raw.get("spec") or {}
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name or "",
        "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
        "status.hostIP": runtime.host_ip,
        "status.podIP": runtime.pod_ip,
        "status.podIPs": runtime.pod_ip,
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    if match := _SUBSCRIPT.match(path):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldPath: {path}")


def format_map(values: Mapping[str, str]) -> str:
    """Go's fieldpath.FormatMap: sorted `key="value"` lines."""
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


def resource_value(pod: PodView, container: ContainerSpec, runtime: PodRuntime, ref: Json) -> str:
    """A `resourceFieldRef`; an unset limit defaults to the node's allocatable, as documented."""
    target = container
    if name := ref.get("containerName"):
        found = pod.container(str(name))
        if found is None:
            raise EnvError(f"resourceFieldRef: no container named {name!r} in {pod.key}")
        target = found
    resource = str(ref.get("resource", ""))
    kind, _, what = resource.partition(".")
    if kind not in ("limits", "requests") or not what:
        raise EnvError(f"unsupported resource: {resource}")
    values = (target.limits if kind == "limits" else target.requests) or {}
    quantity = values.get(what)
    if quantity is None and kind == "limits":
        quantity = runtime.node_allocatable.get(what)
    if quantity is None and kind == "requests":
        quantity = (target.limits or {}).get(what, "0")
    amount: Decimal = parse_quantity(quantity or "0")
    divisor: Decimal = parse_quantity(str(ref.get("divisor") or "1"))
    return str(math.ceil(amount / divisor))


def process_env(
    *,
    host_environ: Mapping[str, str],
    keep: Sequence[str],
    image_env: Mapping[str, str],
    image_path: Sequence[str],
    downward: Mapping[str, str],
    device_env: Mapping[str, str],
    container_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment of the container's process; later layers win.

    host variables named in `keep` (HOME, LANG, ...), PATH (the image's `path` entries first,
    then the image's PATH or the host's), the image's ENV, the downward-API defaults every Pod
    gets here (POD_NAME, POD_IP, ...), the device plugin's variables, then the container's own
    resolved `env`/`envFrom` (which the kubelet appends last, so a spec value wins).
    """
    env = {name: host_environ[name] for name in keep if name in host_environ}
    base_path = image_env.get("PATH") or host_environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env.update(image_env)
    env["PATH"] = ":".join([*image_path, base_path])
    env.update(downward)
    env.update(device_env)
    env.update(container_env)
    return env


def downward_defaults(pod: PodView, runtime: PodRuntime) -> dict[str, str]:
    """What the hollow kubelet tells every process about its Pod (a real Pod uses fieldRefs)."""
    spec: Mapping[str, Any] = pod.raw.get("spec") or {}
    return {
        "HOSTNAME": str(spec.get("hostname") or pod.name),
        "POD_NAME": pod.name,
        "POD_NAMESPACE": pod.namespace,
        "POD_UID": pod.uid,
        "POD_IP": runtime.pod_ip,
        "NODE_NAME": pod.node_name or "",
    }
