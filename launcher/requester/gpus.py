"""Which GPUs this requester holds, and how much of their memory is in use.

The controller learns a requester's GPUs from `GET /v1/dual-pods/accelerators` and checks memory
before waking an instance (contracts §6.2). The reference asks `nvidia-smi`; we ask NVML through
pynvml (the library nvidia-smi itself uses) so that no binary has to be in the image, and read the
UUIDs once at start, as the reference does: a container's GPUs never change.

Without a GPU (the local cluster, CI) the UUIDs come from `NVIDIA_VISIBLE_DEVICES`, which the
hollow kubelet sets as the NVIDIA device plugin would: a comma list of UUIDs, `void`/`none`/empty
for none. `all` names no GPU in particular, so without NVML it is an error that says so.

Memory without a GPU is a double of `nvidia-smi --query-gpu=uuid,memory.used`: 0 MiB per GPU,
unless a test overrides it, so it can simulate a busy GPU:
- `FMA_REQUESTER_FAKE_MEMORY_MIB`: JSON object `{"<uuid>": <MiB>}`, read once at start;
- `FMA_REQUESTER_FAKE_MEMORY_FILE`: path of a JSON object of the same shape, read on every request
  (so a test can change it while the stub runs); an absent file means idle GPUs. Its values win.
UUIDs in an override that this requester does not hold are ignored, as nvidia-smi in the
container shows only its own GPUs. Values are MiB, as the reference returns (its doc says bytes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

_log = logging.getLogger(__name__)

GpuSource = Literal["auto", "nvml", "env"]
GPU_SOURCES: Final[tuple[GpuSource, ...]] = ("auto", "nvml", "env")
NO_GPUS: Final = "no GPUs found"
MEMORY_ENV: Final = "FMA_REQUESTER_FAKE_MEMORY_MIB"
MEMORY_FILE_ENV: Final = "FMA_REQUESTER_FAKE_MEMORY_FILE"
_MIB: Final = 1024 * 1024


class GpuError(Exception):
    """A failure the SPI reports as `500` with this message as the body."""


class Gpus(Protocol):
    """What the SPI server needs; both methods raise `GpuError`."""

    def accelerators(self) -> list[str]: ...

    def memory_used_mib(self) -> dict[str, int]: ...


def parse_visible_devices(value: str | None) -> tuple[tuple[str, ...], str | None]:
    """`NVIDIA_VISIBLE_DEVICES` → (UUIDs, problem). Pure, so every spelling is unit-tested."""
    if value is None:
        return (), None
    stripped = value.strip()
    if stripped.lower() in ("", "void", "none"):
        return (), None
    if stripped.lower() == "all":
        return (), (
            "NVIDIA_VISIBLE_DEVICES=all names no GPU in particular and NVML is not available, "
            "so this requester cannot tell which GPUs it holds; set it to a comma list of GPU "
            "UUIDs (as the NVIDIA device plugin does) or run where NVML works"
        )
    entries = [e.strip() for e in stripped.split(",") if e.strip()]
    bad = [e for e in entries if not e.startswith(("GPU-", "MIG-"))]
    if bad:
        return (), (
            f"NVIDIA_VISIBLE_DEVICES entries {bad} are not GPU UUIDs (GPU-... or MIG-...); "
            "without NVML only UUIDs can be reported"
        )
    return tuple(dict.fromkeys(entries)), None


def parse_memory_override(text: str, origin: str) -> dict[str, int]:
    """A JSON object of UUID → MiB; raises GpuError naming `origin` when it is not one."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise GpuError(f"{origin}: not JSON: {e}") from None
    if not isinstance(data, dict):
        raise GpuError(f'{origin}: want a JSON object {{"<uuid>": <MiB>}}, got {text[:80]!r}')
    out: dict[str, int] = {}
    for uuid, mib in data.items():
        if isinstance(mib, bool) or not isinstance(mib, int) or mib < 0:
            raise GpuError(f"{origin}: the value for {uuid} must be a whole number of MiB >= 0")
        out[uuid] = mib
    return out


@dataclass(frozen=True)
class FixedGpus:
    """GPUs named at start (from `NVIDIA_VISIBLE_DEVICES`), with the memory double above."""

    uuids: tuple[str, ...]
    problem: str | None = None
    memory_override: Mapping[str, int] = field(default_factory=dict)
    memory_override_problem: str | None = None
    memory_file: Path | None = None

    def accelerators(self) -> list[str]:
        if self.problem is not None:
            raise GpuError(self.problem)
        if not self.uuids:
            raise GpuError(NO_GPUS)
        return list(self.uuids)

    def memory_used_mib(self) -> dict[str, int]:
        uuids = self.accelerators()
        if self.memory_override_problem is not None:
            raise GpuError(self.memory_override_problem)
        used = {u: self.memory_override.get(u, 0) for u in uuids}
        if self.memory_file is not None:
            try:
                raw = self.memory_file.read_text()
            except FileNotFoundError:
                raw = "{}"
            except OSError as e:
                raise GpuError(f"{MEMORY_FILE_ENV}={self.memory_file}: {e}") from None
            from_file = parse_memory_override(raw, f"{MEMORY_FILE_ENV}={self.memory_file}")
            used.update({u: v for u, v in from_file.items() if u in used})
        return used


@dataclass(frozen=True)
class NvmlGpus:
    """GPUs as NVML sees them from inside this container (only the allocated ones)."""

    uuids: tuple[str, ...]

    def accelerators(self) -> list[str]:
        if not self.uuids:
            raise GpuError(NO_GPUS)
        return list(self.uuids)

    def memory_used_mib(self) -> dict[str, int]:
        import pynvml

        uuids = self.accelerators()
        try:
            return {u: _nvml_used_bytes(pynvml, u) // _MIB for u in uuids}
        except pynvml.NVMLError as e:
            raise GpuError(f"NVML: {e}") from None


def _nvml_used_bytes(pynvml: Any, uuid: str) -> int:
    """Used bytes as nvidia-smi reports them: the v2 query (excludes reserved memory) if any."""
    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    except pynvml.NVMLError:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return int(info.used)


def nvml_uuids() -> tuple[str, ...] | None:
    """The UUIDs NVML lists, in index order; None when NVML is not usable here."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # NVMLError subclasses, or no pynvml at all
        _log.debug("NVML is not available: %s", e)
        return None
    uuids = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        raw = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
        uuids.append(raw.decode() if isinstance(raw, bytes) else str(raw))
    return tuple(uuids)


def fixed_gpus_from_env(env: Mapping[str, str]) -> FixedGpus:
    uuids, problem = parse_visible_devices(env.get("NVIDIA_VISIBLE_DEVICES"))
    override: dict[str, int] = {}
    override_problem = None
    if env.get(MEMORY_ENV):
        try:
            override = parse_memory_override(env[MEMORY_ENV], MEMORY_ENV)
        except GpuError as e:
            override_problem = str(e)
    memory_file = Path(env[MEMORY_FILE_ENV]) if env.get(MEMORY_FILE_ENV) else None
    return FixedGpus(uuids, problem, override, override_problem, memory_file)


def discover_gpus(env: Mapping[str, str], source: GpuSource = "auto") -> Gpus:
    """NVML when it works (or when `source` insists), else `NVIDIA_VISIBLE_DEVICES`.

    With `source="nvml"` and no NVML, every query fails with the reason instead of quietly
    reporting the environment's view: the operator asked for real GPUs.
    """
    if source != "env":
        uuids = nvml_uuids()
        if uuids is not None:
            return NvmlGpus(uuids)
        if source == "nvml":
            return FixedGpus((), "NVML is not available in this container (source=nvml)")
    return fixed_gpus_from_env(env)


def nvml_total_mib(uuid: str) -> int:
    """Total memory of one GPU, MiB, as NVML (and nvidia-smi's `memory.total`) reports it.

    Not on the SPI yet (the controller takes a GPU's size from its Node's label); the device
    check (`bench/gpu_check.py`) compares it with nvidia-smi so that it can be."""
    import pynvml

    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
    return int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB


def nvml_process_memory_mib(uuid: str) -> dict[int, int]:
    """PID → MiB of each process with a CUDA context on one GPU, as NVML reports them.

    The per-process reading the memory gate would like for each sleeper. It is not used on the
    wire: in a container NVML names host PIDs, which the launcher's own PID namespace does not
    show, so the controller measures an instance by the rise of used memory instead
    (reference-differences B1). The device check reports whether PIDs match where it runs.
    A process NVML cannot size (`usedGpuMemory` None, e.g. under MIG) is left out.
    """
    import pynvml

    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid.encode())
    out: dict[int, int] = {}
    for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
        used = getattr(proc, "usedGpuMemory", None)
        if isinstance(used, int):
            out[int(proc.pid)] = used // _MIB
    return out
