"""The requester stub's wire: its ports, the environment the webhook gives it, its SPI paths.

The stub listens on three fixed ports of its own (probes, SPI, the reference's separate proxy
port) and on the serving ports of the vLLM container it replaced, where it proxies inference
traffic to the bound server. docs/contracts.md ("Requester") describes each item.
"""

from __future__ import annotations

from typing import Final

PROBES_PORT: Final = 8080
"""`GET /ready` for the requester's readinessProbe."""

SPI_PORT: Final = 8081
"""The controller's SPI (default; a requester may move it with the `admin-port` annotation)."""

PROXY_PORT: Final = 8082
"""The reference's separate proxy listener (`--proxy-port`), kept so its controller works."""

DEFAULT_VLLM_PORT: Final = 8000
"""vLLM's `--port` default: the serving port when the vLLM command line names none."""

RESERVED_PORTS: Final = frozenset({PROBES_PORT, SPI_PORT, PROXY_PORT})
"""Ports the stub itself listens on; a serving port may not be one of them."""

# --- Environment the webhook sets on the requester container ---------------------------------

PROBES_PORT_ENV: Final = "PROBES_PORT"
SPI_PORT_ENV: Final = "SPI_PORT"
PROXY_PORT_ENV: Final = "PROXY_PORT"
SERVING_PORTS_ENV: Final = "FMA_SERVING_PORTS"
"""Comma-separated serving ports (the replaced vLLM container's), proxied to the bound server."""

# --- SPI paths ----------------------------------------------------------------------------------

READY_PATH: Final = "/ready"
ACCELERATORS_PATH: Final = "/v1/dual-pods/accelerators"
MEMORY_USAGE_PATH: Final = "/v1/dual-pods/accelerator-memory-usage"
BECOME_READY_PATH: Final = "/v1/become-ready"
BECOME_UNREADY_PATH: Final = "/v1/become-unready"
SET_LOG_PATH: Final = "/v1/set-log"
PROXY_CONFIG_PATH: Final = "/v1/proxy/config"

SPI_MAX_BODY_BYTES: Final = 4 << 20
"""The largest request body the stub's probes and SPI servers read (4 MiB); larger: 413.

The biggest bodies are `set-log` chunks: fma's controller sends at most 256 KiB at a time, and a
launcher's log endpoint returns at most 1 MiB per read, so 4 MiB leaves room for any caller
while a stub (tens of MB resident) cannot be made to buffer an unbounded body."""

LOG_LENGTH_HEADER: Final = "X-Fma-Log-Length"
"""fma's addition to every `set-log` answer: how many log bytes the stub holds, so a restarted
controller resumes there instead of re-sending the whole log (a reference stub omits it)."""
