"""The launcher's data: one instance, its process and what the launcher observed of it.

The wire shapes (the request body `VllmConfig`, the reported `InstanceState`) are
`contract.launcher`'s, shared with the controller.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.launcher import RESERVED_IDS, InstanceState, Phase, Status, VllmConfig


def validate_instance_id(instance_id: str) -> str | None:
    """A problem with a client-chosen ID, or None if it is usable."""
    if instance_id in RESERVED_IDS:
        return (
            f"instance id {instance_id!r} is reserved: GET /v2/vllm/instances/{instance_id} "
            "is the watch endpoint; choose another id"
        )
    if not instance_id.strip():
        return "instance id must not be empty"
    return None


def log_file_name(launcher_pid: int, instance_id: str) -> str:
    """The reference's `launcher-<pid>-vllm-<id>.log`, made safe for any ID."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)[:100]
    if safe != instance_id:
        safe += "-" + hashlib.sha256(instance_id.encode()).hexdigest()[:12]
    return f"launcher-{launcher_pid}-vllm-{safe}.log"


@dataclass(eq=False, kw_only=True)
class Instance:
    """One vLLM instance: its request, its process and what the launcher has observed."""

    instance_id: str
    config: VllmConfig
    port: int
    host: str
    log_path: Path
    created_at: float
    pid: int | None = None
    status: Status = "running"
    phase: Phase = "starting"
    revision: int = 0
    exit_code: int | None = None
    reason: str | None = None
    ready_seconds: float | None = None
    log_size: int = 0
    """Bytes in the log file when last looked at; growth is announced as `UPDATED`."""
    deleting: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    monitor: asyncio.Task[None] | None = None

    def state(self) -> InstanceState:
        """What the API reports of this instance."""
        return InstanceState(
            status=self.status,
            instance_id=self.instance_id,
            revision=self.revision,
            options=self.config.options,
            gpu_uuids=self.config.gpu_uuids,
            env_vars=self.config.env_vars,
            annotations=self.config.annotations,
            phase=self.phase,
            log_size=self.log_size,
            pid=self.pid,
            exit_code=self.exit_code,
            reason=self.reason,
        )

    def to_json(self) -> dict[str, Any]:
        """InstanceState on the wire: the reference's fields in its order, then fma's."""
        return self.state().to_json()
