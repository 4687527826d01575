"""A real Kubernetes node (kubelet, containerd, runc, CNI bridge, kube-proxy) for the local
cluster, with fake `nvidia.com/gpu` devices; see `localcluster.realnode.node` and the section
"The real node" of docs/local-cluster.md."""

from localcluster.realnode.host import NodeUnavailableError
from localcluster.realnode.node import (
    GPU_RESOURCE,
    PAUSE_IMAGE,
    REAL_NODE_KEY,
    RealNode,
    RealNodeSettings,
)
from localcluster.realnode.oci import busybox_image

__all__ = [
    "GPU_RESOURCE",
    "PAUSE_IMAGE",
    "REAL_NODE_KEY",
    "NodeUnavailableError",
    "RealNode",
    "RealNodeSettings",
    "busybox_image",
]
