"""The requester stub: what runs in every requester Pod (contracts §6).

It holds the Pod's GPUs on the scheduler's behalf and tells the controller which they are; the
controller flips its readiness and relays vLLM's log to its stdout. Public surface: the config,
`serve_requester` (many stubs per process, for benchmarks) and the CLI `fma-requester`.
"""

from launcher.requester.gpus import FixedGpus, GpuError, Gpus, discover_gpus
from launcher.requester.server import (
    RequesterConfig,
    RequesterHandle,
    serve_requester,
)

__all__ = [
    "FixedGpus",
    "GpuError",
    "Gpus",
    "RequesterConfig",
    "RequesterHandle",
    "discover_gpus",
    "serve_requester",
]
