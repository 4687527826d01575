"""Registering and heart-beating the virtual Nodes (the kubelet's node status manager).

The Node object is built by `node_object` / `node_status` (pure); `NodeAgent` does the I/O:
create or update the Node, post its status, remove the `node.kubernetes.io/not-ready` taint the
apiserver's admission adds to a new Node (there is no node-lifecycle controller to do it), and
renew its Lease in `kube-node-lease`. With no node-lifecycle controller either to notice a dead
kubelet, a clean shutdown that keeps the Nodes marks them the way that controller would: Ready
Unknown and tainted `node.kubernetes.io/unreachable`.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from localcluster.kubelet.clock import rfc3339, rfc3339_micro
from localcluster.kubelet.config import KubeletConfig, NodeConfig
from localcluster.kubelet.gpus import node_gpus
from localcluster.kubelet.kubeapi import KubeApi
from localcluster.kubelet.network import NodeNetwork
from localcluster.kubelet.podspec import GPU_RESOURCE

_log = logging.getLogger(__name__)

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_SYSTEM_TAINTS = (NOT_READY_TAINT, UNREACHABLE_TAINT)
_BOOT_ID = str(uuid.uuid4())


def node_labels(node: NodeConfig) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": node.arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": node.arch,
    }
    if node.gpus:
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.count"] = str(node.gpus)
    labels.update(node.labels)
    return labels


def node_taints(node: NodeConfig) -> list[dict[str, str]]:
    return [{"key": t.key, "value": t.value, "effect": t.effect} for t in node.taints]


def node_object(node: NodeConfig, network: NodeNetwork) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": node_labels(node)},
        "spec": {
            "podCIDR": network.pod_cidr,
            "podCIDRs": [network.pod_cidr],
            "taints": node_taints(node),
        },
    }


def capacity(node: NodeConfig) -> dict[str, str]:
    return {
        "cpu": node.cpu,
        "memory": node.memory,
        "pods": str(node.pods),
        "ephemeral-storage": "100Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        GPU_RESOURCE: str(node.gpus),
    }


_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def node_conditions(
    ready: bool, previous: Mapping[str, Any] | None, now: str
) -> list[dict[str, Any]]:
    """The four kubelet conditions with a fresh heartbeat, keeping unchanged transition times."""
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or ()}
    wanted = [(kind, "False", reason, message) for kind, reason, message in _CONDITIONS]
    if ready:
        wanted.append(("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    else:
        wanted.append(
            ("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        )
    conditions = []
    for kind, status, reason, message in wanted:
        before = old.get(kind) or {}
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": (
                    before.get("lastTransitionTime") if before.get("status") == status else now
                ),
            }
        )
    return conditions


def node_status(
    node: NodeConfig,
    network: NodeNetwork,
    config: KubeletConfig,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    machine_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"fma-hollow-node.{node.name}")).replace(
        "-", ""
    )
    return {
        "capacity": capacity(node),
        "allocatable": capacity(node),
        "addresses": [
            {"type": "InternalIP", "address": network.node_ip},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": machine_id,
            "systemUUID": machine_id,
            "bootID": _BOOT_ID,
            "kernelVersion": platform.release(),
            "osImage": "fma hollow node",
            "containerRuntimeVersion": "hollow://0.1.0",
            "kubeletVersion": config.kubelet_version,
            "kubeProxyVersion": config.kubelet_version,
            "operatingSystem": "linux",
            "architecture": node.arch,
        },
        "conditions": node_conditions(True, previous, rfc3339()),
    }


def without_system_taints(taints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in taints if t.get("key") not in _SYSTEM_TAINTS]


@dataclass
class NodeAgent:
    """Keeps one Node registered, Ready and leased."""

    api: KubeApi
    config: KubeletConfig
    node: NodeConfig
    network: NodeNetwork
    uid: str = ""

    @property
    def gpu_uuids(self) -> list[str]:
        return node_gpus(self.node.name, self.node.gpus)

    async def register(self) -> None:
        """Creates the Node (or updates ours from an earlier run) and makes it schedulable."""
        wanted = node_object(self.node, self.network)
        try:
            current = await self.api.create_node(wanted)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = await self.api.get_node(self.node.name) or wanted
            labels = {**current["metadata"].get("labels", {}), **wanted["metadata"]["labels"]}
            await self.api.patch_node(self.node.name, {"metadata": {"labels": labels}})
        self.uid = str(current.get("metadata", {}).get("uid", ""))
        await self.post_status(current)
        await self.untaint()

    async def post_status(self, current: Mapping[str, Any] | None = None) -> None:
        previous = (current or {}).get("status")
        await self.api.patch_node_status(
            self.node.name, node_status(self.node, self.network, self.config, previous)
        )

    async def untaint(self) -> None:
        """Removes the not-ready/unreachable taints (guarded by resourceVersion; retried)."""
        for _ in range(10):
            current = await self.api.get_node(self.node.name)
            if current is None:
                return
            taints = current.get("spec", {}).get("taints") or []
            kept = without_system_taints(taints)
            if kept == taints:
                return
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"taints": kept or None},
            }
            try:
                await self.api.patch_node(self.node.name, patch)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise

    async def heartbeat(self) -> None:
        """Renews the Lease and re-posts the status, forever (cancel to stop)."""
        last_status = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.api.renew_lease(self._lease())
                if loop.time() - last_status >= self.config.node_status_update_seconds:
                    current = await self.api.get_node(self.node.name)
                    if current is None:
                        await self.register()
                    else:
                        await self.post_status(current)
                        await self.untaint()
                    last_status = loop.time()
            except (ApiException, OSError) as exc:
                _log.warning(
                    "node heartbeat failed", extra={"node": self.node.name, "error": str(exc)}
                )
            await asyncio.sleep(self.config.lease_renew_seconds)

    def _lease(self) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node.name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node.name, "uid": self.uid}
                ],
            },
            "spec": {
                "holderIdentity": self.node.name,
                "leaseDurationSeconds": self.config.lease_duration_seconds,
                "renewTime": rfc3339_micro(),
            },
        }

    async def mark_unreachable(self) -> None:
        """What the node-lifecycle controller would do once the kubelet stops posting."""
        current = await self.api.get_node(self.node.name)
        if current is None:
            return
        await self.api.patch_node_status(
            self.node.name,
            {"conditions": node_conditions(False, current.get("status"), rfc3339())},
        )
        taints = without_system_taints(current.get("spec", {}).get("taints") or [])
        taints.append({"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "timeAdded": rfc3339()})
        await self.api.patch_node(self.node.name, {"spec": {"taints": taints}})

    async def delete(self) -> None:
        await self.api.delete_node(self.node.name)
