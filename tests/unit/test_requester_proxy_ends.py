"""The requester's TCP proxy at the ends of connections: half-close both ways, resets, a
server gone mid-stream, refusals (no target, a failed or hanging dial), shutdown, and leaks:
the proxy must end with no connection (and no file descriptor) left open.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from pathlib import Path

import pytest

from localcluster.processes import free_port
from tests.unit.test_requester_proxy_support import (
    LOCAL,
    anyio_backend,  # noqa: F401 - a fixture, used by the anyio plugin
    close,
    connect,
    echo,
    eventually,
    hanging_port,
    proxy_to,
    read_head,
    read_request,
    request,
    reset,
    upstream,
)

pytestmark = pytest.mark.anyio


# --- Half-close, resets, and leaks --------------------------------------------------------------


async def test_client_half_close_reaches_upstream_and_the_answer_still_comes_back() -> None:
    async def until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # returns only at EOF
        writer.write(b"got %d bytes then EOF" % len(data))
        await writer.drain()
        writer.close()

    async with upstream(until_eof) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen)
        writer.write(b"raw bytes, no HTTP")
        writer.write_eof()
        async with asyncio.timeout(3):
            assert await reader.read() == b"got 18 bytes then EOF"
        await close(writer)
        await eventually(lambda: proxy.connections_open == 0, "the connection closed")


async def test_server_half_close_reaches_client_which_can_still_send() -> None:
    late: list[bytes] = []

    async def closes_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        writer.write(b"bye")
        writer.write_eof()
        late.append(await reader.read())  # the client keeps talking after our EOF
        writer.close()

    async with upstream(closes_first) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen)
        writer.write(b"hello")
        async with asyncio.timeout(3):
            assert await reader.read() == b"bye"  # and EOF
        writer.write(b"still here")
        writer.write_eof()
        await eventually(lambda: late == [b"still here"], "the late bytes arrived")
        await eventually(lambda: proxy.connections_open == 0, "both directions ended: closed")
        await close(writer)


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_server_gone_mid_stream_ends_the_client_promptly(how: str) -> None:
    """A reset travels on as a reset (the client must not take a cut response for a whole one),
    a close as EOF; either way the proxy holds nothing afterwards."""

    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        if how == "reset":
            reset(writer)
        else:
            writer.close()

    async with upstream(dies) as port, proxy_to(port) as (proxy, listen):
        reader, writer = await connect(listen)
        writer.write(request("/v1/completions"))
        await read_head(reader)
        async with asyncio.timeout(3):
            if how == "reset":
                with pytest.raises(ConnectionResetError):
                    await reader.read()
            else:
                assert await reader.read() == b"5\r\nhello\r\n"  # then EOF
        await close(writer)
        await eventually(lambda: proxy.connections_open == 0, "no connection left")


async def test_client_reset_resets_the_upstream() -> None:
    """vLLM aborts a generation when its client disconnects; it must learn of it at once."""
    outcome: list[str] = []

    async def waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        try:
            outcome.append("eof" if await reader.read() == b"" else "data")
        except ConnectionResetError:
            outcome.append("reset")

    async with upstream(waits) as port, proxy_to(port) as (proxy, listen):
        _, writer = await connect(listen)
        writer.write(request("/v1/completions"))
        await eventually(lambda: proxy.stats.bytes_to_upstream > 0, "relayed")
        reset(writer)
        await eventually(lambda: outcome == ["reset"], "the upstream saw the reset")
        await eventually(lambda: proxy.connections_open == 0, "no connection left")


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


async def test_a_thousand_connections_leave_no_descriptor_behind() -> None:
    async def one(listen: int) -> None:
        reader, writer = await connect(listen)
        writer.write(request("/x", b"ping"))
        await read_head(reader)
        assert await reader.readexactly(4) == b"ping"
        await close(writer)

    async with upstream(echo) as port, proxy_to(port) as (proxy, listen):
        await one(listen)  # warm up whatever the loop creates lazily
        await eventually(lambda: proxy.connections_open == 0, "warm-up closed")
        before = _open_fds()
        for _ in range(20):
            await asyncio.gather(*(one(listen) for _ in range(50)))
        await eventually(lambda: proxy.connections_open == 0, "all closed")
        await eventually(lambda: _open_fds() <= before, f"fds back to {before}")
        assert proxy.stats.connections_total == 1001


# --- Refusals -----------------------------------------------------------------------------------


async def _closed_promptly(listen: int) -> None:
    reader, writer = await connect(listen)
    writer.write(request("/v1/completions"))
    async with asyncio.timeout(2):
        with suppress(ConnectionResetError):
            assert await reader.read() == b""
    await close(writer)


async def test_before_a_target_is_set_connections_close_at_once() -> None:
    async with proxy_to(None) as (proxy, listen):
        await _closed_promptly(listen)
        assert proxy.stats.refused_unconfigured == 1
        await eventually(lambda: proxy.connections_open == 0, "nothing open")


async def test_a_refused_dial_closes_the_client_at_once() -> None:
    async with proxy_to(free_port(LOCAL)) as (proxy, listen):
        await _closed_promptly(listen)
        assert proxy.stats.dial_failures == 1
        await eventually(lambda: proxy.connections_open == 0, "nothing open")


async def test_a_dial_that_hangs_times_out() -> None:
    with hanging_port() as port:
        async with proxy_to(port, dial_timeout=0.2) as (proxy, listen):
            await _closed_promptly(listen)
            assert proxy.stats.dial_failures == 1


async def test_close_during_a_dial_ends_it() -> None:
    with hanging_port() as port:
        async with proxy_to(port) as (proxy, listen):
            reader, writer = await connect(listen)
            await eventually(lambda: proxy.connections_open == 1, "accepted")
            async with asyncio.timeout(2):
                await proxy.close()
            assert all(task.done() for task in asyncio.all_tasks() if "_dial" in repr(task))
            async with asyncio.timeout(2):
                with suppress(ConnectionResetError):
                    assert await reader.read() == b""
            await close(writer)


async def test_close_drops_open_connections() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async with upstream(silent) as port:
        async with proxy_to(port) as (proxy, listen):
            reader, writer = await connect(listen)
            writer.write(b"x")
            await eventually(lambda: proxy.stats.bytes_to_upstream == 1, "relayed")
        assert proxy.connections_open == 0
        async with asyncio.timeout(2):
            with suppress(ConnectionResetError):
                assert await reader.read() == b""
        await close(writer)
