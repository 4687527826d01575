"""Loopback addressing: each node owns a /24 of the cluster's pod network.

Node `i` of a 127.C.0.0/16 pod network is reached at 127.C.i.1 (its InternalIP, where its kubelet
API listens) and hands its Pods 127.C.i.2 to 127.C.i.254. Linux routes all of 127.0.0.0/8 to the
loopback device, so every Pod can bind its real container ports on an address of its own, as
with a real CNI, without any network setup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from localcluster.kubelet.config import KubeletConfig


@dataclass(frozen=True)
class NodeNetwork:
    """A node's /24: its own address and the range its Pods get."""

    subnet: ipaddress.IPv4Network

    @property
    def node_ip(self) -> str:
        return str(self.subnet[1])

    @property
    def pod_cidr(self) -> str:
        return str(self.subnet)

    def pod_ips(self) -> list[str]:
        """Pod addresses in handing-out order: .2 to .254."""
        return [str(self.subnet[i]) for i in range(2, 255)]


def node_networks(config: KubeletConfig) -> dict[str, NodeNetwork]:
    """The /24 of each configured node, by node name."""
    subnets = list(config.pod_network.subnets(new_prefix=24))
    return {
        node.name: NodeNetwork(subnets[config.subnet_index(i)])
        for i, node in enumerate(config.nodes)
    }


@dataclass
class PodIpAllocator:
    """Hands out a node's Pod IPs, round-robin so that a freed address is not reused at once.

    Reuse right away is legal but confusing: a client still talking to the old Pod would reach
    the new one. Real IPAM plugins (host-local) also walk forward from the last address given.
    """

    network: NodeNetwork
    by_pod: dict[str, str] = field(default_factory=dict)
    _cursor: int = 0

    def restore(self, assignments: Iterable[tuple[str, str]]) -> None:
        """Re-registers (pod uid, ip) pairs found in a checkpoint or in Pod statuses."""
        candidates = set(self.network.pod_ips())
        for uid, ip in assignments:
            if ip in candidates and ip not in self.by_pod.values():
                self.by_pod[uid] = ip

    def allocate(self, pod_uid: str) -> str | None:
        """The Pod's address (the same one on every call), or None when the range is full."""
        if pod_uid in self.by_pod:
            return self.by_pod[pod_uid]
        ips = self.network.pod_ips()
        used = set(self.by_pod.values())
        for step in range(len(ips)):
            index = (self._cursor + step) % len(ips)
            if ips[index] not in used:
                self._cursor = index + 1
                self.by_pod[pod_uid] = ips[index]
                return ips[index]
        return None

    def release(self, pod_uid: str) -> None:
        self.by_pod.pop(pod_uid, None)
