"""Fake NVIDIA GPUs and the device plugin's allocation, as the kubelet's device manager does it.

Each node's GPUs have stable UUIDs derived from the node name and index (`GPU-<uuid5>`), so a
test or the `gpu-map` ConfigMap can name them across restarts. A container with an
`nvidia.com/gpu` limit N gets N free GPUs of its node and `NVIDIA_VISIBLE_DEVICES=<uuid,...>`.
Devices given to a Pod's init containers are reusable by its app containers (the device
manager's rule). Allocations are saved as a checkpoint so that a restarted hollow kubelet keeps
them, as the real device manager keeps `kubelet_internal_checkpoint`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcluster.kubelet.podspec import GPU_RESOURCE

_UUID_NAMESPACE = uuid.UUID("8f1d3c3e-6b5a-4c1e-9a57-3f0e2f1b9d10")


def gpu_uuid(node: str, index: int) -> str:
    """The stable UUID of GPU `index` of `node`, formatted like nvidia-smi's."""
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node}/{index}')}"


def node_gpus(node: str, count: int) -> list[str]:
    return [gpu_uuid(node, i) for i in range(count)]


class GpuAdmissionError(Exception):
    """Not enough free GPUs: the kubelet rejects the Pod (UnexpectedAdmissionError)."""


@dataclass(frozen=True)
class Assignment:
    node: str
    pod_uid: str
    container: str
    devices: tuple[str, ...]
    init: bool = False


@dataclass
class GpuAllocator:
    """Which GPU belongs to which (Pod, container), per node."""

    inventory: Mapping[str, Sequence[str]]
    assignments: dict[tuple[str, str], Assignment] = field(default_factory=dict)

    def allocate(
        self, node: str, pod_uid: str, container: str, count: int, *, init: bool = False
    ) -> tuple[str, ...]:
        """GPUs for one container; the same answer on every call for the same container."""
        existing = self.assignments.get((pod_uid, container))
        if existing is not None:
            return existing.devices
        if count == 0:
            return ()
        candidates = [*self._reusable(pod_uid, init), *self.free(node)]
        if len(candidates) < count:
            raise GpuAdmissionError(
                f"Allocate failed due to requested number of devices unavailable for "
                f"{GPU_RESOURCE}. Requested: {count}, Available: {len(candidates)}, "
                f"which is unexpected"
            )
        devices = tuple(candidates[:count])
        self.assignments[(pod_uid, container)] = Assignment(node, pod_uid, container, devices, init)
        return devices

    def _reusable(self, pod_uid: str, init: bool) -> list[str]:
        """Devices of the Pod's init containers not yet reused by one of its app containers."""
        mine = [a for a in self.assignments.values() if a.pod_uid == pod_uid]
        held_by_apps = {d for a in mine if not a.init for d in a.devices}
        init_devices = [d for a in mine if a.init for d in a.devices]
        if init:
            return list(dict.fromkeys(init_devices))
        return [d for d in dict.fromkeys(init_devices) if d not in held_by_apps]

    def free(self, node: str) -> list[str]:
        """The node's GPUs nobody holds, in index order."""
        used = {d for a in self.assignments.values() for d in a.devices}
        return [d for d in self.inventory.get(node, ()) if d not in used]

    def devices_of(self, pod_uid: str) -> dict[str, tuple[str, ...]]:
        return {a.container: a.devices for a in self.assignments.values() if a.pod_uid == pod_uid}

    def release_pod(self, pod_uid: str) -> bool:
        """Frees every GPU of the Pod; True when something was freed."""
        keys = [k for k in self.assignments if k[0] == pod_uid]
        for key in keys:
            del self.assignments[key]
        return bool(keys)

    def pods(self) -> set[str]:
        return {a.pod_uid for a in self.assignments.values()}

    def to_checkpoint(self) -> dict[str, Any]:
        entries = [
            {
                "podUID": a.pod_uid,
                "containerName": a.container,
                "nodeName": a.node,
                "resourceName": GPU_RESOURCE,
                "deviceIDs": list(a.devices),
                "init": a.init,
            }
            for a in self.assignments.values()
        ]
        return {"podDeviceEntries": entries}

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Loads a checkpoint, keeping only devices that still exist on their node."""
        for entry in checkpoint.get("podDeviceEntries") or ():
            node = str(entry["nodeName"])
            known = set(self.inventory.get(node, ()))
            devices = tuple(d for d in entry["deviceIDs"] if d in known)
            key = (str(entry["podUID"]), str(entry["containerName"]))
            self.assignments[key] = Assignment(node, *key, devices, bool(entry.get("init")))


def visible_devices_env(devices: Sequence[str]) -> dict[str, str]:
    """The env the NVIDIA device plugin returns in its Allocate response."""
    return {"NVIDIA_VISIBLE_DEVICES": ",".join(devices)} if devices else {}
