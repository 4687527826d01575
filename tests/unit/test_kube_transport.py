"""`kube.pooled_transport`: httpx's API on aiohttp's pool, as the controller's calls see it."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from kube import pooled_transport


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=pooled_transport(max_connections=4)) as client:
        return await client.get(url, timeout=httpx.Timeout(2.0))


def test_a_peer_that_does_not_listen_is_a_connect_error_not_a_timeout() -> None:
    """What a starting stub looks like; the requester's status quotes the error's name."""
    with pytest.raises(httpx.ConnectError) as caught:
        asyncio.run(_get(f"http://127.0.0.1:{_free_port()}/v1/dual-pods/accelerators"))
    assert not isinstance(caught.value, httpx.TimeoutException)


def test_a_peer_that_closes_without_answering_is_a_protocol_error() -> None:
    async def main() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(httpx.RemoteProtocolError):
                await _get(f"http://127.0.0.1:{port}/")

    asyncio.run(main())


def test_connections_are_kept_alive_and_reused() -> None:
    """The point of the transport: one connection for a peer's consecutive calls."""

    async def main() -> None:
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with (
            server,
            httpx.AsyncClient(transport=pooled_transport(max_connections=4)) as client,
        ):
            for _ in range(5):
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        assert connections == 1

    asyncio.run(main())
