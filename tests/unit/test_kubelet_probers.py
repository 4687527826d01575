"""Probe execution against local servers and commands (no cluster)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx

from localcluster.kubelet.podspec import ContainerPort, ProbeSpec
from localcluster.kubelet.probers import ProbeOutcome, ProbeTarget, run_probe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _http_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1]
        status = {b"/ok": b"200 OK", b"/moved": b"302 Found"}.get(path, b"503 Unavailable")
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_http_tcp_and_exec_probes() -> None:
    async def scenario() -> dict[str, ProbeOutcome]:
        server, port = await _http_server()
        target = ProbeTarget(
            "127.0.0.1", [ContainerPort(port, "http")], {"PATH": os.environ["PATH"]}, "/"
        )
        probes = {
            "http ok": ProbeSpec("httpGet", port="http", path="/ok"),
            "http redirect": ProbeSpec("httpGet", port=port, path="moved"),
            "http 503": ProbeSpec("httpGet", port="http", path="/down"),
            "http unknown port": ProbeSpec("httpGet", port="nope"),
            "tcp open": ProbeSpec("tcpSocket", port=port),
            "tcp closed": ProbeSpec("tcpSocket", port=_free_port()),
            "exec true": ProbeSpec("exec", command=("true",)),
            "exec false": ProbeSpec("exec", command=("false",)),
            "exec timeout": ProbeSpec("exec", command=("sleep", "30"), timeout_seconds=1),
        }
        async with httpx.AsyncClient() as client:
            results = {name: await run_probe(spec, target, client) for name, spec in probes.items()}
        server.close()
        await server.wait_closed()
        return results

    started = time.monotonic()
    results = asyncio.run(scenario())
    assert time.monotonic() - started < 5
    verdicts = {name: outcome.success for name, outcome in results.items()}
    assert verdicts == {
        "http ok": True,
        "http redirect": True,
        "http 503": False,
        "http unknown port": False,
        "tcp open": True,
        "tcp closed": False,
        "exec true": True,
        "exec false": False,
        "exec timeout": False,
    }
    assert "statuscode: 503" in results["http 503"].detail
    assert "timed out" in results["exec timeout"].detail
