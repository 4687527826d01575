"""Running a stand-in: in-process (`serve_standin`, many per event loop) or as a process.

Start-up follows vLLM's order: the port is bound first, with SO_REUSEADDR as vLLM's
`setup_server` does (so a port another server listens on fails at once), but listens only when
the "engine" is up, after `startup_delay`. Until then a
client gets "connection refused", never a 503: the controller reads a refused connection as "not
up yet" (contracts §7), and the contract test checks that real vLLM behaves so too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final, TextIO

from launcher.requester.minihttp import HttpServer, Request
from localcluster.vllm_standin.app import build_router
from localcluster.vllm_standin.config import StandinConfig
from localcluster.vllm_standin.engine import StandinEngine
from localcluster.vllm_standin.vllm_options import VLLM_VERSION

_ROUTES: Final = (
    ("/health", "GET"),
    ("/ping", "GET, POST"),
    ("/version", "GET"),
    ("/v1/models", "GET"),
    ("/v1/completions", "POST"),
)
_DEV_ROUTES: Final = (("/sleep", "POST"), ("/wake_up", "POST"), ("/is_sleeping", "GET"))


@dataclass
class VllmLog:
    """Lines shaped like vLLM's (`(APIServer pid=N) INFO 11-23 04:40:00 [file] msg`)."""

    out: TextIO | None
    pid: int = field(default_factory=os.getpid)

    def __call__(self, level: str, message: str, source: str = "api_server.py") -> None:
        if self.out is None:
            return
        stamp = time.strftime("%m-%d %H:%M:%S")
        self._write(f"(APIServer pid={self.pid}) {level} {stamp} [{source}] {message}")

    def uvicorn(self, message: str) -> None:
        if self.out is not None:
            self._write(f"(APIServer pid={self.pid}) INFO:     {message}")

    def _write(self, line: str) -> None:
        assert self.out is not None
        self.out.write(line + "\n")
        self.out.flush()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bound, not listening: what vLLM holds while its engine starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@dataclass
class StandinHandle:
    """A stand-in whose port is bound; it listens once `listening` is set."""

    config: StandinConfig
    engine: StandinEngine
    server: HttpServer
    sock: socket.socket
    log: VllmLog
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    _starter: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def wait_listening(self) -> None:
        await self.listening.wait()

    async def close(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
        await self.server.close()
        self.sock.close()

    async def _start_after_delay(self) -> None:
        await asyncio.sleep(self.config.startup_delay)
        self.log("INFO", "Supported tasks: ['generate']", "entry.py")
        if self.config.dev_mode:
            self.log(
                "WARNING",
                "SECURITY WARNING: Development endpoints are enabled! "
                "This should NOT be used in production!",
                "__init__.py",
            )
        self.log("INFO", f"Starting vLLM server on {self.url}", "entry.py")
        self.log("INFO", "Available routes are:", "launcher.py")
        for path, methods in _ROUTES + (_DEV_ROUTES if self.config.dev_mode else ()):
            self.log("INFO", f"Route: {path}, Methods: {methods}", "launcher.py")
        await self.server.start(sock=self.sock)
        self.log.uvicorn(f"Started server process [{self.log.pid}]")
        self.log.uvicorn("Waiting for application startup.")
        self.log.uvicorn("Application startup complete.")
        self.listening.set()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def serve_standin(config: StandinConfig) -> StandinHandle:
    """Bind the port now (OSError if taken), listen after `startup_delay`, return at once."""
    log = VllmLog(config.log)
    log("INFO", f"vLLM stand-in (fma) emulating vLLM API server version {VLLM_VERSION}")
    log("INFO", f"non-default args: {config.non_default_args}", "utils.py")
    engine = StandinEngine(sleep_delay=config.sleep_delay, wake_delay=config.wake_delay, log=log)
    sock = bind_socket(config.host, config.port)

    def access(request: Request, status: int) -> None:
        if request.target.partition("?")[0] in config.access_log_skip:
            return
        line = f"{request.method} {request.target} {request.version}"
        log.uvicorn(f'{request.peer} - "{line}" {status} {_phrase(status)}')

    server = HttpServer(
        build_router(config, engine, VLLM_VERSION, log),
        "vllm-standin",
        server_header="uvicorn",
        access_log=access if config.access_log and config.log is not None else None,
    )
    handle = StandinHandle(config, engine, server, sock, log)
    handle._starter = asyncio.create_task(handle._start_after_delay())
    return handle
