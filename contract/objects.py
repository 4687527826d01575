"""Names of Kubernetes objects and their parts that the wire fixes (contracts §2.4, §3).

The custom resources' group and version, the container names every requester, provider and
launcher Pod uses, the GPU resource, the `gpu-map` ConfigMap and the controllers' names (the
source of their Events and the field manager of their writes, which the sleeper budget reads).
"""

from __future__ import annotations

from typing import Final, Literal

GROUP: Final = "fma.llm-d.ai"
"""API group of InferenceServerConfig, LauncherConfig and LauncherPopulationPolicy."""
VERSION: Final = "v1alpha1"
ApiVersion = Literal["fma.llm-d.ai/v1alpha1"]
"""The custom resources' `apiVersion`, as a type (a pydantic field accepts only this value)."""
API_VERSION: Final[ApiVersion] = "fma.llm-d.ai/v1alpha1"

INFERENCE_SERVER: Final = "inference-server"
"""The main container of a requester (the stub), a direct provider (vLLM) and a launcher."""
REFLECTOR: Final = "state-change-reflector"
"""The reference's launcher sidecar (fma's controllers follow the launcher's watch instead)."""
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_MAP: Final = "gpu-map"
"""ConfigMap of GPU UUID → index per node (`data[<node>]` is a JSON object); direct mode."""

CONTROLLER_NAME: Final = "dual-pods-controller"
"""The dual-pods controller: its Events' source and its writes' field manager."""
POPULATOR_NAME: Final = "launcher-populator"
"""The launcher-populator: its Events' source and its writes' field manager."""
