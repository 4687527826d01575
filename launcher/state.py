"""The launcher's data: the request body (VllmConfig) and one instance's state (contracts §5.1)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from launcher.phases import Phase

Status = Literal["running", "stopped"]
RESERVED_IDS: Final[frozenset[str]] = frozenset({"watch"})
"""IDs that `GET /v2/vllm/instances/<id>` could never reach (the watch route shadows them)."""


class VllmConfig(BaseModel):
    """The create body. Unknown fields are ignored, as FastAPI does by default in the reference."""

    model_config = ConfigDict(extra="ignore")

    options: str
    gpu_uuids: list[str] | None = None
    env_vars: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


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

    def to_json(self) -> dict[str, Any]:
        """InstanceState: the reference's fields in its order, then fma's additive ones."""
        out: dict[str, Any] = {
            "status": self.status,
            "instance_id": self.instance_id,
            "revision": self.revision,
            "options": self.config.options,
        }
        for name in ("gpu_uuids", "env_vars", "annotations"):
            value = getattr(self.config, name)
            if value is not None:
                out[name] = value
        out["phase"] = self.phase
        out["log_size"] = self.log_size
        if self.pid is not None:
            out["pid"] = self.pid
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.reason is not None:
            out["reason"] = self.reason
        return out
