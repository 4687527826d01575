"""The controller's HTTP endpoint: `/metrics`, `/healthz`, `/readyz` on `--metrics-port` (8002).

Why a few dozen lines of asyncio rather than uvicorn: three GET endpoints do not need a web
framework, and uvicorn's `serve()` takes over SIGINT/SIGTERM, which belong to the controller's
own shutdown (release the lease, stop the workers). The server speaks enough HTTP/1.1 for
Prometheus, the kubelet's probes and curl: one request per connection, answered with
`Connection: close`. Scrapes render on the event loop; the registry is small, so a scrape
costs about a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Final
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller.observability._health import HealthChecks
from controller.observability._metrics import ControllerMetrics, InformerCollector, InformerState

_log = logging.getLogger(__name__)

_MAX_HEAD: Final = 16 * 1024
_READ_TIMEOUT_S: Final = 10.0
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8002


@dataclass(eq=False)
class ObservabilityServer:
    """Serves the registry and the two check sets; `start` then `close`, or `serve`."""

    registry: CollectorRegistry
    _: KW_ONLY
    liveness: HealthChecks = field(default_factory=HealthChecks)
    readiness: HealthChecks = field(default_factory=HealthChecks)
    settings: ServerSettings = field(default_factory=ServerSettings)
    _server: asyncio.Server | None = field(default=None, init=False)

    @property
    def port(self) -> int:
        """The bound port (useful with `port=0`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.settings.host, self.settings.port
        )
        _log.info("metrics and health on %s:%d", self.settings.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve(self) -> None:
        """Start, and serve until cancelled."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = self._respond(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body = 400, "text/plain; charset=utf-8", b"bad request\n"
        except ConnectionError:
            writer.close()
            return
        header = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(header.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[int, str, bytes]:
        text = "text/plain; charset=utf-8"
        try:
            method, target, _version = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            return 400, text, b"bad request\n"
        url = urlsplit(target)
        routes: dict[str, Callable[[bool], tuple[int, str, bytes]]] = {
            "/metrics": lambda _verbose: (200, CONTENT_TYPE_LATEST, generate_latest(self.registry)),
            "/healthz": lambda verbose: _checks(self.liveness, verbose),
            "/livez": lambda verbose: _checks(self.liveness, verbose),
            "/readyz": lambda verbose: _checks(self.readiness, verbose),
        }
        route = routes.get(url.path)
        if route is None:
            return 404, text, b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, text, b"method not allowed\n"
        status, content_type, body = route("verbose" in parse_qs(url.query, keep_blank_values=True))
        return status, content_type, b"" if method == "HEAD" else body


def _checks(checks: HealthChecks, verbose: bool) -> tuple[int, str, bytes]:
    healthy, body = checks.report(verbose=verbose)
    return 200 if healthy else 503, "text/plain; charset=utf-8", body.encode()


def informer_server(
    metrics: ControllerMetrics,
    informers: Callable[[], Mapping[str, InformerState]],
    settings: ServerSettings,
) -> ObservabilityServer:
    """The server of a process that runs informers: `metrics`, the informers' state at scrape
    time, and empty check sets for the caller's liveness and readiness checks."""
    metrics.registry.register(InformerCollector(informers))
    return ObservabilityServer(metrics.registry, settings=settings)
