"""The controller's HTTP calls to requesters (SPI), launchers and instances, with their metric.

Every call is observed in `fma_http_latency_seconds{purpose, method, exported_namespace,
isc_name, status_code}` (contracts §12; `status_code` "0" when no response came). Any status of
300 or more is a failure (contracts §5.8) unless the caller accepts it (a DELETE's 404).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Final

import httpx

from contract.auth import MUTATING_METHODS
from controlauth import ControlToken, Signer
from controller.observability import ControllerMetrics
from kube import pooled_transport

_BODY_CHARS: Final = 300


class CallError(Exception):
    """A failed call; the message names the request and what went wrong."""


class RefusedError(CallError):
    """The peer answered that the request cannot work as written: retrying it cannot help."""


def answer_text(response: httpx.Response) -> str:
    """The start of a response's body, for messages."""
    return response.text[:_BODY_CHARS].strip()


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """Timeouts (seconds) of the controller's HTTP calls."""

    connect_s: float = 2.0
    launcher_s: float = 30.0
    """Launcher API calls (contracts §5.8)."""
    requester_s: float = 10.0
    """The requester's SPI."""
    query_s: float = 5.0
    """`/is_sleeping` of an instance or direct provider."""
    wake_s: float = 300.0
    """`/wake_up` copies the weights back to the GPU: seconds for big models."""
    sleep_s: float = 120.0


def peer_call_client(*, max_connections: int = 1000) -> httpx.AsyncClient:
    """The client of `PeerCalls` and of the log relay, on `kube.pooled_transport`.

    A hot actuation makes about ten calls to two peers (the requester's stub and the launcher
    or provider); kept-alive connections save each call a TCP connect and close, and aiohttp's
    pool, unlike httpcore's, does not look at the idle connections to every other peer on each
    request. The default timeout is the log relay's; `PeerCalls` gives each call its own.
    """
    return httpx.AsyncClient(
        transport=pooled_transport(max_connections=max_connections),
        timeout=httpx.Timeout(10.0, connect=2.0),
        trust_env=False,
    )


@dataclass(eq=False)
class PeerCalls:
    """One shared connection pool for every peer; see the module docstring."""

    http: httpx.AsyncClient
    metrics: ControllerMetrics
    _: KW_ONLY
    namespace: str
    signer: Signer | None = None
    """Signs every mutating call to fma's own peers; None: `--control-auth off`."""

    def auth_for(self, method: str, audience: str | None) -> ControlToken | None:
        """The control token of a call to the Pod `audience` (None: a call to vLLM itself)."""
        if self.signer is None or audience is None or method not in MUTATING_METHODS:
            return None
        return ControlToken(self.signer, audience)

    async def call(
        self,
        purpose: str,
        method: str,
        url: str,
        *,
        timeout_s: float,
        connect_s: float,
        isc_name: str = "",
        body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
        audience: str | None = None,
    ) -> httpx.Response:
        """One request; raises `CallError` on a transport error or an unaccepted status.

        `audience` is the UID of the fma Pod (launcher, requester) the call drives: a mutating
        call then carries its control token (contracts §14)."""
        started = time.monotonic()
        status = "0"
        try:
            response = await self.http.request(
                method,
                url,
                json=body,
                content=content,
                headers=headers,
                timeout=httpx.Timeout(timeout_s, connect=connect_s),
                auth=self.auth_for(method, audience) or httpx.USE_CLIENT_DEFAULT,
            )
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            raise CallError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.http_latency_seconds.labels(
                purpose, method, self.namespace, isc_name, status
            ).observe(time.monotonic() - started)
        if response.status_code >= 300 and response.status_code not in accept:
            raise CallError(f"{method} {url}: HTTP {response.status_code}: {answer_text(response)}")
        return response


def json_body(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise CallError(f"GET {url}: the answer is not JSON: {response.text[:100]!r}") from exc
