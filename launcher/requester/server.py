"""The requester stub's HTTP servers and inference proxy (contracts §6), runnable many to a process.

- probes (`PROBES_PORT`, 8080): `GET /ready` is 200 `OK\\n` once the controller said the server is
  ready, else 503; the requester Pod's readinessProbe points here, so a user's Service routes to
  the Pod only while its vLLM serves. `GET /healthz` is 200 while the process serves.
- SPI (`SPI_PORT`, 8081): what the controller calls (accelerators, memory, readiness, set-log,
  the proxy's target), plus `GET /healthz`.
- proxy (`FMA_SERVING_PORTS`, and the reference's `PROXY_PORT`, 8082): every connection is relayed
  byte for byte to the vLLM server the controller named with `PUT /v1/proxy/config` (see
  `proxy`). The user's Service selects this Pod and targets the vLLM container's ports, which the
  stub now holds; without the relay those connections would be refused.

Readiness stays the controller's flag alone: fma's controller sets the proxy target before it
relays readiness, and a reference controller, which never sets one, must still see the stub
become ready. The target is set once: a requester is bound to one server for its life, so a
different target is a controller bug, answered 409 rather than silently rerouting traffic.

`set-log` answers carry `X-Fma-Log-Length` (the bytes accepted so far), so a restarted controller
learns where to resume by posting an empty chunk at `startPos=0`.

Mutating SPI calls (`become-ready`, `become-unready`, `set-log`, `PUT /v1/proxy/config`) need the
controller's control token (`controlauth`; docs/architecture.md, "Control authentication"):
`from_env` refuses to build a configuration without the control CA bundle unless
`FMA_CONTROL_AUTH=off`, the switch for a reference controller, which sends none. Reads stay
open: they reveal nothing the Pod's spec does not.

`serve_requester` is the in-process API: a benchmark starts hundreds of stubs, each on its own
loopback IP, in one event loop.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract.requester import (
    ACCELERATORS_PATH,
    BECOME_READY_PATH,
    BECOME_UNREADY_PATH,
    LOG_LENGTH_HEADER,
    MEMORY_USAGE_PATH,
    PROBES_PORT,
    PROBES_PORT_ENV,
    PROXY_CONFIG_PATH,
    PROXY_PORT,
    PROXY_PORT_ENV,
    READY_PATH,
    SERVING_PORTS_ENV,
    SET_LOG_PATH,
    SPI_MAX_BODY_BYTES,
    SPI_PORT,
    SPI_PORT_ENV,
)
from controlauth import AuthError, Verifier, verifier_from_env
from jsonlog import fields
from launcher.requester.gpus import GPU_SOURCES, GpuError, Gpus, GpuSource, discover_gpus
from launcher.requester.logrelay import ByteSink, LogRelay
from launcher.requester.minihttp import Handler, HttpServer, Request, Response, Router, text
from launcher.requester.proxy import DIAL_TIMEOUT_SECONDS, Proxy, ProxyConfigError, parse_target

_log = logging.getLogger("fma.requester")

GPU_SOURCE_ENV = "FMA_REQUESTER_GPU_SOURCE"
SERVER_HEADER = "fma-requester"


@dataclass(frozen=True, kw_only=True)
class RequesterConfig:
    """Everything one stub needs; `from_env` reads what the reference reads, plus fma's extras.

    Port 0 picks a free port (tests, in-process benchmarks); `proxy_port=None` leaves out the
    reference's proxy listener. Colliding ports are refused here, with the setting to change,
    rather than at bind time with a bare "address in use"."""

    host: str = "0.0.0.0"
    probes_port: int = PROBES_PORT
    spi_port: int = SPI_PORT
    proxy_port: int | None = PROXY_PORT
    serving_ports: tuple[int, ...] = ()
    proxy_dial_timeout: float = DIAL_TIMEOUT_SECONDS
    gpus: Gpus
    control_auth: Verifier | None = None
    """Checks the controller's token on mutating SPI calls; None leaves them open."""
    log_sink: ByteSink | None = None
    threaded_log_writes: bool = True

    def __post_init__(self) -> None:
        _check_ports(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RequesterConfig:
        """POD_IP (else all interfaces), the ports, the GPU variables, the control CA; `overrides`
        (the command line's) replace fields before the ports are checked against each other."""
        env = os.environ if env is None else env
        source = env.get(GPU_SOURCE_ENV, "auto")
        if source not in GPU_SOURCES:
            raise ValueError(f"{GPU_SOURCE_ENV}={source!r}: want one of {', '.join(GPU_SOURCES)}")
        gpu_source: GpuSource = source
        values: dict[str, Any] = {
            "host": env.get("POD_IP") or "0.0.0.0",
            "probes_port": _port(env, PROBES_PORT_ENV, PROBES_PORT),
            "spi_port": _port(env, SPI_PORT_ENV, SPI_PORT),
            "proxy_port": _port(env, PROXY_PORT_ENV, PROXY_PORT),
            "serving_ports": _serving_ports(env),
            "gpus": discover_gpus(env, gpu_source),
            "control_auth": verifier_from_env(env),
        }
        return cls(**{**values, **overrides})


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ValueError(f"{name}={raw!r}: want a port number 0-65535")
    return int(raw)


def _serving_ports(env: Mapping[str, str]) -> tuple[int, ...]:
    """`FMA_SERVING_PORTS`: comma-separated, duplicates dropped; empty or absent means none."""
    raw = env.get(SERVING_PORTS_ENV, "")
    ports: list[int] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or not 1 <= int(item) <= 65535:
            raise ValueError(
                f"{SERVING_PORTS_ENV}={raw!r}: {item!r} is not a port 1-65535; "
                "want comma-separated ports such as 8000,8001"
            )
        if int(item) not in ports:
            ports.append(int(item))
    return tuple(ports)


def _check_ports(config: RequesterConfig) -> None:
    """Each of the stub's own listeners needs a port of its own, and a serving port (where the
    user's clients connect) may not be one of them."""
    own = {
        f"probes port ({PROBES_PORT_ENV}, --probes-port)": config.probes_port,
        f"SPI port ({SPI_PORT_ENV}, --spi-port)": config.spi_port,
        f"proxy port ({PROXY_PORT_ENV}, --proxy-port)": config.proxy_port,
    }
    taken: dict[int, str] = {}
    for name, port in own.items():
        if not port:  # None: no listener; 0: the kernel picks a free one
            continue
        if port in taken:
            raise ValueError(f"the {taken[port]} and the {name} are both {port}: move one")
        taken[port] = name
    for port in config.serving_ports:
        if port in taken:
            raise ValueError(
                f"{SERVING_PORTS_ENV} includes {port}, the stub's own {taken[port]}: the stub "
                f"listens there itself; serve vLLM on another port, or move the {taken[port]}"
            )


class RequesterState:
    """The ready flag, the log relay and the proxy (with its target): the stub's only state."""

    def __init__(self, config: RequesterConfig) -> None:
        self.config = config
        self.ready = False
        sink = config.log_sink if config.log_sink is not None else sys.stdout.buffer
        self.relay = LogRelay(sink, threaded=config.threaded_log_writes)
        self.proxy = Proxy(dial_timeout=config.proxy_dial_timeout)

    def authorize(self, request: Request) -> Response | None:
        """None if the call may proceed, else the 401 to send (nothing is changed then)."""
        verifier = self.config.control_auth
        if verifier is None:
            return None
        try:
            verifier.check(
                request.headers.get("authorization"), request.method, request.target, request.body
            )
        except AuthError as exc:
            _log.warning(
                "refused an unauthenticated call",
                extra=fields(
                    method=request.method, path=request.path, peer=request.peer, why=str(exc)
                ),
            )
            return _unauthorized(str(exc))
        return None


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

    router.add("GET", READY_PATH, ready)
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
        length = ((LOG_LENGTH_HEADER, str(verdict.accepted_after)),)
        return Response(verdict.status, verdict.message.encode(), headers=length)

    router.add("GET", ACCELERATORS_PATH, accelerators)
    router.add("GET", MEMORY_USAGE_PATH, memory)
    router.add("POST", BECOME_READY_PATH, set_ready(True))
    router.add("POST", BECOME_UNREADY_PATH, set_ready(False))
    router.add("POST", SET_LOG_PATH, set_log)
    _add_proxy_config(router, state)
    router.add("GET", "/healthz", _healthz)
    return router


def _add_proxy_config(router: Router, state: RequesterState) -> None:
    """`PUT` sets the proxy's target once (a repeat is a no-op, another target 409); `GET` reads
    it (404 while unset)."""
    proxy = state.proxy

    async def put(request: Request) -> Response:
        if (denied := state.authorize(request)) is not None:
            return denied
        try:
            target = parse_target(request.body)
        except ProxyConfigError as e:
            return text(400, f"{e}\n")
        if proxy.target is None:
            proxy.target = target
            _log.info(
                "proxy target set",
                extra=fields(event="proxy-config", address=target.address, port=target.port),
            )
        elif proxy.target != target:
            return text(
                409,
                f"the proxy already forwards to {proxy.target}; a requester serves one server "
                f"for its life, so it will not switch to {target}\n",
            )
        return _json(200, target.as_json())

    async def get(_: Request) -> Response:
        if proxy.target is None:
            return text(404, "no proxy target configured\n")
        return _json(200, proxy.target.as_json())

    router.add("PUT", PROXY_CONFIG_PATH, put)
    router.add("GET", PROXY_CONFIG_PATH, get)


@dataclass
class RequesterHandle:
    """A running stub: its state, its two servers, and the bound ports of everything."""

    state: RequesterState
    probes: HttpServer
    spi: HttpServer
    proxy_port: int | None = None
    """The reference's proxy listener's bound port (None when not configured)."""
    serving_ports: tuple[int, ...] = ()
    """The serving listeners' bound ports, in the configured order."""

    @property
    def probes_port(self) -> int:
        return self.probes.port

    @property
    def spi_port(self) -> int:
        return self.spi.port

    @property
    def proxy(self) -> Proxy:
        return self.state.proxy

    async def close(self) -> None:
        await self.probes.close()
        await self.spi.close()
        await self.state.proxy.close()


async def serve_requester(config: RequesterConfig) -> RequesterHandle:
    """Start the servers and the proxy's listeners (port 0 picks a free port) and return once
    all listen; if one cannot, close the others and raise (OSError)."""
    state = RequesterState(config)
    handle = RequesterHandle(
        state,
        HttpServer(_probes_router(state), "probes", SERVER_HEADER, SPI_MAX_BODY_BYTES),
        HttpServer(_spi_router(state), "spi", SERVER_HEADER, SPI_MAX_BODY_BYTES),
    )
    try:
        await handle.probes.start(host=config.host, port=config.probes_port)
        await handle.spi.start(host=config.host, port=config.spi_port)
        if config.proxy_port is not None:
            handle.proxy_port = await state.proxy.listen(config.host, config.proxy_port)
        for port in config.serving_ports:
            bound = await state.proxy.listen(config.host, port)
            handle.serving_ports = (*handle.serving_ports, bound)
    except BaseException:
        await handle.close()
        raise
    return handle
