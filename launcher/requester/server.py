"""The requester stub's two HTTP servers (contracts §6), runnable many to a process.

- probes (`PROBES_PORT`, 8080): `GET /ready` is 200 `OK\\n` once the controller said the server is
  ready, else 503; the requester Pod's readinessProbe points here, so a user's Service routes to
  the Pod only while its vLLM serves. `GET /healthz` is 200 while the process serves.
- SPI (`SPI_PORT`, 8081): what the controller calls (accelerators, memory, readiness, set-log),
  plus `GET /healthz`.

Mutating SPI calls are open by default, as in the reference, so an unmodified controller works.
With a token configured (known-gaps D1) they need `Authorization: Bearer <token>`; reads stay
open because they reveal nothing a Pod's spec does not. A token file is re-read on every call,
so a rotated Secret or projected token takes effect without a restart; a configured file that
cannot be read refuses every mutating call (fail closed).

`serve_requester` is the in-process API: a benchmark starts hundreds of stubs, each on its own
loopback IP, in one event loop.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jsonlog import fields
from launcher.requester.gpus import GPU_SOURCES, GpuError, Gpus, GpuSource, discover_gpus
from launcher.requester.logrelay import ByteSink, LogRelay
from launcher.requester.minihttp import Handler, HttpServer, Request, Response, Router, text

_log = logging.getLogger("fma.requester")

TOKEN_ENV = "FMA_REQUESTER_TOKEN"
TOKEN_FILE_ENV = "FMA_REQUESTER_TOKEN_FILE"
GPU_SOURCE_ENV = "FMA_REQUESTER_GPU_SOURCE"
SERVER_HEADER = "fma-requester"


@dataclass(frozen=True)
class TokenSource:
    """A bearer token given inline or as a file (a mounted Secret or projected token)."""

    value: str | None = None
    path: Path | None = None

    def current(self) -> str | None:
        """The token to demand; None means "auth is off". Raises OSError if the file fails."""
        if self.path is not None:
            token = self.path.read_text().strip()
            if not token:
                raise OSError(f"{self.path} is empty")
            return token
        return self.value or None


@dataclass(frozen=True, kw_only=True)
class RequesterConfig:
    """Everything one stub needs; `from_env` reads what the reference reads, plus fma's extras."""

    host: str = "0.0.0.0"
    probes_port: int = 8080
    spi_port: int = 8081
    gpus: Gpus
    token: TokenSource = field(default_factory=TokenSource)
    log_sink: ByteSink | None = None
    threaded_log_writes: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RequesterConfig:
        """POD_IP (else all interfaces), PROBES_PORT, SPI_PORT, the GPU variables, the token."""
        env = os.environ if env is None else env
        source = env.get(GPU_SOURCE_ENV, "auto")
        if source not in GPU_SOURCES:
            raise ValueError(f"{GPU_SOURCE_ENV}={source!r}: want one of {', '.join(GPU_SOURCES)}")
        gpu_source: GpuSource = source
        token_file = env.get(TOKEN_FILE_ENV)
        return cls(
            host=env.get("POD_IP") or "0.0.0.0",
            probes_port=_port(env, "PROBES_PORT", 8080),
            spi_port=_port(env, "SPI_PORT", 8081),
            gpus=discover_gpus(env, gpu_source),
            token=TokenSource(env.get(TOKEN_ENV), Path(token_file) if token_file else None),
        )


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ValueError(f"{name}={raw!r}: want a port number 0-65535")
    return int(raw)


class RequesterState:
    """The ready flag and the log relay: the stub's only state."""

    def __init__(self, config: RequesterConfig) -> None:
        self.config = config
        self.ready = False
        sink = config.log_sink if config.log_sink is not None else sys.stdout.buffer
        self.relay = LogRelay(sink, threaded=config.threaded_log_writes)

    def authorize(self, request: Request) -> Response | None:
        """None if the call may proceed, else the 401 to send."""
        try:
            token = self.config.token.current()
        except OSError as e:
            _log.error("token file unreadable; refusing", extra=fields(error=str(e)))
            return _unauthorized("the requester's token is not readable; see its log")
        if token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return None
        return _unauthorized("a valid bearer token is required")


def _unauthorized(message: str) -> Response:
    return Response(401, f"{message}\n".encode(), headers=(("WWW-Authenticate", "Bearer"),))


def _json(status: int, value: object) -> Response:
    return Response(
        status, json.dumps(value, separators=(",", ":")).encode() + b"\n", "application/json"
    )


def _probes_router(state: RequesterState) -> Router:
    router = Router()

    async def ready(_: Request) -> Response:
        return text(200, "OK\n") if state.ready else text(503, "Service Unavailable\n")

    router.add("GET", "/ready", ready)
    router.add("GET", "/healthz", _healthz)
    return router


async def _healthz(_: Request) -> Response:
    return text(200, "ok\n")


def _spi_router(state: RequesterState) -> Router:
    router = Router()
    gpus = state.config.gpus

    async def accelerators(_: Request) -> Response:
        try:
            return _json(200, gpus.accelerators())
        except GpuError as e:
            return text(500, f"{e}\n")

    async def memory(_: Request) -> Response:
        try:
            return _json(200, gpus.memory_used_mib())
        except GpuError as e:
            return text(500, f"{e}\n")

    def set_ready(value: bool) -> Handler:
        async def handler(request: Request) -> Response:
            if (denied := state.authorize(request)) is not None:
                return denied
            if state.ready != value:
                _log.info("readiness changed", extra=fields(event="ready", ready=value))
            state.ready = value
            return text(200, "OK\n")

        return handler

    async def set_log(request: Request) -> Response:
        if (denied := state.authorize(request)) is not None:
            return denied
        verdict = await state.relay.offer(request.query_first("startPos"), request.body)
        if verdict.status != 200:
            _log.warning(
                "set-log refused",
                extra=fields(
                    event="set-log", status=verdict.status, reason=verdict.message.strip()
                ),
            )
        return text(verdict.status, verdict.message)

    router.add("GET", "/v1/dual-pods/accelerators", accelerators)
    router.add("GET", "/v1/dual-pods/accelerator-memory-usage", memory)
    router.add("POST", "/v1/become-ready", set_ready(True))
    router.add("POST", "/v1/become-unready", set_ready(False))
    router.add("POST", "/v1/set-log", set_log)
    router.add("GET", "/healthz", _healthz)
    return router


@dataclass
class RequesterHandle:
    """A running stub: its state, its two servers and their bound ports."""

    state: RequesterState
    probes: HttpServer
    spi: HttpServer

    @property
    def probes_port(self) -> int:
        return self.probes.port

    @property
    def spi_port(self) -> int:
        return self.spi.port

    async def close(self) -> None:
        await self.probes.close()
        await self.spi.close()


async def serve_requester(config: RequesterConfig) -> RequesterHandle:
    """Start both servers (port 0 picks a free port) and return once both listen."""
    state = RequesterState(config)
    probes = HttpServer(_probes_router(state), "probes", SERVER_HEADER)
    spi = HttpServer(_spi_router(state), "spi", SERVER_HEADER)
    await probes.start(host=config.host, port=config.probes_port)
    try:
        await spi.start(host=config.host, port=config.spi_port)
    except BaseException:
        await probes.close()
        raise
    return RequesterHandle(state, probes, spi)
