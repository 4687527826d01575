"""The hollow kubelet: plays kubelet, container runtime and NVIDIA device plugin for virtual nodes.

Public surface: the configuration models, the launcher helpers for tests and the demo, and the
log reader. Everything else is internal to the package.
"""

from localcluster.kubelet.config import (
    BackoffConfig,
    ImageConfig,
    KubeletConfig,
    NodeConfig,
    Taint,
    dump_config,
    load_config,
)
from localcluster.kubelet.gpus import gpu_uuid
from localcluster.kubelet.launch import HollowKubeletHandle, hollow_kubelet, start_hollow_kubelet

__all__ = [
    "BackoffConfig",
    "HollowKubeletHandle",
    "ImageConfig",
    "KubeletConfig",
    "NodeConfig",
    "Taint",
    "dump_config",
    "gpu_uuid",
    "hollow_kubelet",
    "load_config",
    "start_hollow_kubelet",
]
