"""Helpers of the proxy tests: small upstreams, a proxy on a free port, raw clients.

(Named `test_*` only to sit with the tests it serves; it holds none.)
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

import pytest

from launcher.requester.proxy import Proxy, ProxyTarget

LOCAL = "127.0.0.1"
MAX_READ_BYTES = 256 * 1024  # the most one read of asyncio's transports returns (uvloop: 64 KiB)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOOPS = [
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]
"""Both loops for `anyio_backend`: the stub runs on asyncio's, but the proxy must not depend on
its transports' quirks (uvloop reads before `connection_made` returns, and keeps unsent data
by reference)."""


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Every relay test runs on both loops (import this fixture into the test module)."""
    return request.param  # type: ignore[no-any-return]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[int]:
    """A server on a free loopback port running `handler` per connection; yields the port.
    On exit, handlers still running are cancelled and their sockets closed."""
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            tasks.discard(task)
            writer.transport.abort()

    server = await asyncio.start_server(tracked, LOCAL, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@asynccontextmanager
async def proxy_to(port: int | None, **kwargs: float) -> AsyncIterator[tuple[Proxy, int]]:
    proxy = Proxy(**kwargs)
    if port is not None:
        proxy.target = ProxyTarget(LOCAL, port)
    listen_port = await proxy.listen(LOCAL, 0)
    try:
        yield proxy, listen_port
    finally:
        await proxy.close()


async def connect(
    port: int, limit: int = 16 * 1024 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client; its StreamReader stops reading the socket once it holds twice `limit`."""
    return await asyncio.open_connection(LOCAL, port, limit=limit)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


async def eventually(check: Callable[[], bool], what: str, seconds: float = 3.0) -> None:
    """Poll `check` on the loop (connection_lost callbacks need a few iterations)."""
    try:
        async with asyncio.timeout(seconds):
            while not check():  # noqa: ASYNC110 - the conditions are counters, not events
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting until {what}") from None


async def read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    headers[":status"] = lines[0].split(" ")[1]
    return headers


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """(request line, body) by Content-Length, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return head.split(b"\r\n", 1)[0].decode(), await reader.readexactly(length)


def response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def request(path: str, body: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        len(body),
        body,
    )


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive HTTP: answers each request with its own body."""
    while (req := await read_request(reader)) is not None:
        writer.write(response(req[1]))
        await writer.drain()
    writer.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """A real TCP reset (asyncio's abort alone sends FIN)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextmanager
def hanging_port() -> Iterator[int]:
    """A listener whose accept queue is full: it drops SYNs, so connecting to it hangs."""
    with socket.socket() as full:
        full.bind((LOCAL, 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):  # Linux accepts backlog + 1; the rest are left connecting
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex((LOCAL, port))
            yield port
        finally:
            for filler in fillers:
                filler.close()
