"""What every Pod worker shares: configuration, API access, back-off state, registries.

One explicit object instead of module globals, so each piece is visible where it is used and a
test can build its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.kubelet.backoff import Backoff
from localcluster.kubelet.config import KubeletConfig
from localcluster.kubelet.events import EventRecorder
from localcluster.kubelet.gpus import GpuAllocator
from localcluster.kubelet.kubeapi import KubeApi
from localcluster.kubelet.network import PodIpAllocator
from localcluster.kubelet.process import GroupRegistry

_CHECKPOINT_DELAY_S = 0.05


@dataclass
class Services:
    config: KubeletConfig
    config_path: Path
    state_dir: Path
    api: KubeApi
    events: EventRecorder
    registry: GroupRegistry
    gpus: GpuAllocator
    ips: dict[str, PodIpAllocator]  # by node name
    host_environ: Mapping[str, str]
    restart_backoff: Backoff = field(init=False)
    image_backoff: Backoff = field(init=False)
    _checkpoint_timer: asyncio.TimerHandle | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        restart, image = self.config.restart_backoff, self.config.image_pull_backoff
        self.restart_backoff = Backoff(restart.initial_seconds, restart.max_seconds)
        self.image_backoff = Backoff(image.initial_seconds, image.max_seconds)

    @property
    def checkpoint_path(self) -> Path:
        return self.state_dir / "checkpoint.json"

    def save_checkpoint(self) -> None:
        """GPU allocations and Pod IPs, written atomically soon after a change: the changes of
        the next 50 ms go into the same write (admitting 500 Pods would otherwise write the
        whole, growing file 500 times). Outside an event loop it is written at once."""
        if self._checkpoint_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_checkpoint()
            return
        self._checkpoint_timer = loop.call_later(_CHECKPOINT_DELAY_S, self.flush_checkpoint)

    def flush_checkpoint(self) -> None:
        """Writes the checkpoint now (a pending delayed write is folded in)."""
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
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
