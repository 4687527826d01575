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
import orjson

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


class PeerHttp:
    """One request at a time straight to an httpx transport: `PeerCalls`' and the log relay's.

    `httpx.AsyncClient` runs each request through its pipeline (auth flow, redirects, cookies,
    event hooks, timeout merging) before the transport sees it; a peer call needs none of it,
    and skipping it saved 95 µs of CPU per call (185 against 280 µs, client and server in one
    process) at about six peer calls per hot actuation. Requests and responses stay httpx's, so
    callers and tests (an `httpx.MockTransport`) do not change.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout_s: float,
        connect_s: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: ControlToken | None = None,
    ) -> httpx.Response:
        """The whole answer; raises `httpx.HTTPError` (no response) as a client would."""
        timeouts = {"connect": connect_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        request = httpx.Request(
            method, url, content=content, headers=headers, extensions={"timeout": timeouts}
        )
        if auth is not None:
            auth.sign(request)
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> PeerHttp:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def peer_call_client(*, max_connections: int = 1000) -> PeerHttp:
    """The HTTP of `PeerCalls` and of the log relay, on `kube.pooled_transport`.

    A hot actuation makes about ten calls to two peers (the requester's stub and the launcher
    or provider); kept-alive connections save each call a TCP connect and close, and aiohttp's
    pool, unlike httpcore's, does not look at the idle connections to every other peer on each
    request.
    """
    return PeerHttp(pooled_transport(max_connections=max_connections))


@dataclass(eq=False)
class PeerCalls:
    """One shared connection pool for every peer; see the module docstring."""

    http: PeerHttp
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
        if body is not None:
            content = orjson.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            response = await self.http.request(
                method,
                url,
                content=content,
                headers=headers,
                timeout_s=timeout_s,
                connect_s=connect_s,
                auth=self.auth_for(method, audience),
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
