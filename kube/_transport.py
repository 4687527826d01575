"""The connection pool under fma's `httpx` clients: aiohttp's, through `httpx-aiohttp`.

Why not httpx's own (httpcore): a controller keeps many connections open, to the apiserver and
to hundreds of peers (every requester stub, launcher and instance), and httpcore checks every
pooled connection on each request (`has_expired`, a `poll` of each idle socket), so its cost
per request grows with the pool. Without keep-alive that scan is gone, but every call then pays
a TCP connect and close. aiohttp keeps its idle connections per host and port, so a request
looks at the connections to its own peer only: measured here, a request through httpx on this
transport takes 0.32 ms of CPU with keep-alive against 0.91 ms through httpx's pool without it,
and a PATCH to the apiserver over TLS stops paying for the scan of every watch's connection.

Callers keep httpx's API (`httpx.AsyncClient`, `httpx.Auth`, `httpx.HTTPError`): the transport
maps aiohttp's errors to httpx's, and tests still replace it with `httpx.MockTransport`.
"""

from __future__ import annotations

import ssl
from typing import Final

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

KEEPALIVE_S: Final = 4.0
"""How long an idle connection to a peer is kept for reuse: under uvicorn's 5 s (the launcher,
vLLM), so that the client never picks a connection the server is closing at that moment."""

APISERVER_KEEPALIVE_S: Final = 30.0
"""The same for the apiserver, which closes no idle connection itself (client-go keeps them
90 s). Below the idle timeouts of the load balancers found in front of apiservers (60 s and
more), and long enough that a controller acting every few seconds does not pay a TLS handshake
per connection per burst: with 4 s, every hot bring-up of `bench/hot_path.py` opened its
apiserver connections again, 4% of the controller's CPU."""


def pooled_transport(
    *,
    max_connections: int,
    verify: ssl.SSLContext | bool = True,
    keepalive_s: float = KEEPALIVE_S,
) -> httpx.AsyncBaseTransport:
    """A transport keeping idle connections `keepalive_s`, at most `max_connections` in all.

    `verify`: the TLS trust and client certificate as an `ssl.SSLContext`, True for the
    system's trust store, False for none (an `httpx.AsyncClient`'s own `verify` is not used
    once a transport is given).
    """
    limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=keepalive_s)
    return _Transport(verify=verify, limits=limits, trust_env=False)


_CLEARER: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
)


class _Transport(AiohttpTransport):
    """`AiohttpTransport`, naming a refused connection `ConnectError` as httpx does.

    httpx-aiohttp 0.2 maps every `aiohttp.ClientConnectionError` to `httpx.ConnectTimeout`, so a
    stub that does not listen yet was reported as "ConnectTimeout: Cannot connect to host" in
    logs and in the requester's status; timeouts keep the library's mapping.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            cause = exc.__cause__
            for found, clearer in _CLEARER:
                if isinstance(cause, found):
                    if isinstance(exc, clearer):
                        raise
                    raise clearer(str(exc), request=request) from cause
            raise
