"""The launcher's GPU map: GPU UUID → CUDA index, and where it comes from (contracts §5.3, §2.4).

Requests name GPUs by UUID (what the requester's scheduler-assigned devices report); vLLM wants
`CUDA_VISIBLE_DEVICES` indices. On a GPU node the map is read once from NVML. Without GPUs the
launcher runs in mock mode: the `gpu-map` ConfigMap entry of its node when `NODE_NAME` and
`NAMESPACE` are set (what the test clusters use), else an explicit map from `FMA_MOCK_GPUS`, else
the reference's `GPU-0` … `GPU-<n-1>`.

Unknown UUIDs are the client's mistake, so they are reported as such (HTTP 422 naming the unknown
and the known UUIDs) rather than as the reference's 409/500 (reference-differences C4).

NVML numbers GPUs in PCI bus order; CUDA, by default, fastest first. On a node with mixed GPUs the
two differ, and an instance given `CUDA_VISIBLE_DEVICES=<NVML index>` would run on another GPU
than the one its requester holds. So wherever fma sets `CUDA_VISIBLE_DEVICES` it also sets
`CUDA_DEVICE_ORDER=PCI_BUS_ID` (`child_env`); `bench/gpu_check.py` checks the agreement on a GPU.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from contract.objects import GPU_MAP

_log = logging.getLogger(__name__)


class UnknownGpuError(ValueError):
    """Some requested UUIDs are not in the map; the message names them and the known ones."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.known = list(known)
        known_text = ", ".join(self.known) if self.known else "none (this launcher has no GPUs)"
        super().__init__(
            f"gpu_uuids: unknown GPU UUID(s) {', '.join(self.unknown)}; known: {known_text}"
        )


@dataclass(frozen=True, slots=True)
class GpuMap:
    """UUID → index, plus where it came from (`nvml`, `configmap`, `env`, `mock`, `none`)."""

    indices: Mapping[str, int]
    source: str

    def visible_devices(self, uuids: Sequence[str]) -> str:
        """`CUDA_VISIBLE_DEVICES` for `uuids`, in the order given; raises `UnknownGpuError`."""
        unknown = [u for u in uuids if u not in self.indices]
        if unknown:
            raise UnknownGpuError(unknown, sorted(self.indices, key=self.indices.__getitem__))
        return ",".join(str(self.indices[u]) for u in uuids)

    @property
    def has_gpus(self) -> bool:
        return bool(self.indices)


CUDA_ORDER: Final = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
"""What makes CUDA's device numbers NVML's (and nvidia-smi's and the `gpu-map`'s)."""


def child_env(env_vars: Mapping[str, str]) -> dict[str, str]:
    """An instance's environment: with `CUDA_VISIBLE_DEVICES`, CUDA must count as NVML does.

    Only the child's environment gets it, not the stored VllmConfig, so the instance state on
    the wire stays the reference's (`CUDA_VISIBLE_DEVICES` added, nothing else). A user's own
    `CUDA_DEVICE_ORDER` is overridden: the indices are PCI-ordered whatever it says.
    """
    if "CUDA_VISIBLE_DEVICES" not in env_vars:
        return dict(env_vars)
    return {**env_vars, **CUDA_ORDER}


def parse_mapping_json(text: str) -> dict[str, int]:
    """A `gpu-map` entry: JSON object of UUID → non-negative integer index."""
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a GPU map must be a JSON object of UUID → index")
    out: dict[str, int] = {}
    for uuid, index in data.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"GPU {uuid!r}: index must be a non-negative integer, not {index!r}")
        out[str(uuid)] = index
    return out


def parse_mock_spec(spec: str) -> dict[str, int]:
    """`FMA_MOCK_GPUS`: a JSON object (UUID → index) or a comma list of UUIDs (index = position)."""
    text = spec.strip()
    if text.startswith("{"):
        return parse_mapping_json(text)
    uuids = [u.strip() for u in text.split(",") if u.strip()]
    return {u: i for i, u in enumerate(uuids)}


def mock_sequence(count: int) -> dict[str, int]:
    return {f"GPU-{i}": i for i in range(count)}


def from_nvml() -> GpuMap:
    """Real GPUs through NVML; an empty map (with a log line) where NVML is unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as err:  # NVMLError, or the library is missing: no GPUs here
        _log.info("NVML unavailable (%s); the launcher knows no GPUs", err)
        return GpuMap(indices={}, source="none")
    try:
        found: dict[str, int] = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
            found[uuid.decode() if isinstance(uuid, bytes) else str(uuid)] = index
        return GpuMap(indices=found, source="nvml")
    finally:
        pynvml.nvmlShutdown()


def from_configmap(node: str, namespace: str) -> dict[str, int] | None:
    """`gpu-map[node]` read through the Kubernetes API; None when it cannot be read or parsed."""
    try:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        api = kubernetes.client.CoreV1Api()
        configmap = api.read_namespaced_config_map(GPU_MAP, namespace)
        entry = (configmap.data or {}).get(node)
        if entry is None:
            _log.warning("ConfigMap %s/%s has no entry for node %s", namespace, GPU_MAP, node)
            return None
        return parse_mapping_json(entry)
    except Exception as err:  # any failure falls back, as in the reference
        _log.warning("cannot use ConfigMap %s/%s for node %s: %s", namespace, GPU_MAP, node, err)
        return None


def load(*, mock: bool, mock_count: int, env: Mapping[str, str] | None = None) -> GpuMap:
    """Chooses the map's source as described in the module docstring."""
    environ = os.environ if env is None else env
    spec = environ.get("FMA_MOCK_GPUS")
    if not mock and not spec:
        return from_nvml()
    node, namespace = environ.get("NODE_NAME"), environ.get("NAMESPACE")
    if node and namespace:
        mapping = from_configmap(node, namespace)
        if mapping is not None:
            return GpuMap(indices=mapping, source="configmap")
    if spec:
        return GpuMap(indices=parse_mock_spec(spec), source="env")
    return GpuMap(indices=mock_sequence(mock_count), source="mock")
