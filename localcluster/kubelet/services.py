"""What every Pod worker shares: configuration, API access, back-off state, registries.

One explicit object instead of module globals, so each piece is visible where it is used and a
test can build its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from localcluster.kubelet.backoff import Backoff
from localcluster.kubelet.config import KubeletConfig
from localcluster.kubelet.events import EventRecorder
from localcluster.kubelet.gpus import GpuAllocator
from localcluster.kubelet.kubeapi import KubeApi
from localcluster.kubelet.network import PodIpAllocator
from localcluster.kubelet.process import GroupRegistry


@dataclass
class Services:
    config: KubeletConfig
    config_path: Path
    state_dir: Path
    api: KubeApi
    events: EventRecorder
    http: httpx.AsyncClient
    registry: GroupRegistry
    gpus: GpuAllocator
    ips: dict[str, PodIpAllocator]  # by node name
    host_environ: Mapping[str, str]
    restart_backoff: Backoff = field(init=False)
    image_backoff: Backoff = field(init=False)

    def __post_init__(self) -> None:
        restart, image = self.config.restart_backoff, self.config.image_pull_backoff
        self.restart_backoff = Backoff(restart.initial_seconds, restart.max_seconds)
        self.image_backoff = Backoff(image.initial_seconds, image.max_seconds)

    @property
    def checkpoint_path(self) -> Path:
        return self.state_dir / "checkpoint.json"

    def save_checkpoint(self) -> None:
        """GPU allocations and Pod IPs, written atomically after every change."""
        data: dict[str, Any] = {
            "gpus": self.gpus.to_checkpoint(),
            "podIPs": {uid: ip for alloc in self.ips.values() for uid, ip in alloc.by_pod.items()},
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.checkpoint_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data
