"""The parts of vLLM's own interface that fma relies on (contracts §7).

Level-1 sleep needs `--enable-sleep-mode` on the command line and `VLLM_SERVER_DEV_MODE=1` in the
environment, which expose `/sleep`, `/wake_up` and `/is_sleeping`. The webhook adds both to a
provider, the launcher to each instance, the controller to a launcher Pod; the controller and the
launcher call the endpoints.
"""

from __future__ import annotations

from typing import Final

SLEEP_MODE_FLAG: Final = "--enable-sleep-mode"
NO_SLEEP_MODE_FLAG: Final = "--no-enable-sleep-mode"
DEV_MODE_ENV: Final = "VLLM_SERVER_DEV_MODE"
"""Set to `1`: enables the sleep endpoints."""

HEALTH_PATH: Final = "/health"
SLEEP_PATH: Final = "/sleep"
"""`POST`: level 1, weights to CPU memory, KV cache dropped."""
WAKE_UP_PATH: Final = "/wake_up"
IS_SLEEPING_PATH: Final = "/is_sleeping"
"""`GET`: `{"is_sleeping": bool}`."""
PROBED_PATHS: Final = (HEALTH_PATH, IS_SLEEPING_PATH)
"""What the launcher asks each of its instances every `--probe-interval`: an instance it starts
leaves these out of its access log (`--disable-access-log-for-endpoints`, unless the ISC's
options set it), or its log, which the requester's `kubectl logs` shows, would grow by a line
a second and the log relay would copy each one."""
COLLECTIVE_RPC_PATH: Final = "/collective_rpc"
"""`POST` (dev mode): runs a method on every worker; the swap path's `reload_weights`."""
RESET_PREFIX_CACHE_PATH: Final = "/reset_prefix_cache"
"""`POST` (dev mode): a stale prefix cache would answer from the old weights."""
MODELS_PATH: Final = "/v1/models"
COMPLETIONS_PATH: Final = "/v1/completions"
