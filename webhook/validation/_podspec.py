"""Structural checks of a launcher Pod template's `spec`, on the raw JSON.

The CRD keeps the template's PodSpec untyped beyond container names (see `crds.models.PodSpec`),
so a template that no apiserver would accept as a Pod is stored happily and fails only when the
controllers try to create launchers from it. These checks cover what such templates get wrong in
practice: container list shape and names, images, env names, ports, resource quantities, volume
references. They are a subset of the apiserver's Pod validation, never stricter than it.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Final

from contract import rules
from contract.objects import GPU_RESOURCE, INFERENCE_SERVER
from webhook.validation import _names
from webhook.validation._verdict import Findings

SHM_PATH: Final = "/dev/shm"


def check_pod_spec(spec: object, path: str, findings: Findings) -> None:
    """Check the template spec; deny what cannot become a Pod, warn about likely mistakes."""
    if not isinstance(spec, dict):
        findings.deny(path, "must be an object (a core/v1 PodSpec)", "write a PodSpec")
        return
    volumes = _volumes(spec.get("volumes"), f"{path}.volumes", findings)
    names: set[str] = set()
    for field in ("containers", "initContainers"):
        items = spec.get(field)
        if items is None and field == "initContainers":
            continue
        if not isinstance(items, list) or (field == "containers" and not items):
            findings.deny(f"{path}.{field}", "must be a non-empty list", "list the containers")
            continue
        for index, container in enumerate(items):
            _check_container(container, f"{path}.{field}[{index}]", names, volumes, findings)
    listed = spec.get("containers")
    containers = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    server = next((c for c in containers if c.get("name") == INFERENCE_SERVER), None)
    if server is None:
        findings.deny(
            f"{path}.containers",
            f'has no container named "{INFERENCE_SERVER}"',
            f'name the launcher container "{INFERENCE_SERVER}"',
        )
    elif not _has_memory_shm(server, volumes):
        findings.warn(
            f"{path}.containers[{INFERENCE_SERVER}]",
            f"has no memory-backed {SHM_PATH}; tensor-parallel (multi-GPU) instances need a "
            f"large one: mount an emptyDir with medium Memory at {SHM_PATH}",
        )


def _volumes(value: object, path: str, findings: Findings) -> dict[str, dict[str, Any]]:
    """The template's volumes by name; malformed entries are denied and left out."""
    volumes: dict[str, dict[str, Any]] = {}
    hints = ("list volumes as objects with a name", "give the volume a name")
    for item, volume in _objects(value, path, findings, hints, named=True):
        name = volume["name"]
        findings.deny_all(f"{item}.name", rules.dns1123_label(name), "use a DNS-1123 label")
        if name in volumes:
            findings.deny(f"{item}.name", f"duplicate volume name {name!r}", "rename one")
        volumes[name] = volume
    return volumes


def _check_container(
    container: object,
    path: str,
    names: set[str],
    volumes: dict[str, dict[str, Any]],
    findings: Findings,
) -> None:
    if not isinstance(container, dict):
        findings.deny(path, "must be an object (a core/v1 Container)", "write a Container")
        return
    name = container.get("name")
    if not isinstance(name, str) or not name:
        findings.deny(f"{path}.name", "is required", "name the container")
    else:
        findings.deny_all(f"{path}.name", rules.dns1123_label(name), "use a DNS-1123 label")
        if name in names:
            findings.deny(f"{path}.name", f"duplicate container name {name!r}", "rename one")
        names.add(name)
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        findings.deny(f"{path}.image", "is required", "set the launcher image")
    for field in ("command", "args"):
        value = container.get(field)
        if value is not None and not _is_string_list(value):
            findings.deny(f"{path}.{field}", "must be a list of strings", "quote each argument")
    _check_env(container.get("env"), f"{path}.env", findings)
    _check_ports(container.get("ports"), f"{path}.ports", findings)
    _check_resources(container.get("resources"), f"{path}.resources", findings)
    _check_mounts(container.get("volumeMounts"), f"{path}.volumeMounts", volumes, findings)


def _objects(
    value: object, path: str, findings: Findings, hints: tuple[str, str], *, named: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The entries of an optional list field that are objects (with a string `name` when
    `named`), each with its path. A value that is not a list, and any other entry, is denied,
    with the first hint or the second."""
    list_hint, entry_hint = hints
    if value is None:
        return
    if not isinstance(value, list):
        findings.deny(path, "must be a list", list_hint)
        return
    what = "an object with a name" if named else "an object"
    for index, entry in enumerate(value):
        item = f"{path}[{index}]"
        if isinstance(entry, dict) and (not named or isinstance(entry.get("name"), str)):
            yield item, entry
        else:
            findings.deny(item, f"must be {what}", entry_hint)


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_env(env: object, path: str, findings: Findings) -> None:
    hints = ("list env entries as {name, value}", "add a name")
    for item, entry in _objects(env, path, findings, hints, named=True):
        findings.deny_all(
            f"{item}.name", _names.env_var_name(entry["name"]), "use a valid variable name"
        )


def _check_ports(ports: object, path: str, findings: Findings) -> None:
    seen: set[str] = set()
    hints = ("list ports as {containerPort, name}", "write {containerPort: N}")
    for item, port in _objects(ports, path, findings, hints):
        number = port.get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            findings.deny(f"{item}.containerPort", "must be an integer 1-65535", "fix the port")
        name = port.get("name")
        if name is None:
            continue
        if not isinstance(name, str):
            findings.deny(f"{item}.name", "must be a string", "name the port")
            continue
        findings.deny_all(f"{item}.name", _names.port_name(name), "use e.g. http or metrics")
        if name in seen:
            findings.deny(f"{item}.name", f"duplicate port name {name!r}", "rename one")
        seen.add(name)


def _check_resources(resources: object, path: str, findings: Findings) -> None:
    if resources is None:
        return
    if not isinstance(resources, dict):
        findings.deny(path, "must be an object", "write {requests: {...}, limits: {...}}")
        return
    parsed = {
        field: _quantities(resources.get(field), f"{path}.{field}", findings)
        for field in ("limits", "requests")
    }
    limits, requests = parsed["limits"], parsed["requests"]
    for name, amount in requests.items():
        if name in limits and amount > limits[name]:
            findings.deny(
                f"{path}.requests{_names.field_key(name)}",
                "must be less than or equal to the limit",
                "lower the request or raise the limit",
            )
    for field, amounts in parsed.items():
        if amounts.get(GPU_RESOURCE, Fraction(0)) > 0:
            findings.warn(
                f"{path}.{field}{_names.field_key(GPU_RESOURCE)}",
                "launchers ask for no GPUs (the requester holds them); the controllers set this "
                "to 0, so remove it",
            )


def _quantities(value: object, path: str, findings: Findings) -> dict[str, Fraction]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        findings.deny(path, "must be a map of resource name to quantity", "e.g. {cpu: '2'}")
        return {}
    amounts: dict[str, Fraction] = {}
    for name, raw in value.items():
        try:
            amounts[name] = rules.quantity_value(raw)
        except rules.QuantityError as error:
            findings.deny(f"{path}{_names.field_key(name)}", str(error), "write e.g. 2, 500m, 8Gi")
    return amounts


def _check_mounts(
    mounts: object, path: str, volumes: dict[str, dict[str, Any]], findings: Findings
) -> None:
    hints = ("list mounts as {name, mountPath}", "write {name, mountPath}")
    for item, mount in _objects(mounts, path, findings, hints):
        name, mount_path = mount.get("name"), mount.get("mountPath")
        if not isinstance(name, str) or name not in volumes:
            findings.deny(f"{item}.name", f"no volume named {name!r}", "declare it in volumes")
        if not isinstance(mount_path, str) or not mount_path:
            findings.deny(f"{item}.mountPath", "is required", "set the path to mount at")


def _has_memory_shm(container: dict[str, Any], volumes: dict[str, dict[str, Any]]) -> bool:
    """True when the container mounts an emptyDir with medium Memory at /dev/shm."""
    mounts = container.get("volumeMounts")
    for mount in mounts if isinstance(mounts, list) else []:
        if not isinstance(mount, dict) or mount.get("mountPath") != SHM_PATH:
            continue
        empty_dir = volumes.get(str(mount.get("name")), {}).get("emptyDir")
        if isinstance(empty_dir, dict) and empty_dir.get("medium") == "Memory":
            return True
    return False
