"""The launcher's wire (contracts §5): its port, API paths, request body, instance state, events.

The launcher serves this API and the controller calls it; both use the models below, so the
shape of a `VllmConfig` and an `InstanceState` is declared once. fma's additive fields (`phase`,
`log_size`, `pid`, `exit_code`, `reason`, the `UPDATED` event) are ones a reference client
ignores; docs/contracts.md ("Launcher additions") lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

LAUNCHER_PORT: Final = 8001
"""The launcher API's port in every launcher Pod (`LauncherServicePort`, a fixed contract)."""

HEALTH_PATH: Final = "/health"
INSTANCES_PATH: Final = "/v2/vllm/instances"
WATCH_PATH: Final = INSTANCES_PATH + "/watch"

MAX_BODY_BYTES: Final = 1 << 20
"""The largest request body the launcher reads (1 MiB); a larger one is refused with 413.

Only `VllmConfig` bodies are read, and the controller's are a few KiB (an ISC's options, its
environment and annotations); the cap keeps a hostile or broken client from making the
launcher buffer an unbounded body in memory."""


def instance_path(instance_id: str) -> str:
    """`/v2/vllm/instances/<id>`: PUT creates, GET reads, DELETE stops and removes."""
    return f"{INSTANCES_PATH}/{instance_id}"


def log_path(instance_id: str) -> str:
    """`/v2/vllm/instances/<id>/log`: the instance's log, `Range: bytes=N-` honoured."""
    return f"{instance_path(instance_id)}/log"


RESERVED_IDS: Final[frozenset[str]] = frozenset({"watch"})
"""IDs that `GET /v2/vllm/instances/<id>` could never reach (the watch route shadows them)."""

# --- Instance annotations (the controller's notes in the VllmConfig it sends, §4.4) -------------

ISC_NAME_ANNOTATION: Final = "isc-name"
"""The ISC an instance was created for."""
INFERENCE_PORT_ANNOTATION: Final = "inference-port"
"""The instance's vLLM port, decimal."""

# --- Instance state and events ------------------------------------------------------------------

Status = Literal["running", "stopped"]
"""The reference's `status`: is the child process alive?"""
Phase = Literal["starting", "ready", "sleeping", "failed"]
"""fma's `phase`: starting → ready ⇄ sleeping; failed is terminal (launcher/phases.py)."""
PHASES: Final[tuple[Phase, ...]] = ("starting", "ready", "sleeping", "failed")

EventType = Literal["CREATED", "STOPPED", "DELETED", "UPDATED"]
REFERENCE_EVENT_TYPES: Final[frozenset[str]] = frozenset({"CREATED", "STOPPED", "DELETED"})
"""The reference's event types; `UPDATED` (fma's) goes only to watchers that ask for it."""
UPDATED: Final = "UPDATED"


class VllmConfig(BaseModel):
    """The body of `POST /v2/vllm/instances` and `PUT /v2/vllm/instances/<id>` (§5.1).

    Unknown fields are ignored, as FastAPI does by default in the reference.
    """

    model_config = ConfigDict(extra="ignore")

    options: str
    gpu_uuids: list[str] | None = None
    env_vars: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire object, absent fields left out, in the reference's field order."""
        return self.model_dump(exclude_none=True)


_IDENTITY: Final = ("status", "instance_id", "revision")


class InstanceState(VllmConfig):
    """One instance as the launcher reports it: list, GET, DELETE and watch events (§5.1).

    The VllmConfig it was created with (with `CUDA_VISIBLE_DEVICES` added to `env_vars` when
    GPUs were named), then fma's additions. Every field has a default so that a reader can take
    what a launcher sent even when some field is missing or odd (`from_wire`).
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    options: str = ""
    status: Status = "stopped"
    instance_id: str = ""
    revision: int = -1
    phase: Phase | None = None
    """fma launchers only; None from a reference launcher."""
    log_size: int | None = None
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def isc_name(self) -> str | None:
        """The `isc-name` annotation, None when absent or empty."""
        return (self.annotations or {}).get(ISC_NAME_ANNOTATION) or None

    @property
    def port(self) -> int | None:
        """The `inference-port` annotation, None when absent or not a number."""
        text = (self.annotations or {}).get(INFERENCE_PORT_ANNOTATION) or ""
        return int(text) if text.isdigit() else None

    def to_json(self) -> dict[str, Any]:
        """The wire object: the reference's fields in its order, then fma's; absent ones left
        out."""
        data = self.model_dump(exclude_none=True)
        ordered = {name: data.pop(name) for name in _IDENTITY}
        return ordered | data

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> InstanceState:
        """Read what a launcher sent; a field that does not validate counts as absent.

        A controller must not lose sight of an instance over one odd field (a newer launcher's
        phase, say), so this never raises.
        """
        data = dict(raw)
        while True:
            try:
                return cls.model_validate(data)
            except ValidationError as error:
                bad = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
                if not bad & data.keys():
                    return cls()
                data = {k: v for k, v in data.items() if k not in bad}
