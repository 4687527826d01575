"""The requester's TCP proxy carrying HTTP over real loopback sockets: keep-alive, streams, large
bodies, backpressure. Upstreams are written in the tests (see `test_requester_proxy_support`).

Everything (upstream, proxy, client) runs on one event loop, so each test can hold the upstream
at a chosen point (an `asyncio.Event`) and check what the client has seen by then: streamed
bytes must arrive before the rest is even written.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from launcher.requester.proxy import WRITE_HIGH_WATER_BYTES
from tests.unit.test_requester_proxy_support import (
    MAX_READ_BYTES,
    anyio_backend,  # noqa: F401 - a fixture, used by the anyio plugin
    close,
    connect,
    echo,
    eventually,
    proxy_to,
    read_head,
    read_request,
    request,
    response,
    upstream,
)

pytestmark = pytest.mark.anyio


# --- HTTP over the relay ------------------------------------------------------------------------


async def test_keep_alive_carries_many_requests_on_one_upstream_connection() -> None:
    connections = 0

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await echo(reader, writer)

    async with upstream(counting) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen)
        for i in range(5):
            writer.write(request("/v1/completions", b"prompt %d" % i))
            assert (await read_head(reader))[":status"] == "200"
            assert await reader.readexactly(len(b"prompt %d" % i)) == b"prompt %d" % i
        await close(writer)
        assert connections == 1
        assert proxy.stats.connections_total == 1
        await eventually(lambda: proxy.connections_open == 0, "the connection closed")
        assert proxy.stats.bytes_to_upstream == sum(
            len(request("/v1/completions", b"prompt %d" % i)) for i in range(5)
        )


@pytest.mark.parametrize("kind", ["chunked", "sse"])
async def test_streams_arrive_incrementally(kind: str) -> None:
    """Each piece reaches the client before the upstream writes the next one."""
    pieces = [b'data: {"token": %d}\n\n' % i for i in range(4)]
    gates = [asyncio.Event() for _ in pieces]

    def frame(piece: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(piece), piece) if kind == "chunked" else piece

    async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if kind == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for piece, gate in zip(pieces, gates, strict=True):
            writer.write(frame(piece))
            await gate.wait()  # held until the client has seen this piece
        writer.write(b"0\r\n\r\n" if kind == "chunked" else b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()

    async with upstream(streaming) as port, proxy_to(port) as (_, listen):
        reader, writer = await connect(listen)
        writer.write(request("/v1/completions", b'{"stream": true}'))
        await read_head(reader)
        for piece, gate in zip(pieces, gates, strict=True):
            async with asyncio.timeout(3):
                assert await reader.readexactly(len(frame(piece))) == frame(piece)
            gate.set()
        tail = b"0\r\n\r\n" if kind == "chunked" else b"data: [DONE]\n\n"
        async with asyncio.timeout(3):
            assert await reader.read() == tail  # then EOF: the upstream closed
        await close(writer)


async def test_ten_megabytes_each_way_byte_for_byte() -> None:
    payload = os.urandom(10 * 1024 * 1024)
    received: list[bytes] = []

    async def storing_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        assert req is not None
        received.append(req[1])
        writer.write(response(req[1][::-1]))
        await writer.drain()
        writer.close()

    async with upstream(storing_echo) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen)
        writer.write(request("/upload", payload))
        async with asyncio.timeout(30):
            await writer.drain()
            head = await read_head(reader)
            body = await reader.readexactly(int(head["content-length"]))
        assert received == [payload]
        assert body == payload[::-1]
        await close(writer)
        await eventually(lambda: proxy.connections_open == 0, "the connection closed")
        assert proxy.stats.bytes_to_client >= len(payload)


async def test_a_slow_client_holds_the_upstream_back() -> None:
    """Flow control: a client that does not read leaves the proxy holding about one buffer of
    the response, not all of it; once it reads, everything arrives."""
    size = 48 * 1024 * 1024  # well beyond what the four sockets' kernel buffers hold
    written = asyncio.Event()

    async def flooding(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"x" * size))
        await writer.drain()
        written.set()
        writer.close()

    async with upstream(flooding) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen, limit=64 * 1024)
        writer.write(request("/big"))
        await eventually(lambda: proxy.stats.bytes_to_client > 0, "bytes flowed")
        await asyncio.sleep(0.3)
        assert not written.is_set()  # the upstream is still blocked in drain()
        (client,) = proxy.open
        held = client.transport.get_write_buffer_size()
        assert held <= WRITE_HIGH_WATER_BYTES + MAX_READ_BYTES, held
        async with asyncio.timeout(30):
            head = await read_head(reader)
            assert len(await reader.readexactly(int(head["content-length"]))) == size
        await close(writer)
