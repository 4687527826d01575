"""HTTP probes of an instance's vLLM (contracts §7): is it healthy, is it asleep?

Connection errors are the normal answer of an instance that is still starting, so they are not
errors here: a probe returns "no" (`False` / `None`) and the monitor simply asks again.
"""

from __future__ import annotations

from typing import Final

import httpx

from contract import vllm

PROBE_TIMEOUT: Final = httpx.Timeout(2.0, connect=1.0)


class Prober:
    """One shared connection pool for all probes of all instances."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(timeout=PROBE_TIMEOUT)

    async def healthy(self, host: str, port: int) -> bool:
        try:
            response = await self._client.get(f"http://{host}:{port}{vllm.HEALTH_PATH}")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def sleeping(self, host: str, port: int) -> bool | None:
        """`/is_sleeping`'s answer; None when unknown (no dev endpoints, error, odd body)."""
        try:
            response = await self._client.get(f"http://{host}:{port}{vllm.IS_SLEEPING_PATH}")
            if response.status_code != 200:
                return None
            value = response.json().get("is_sleeping")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return value if isinstance(value, bool) else None

    async def close(self) -> None:
        await self._client.aclose()
