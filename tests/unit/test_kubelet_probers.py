"""Probe execution against local servers and commands (no cluster)."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path

from certs.authority import CertificateAuthority
from localcluster.kubelet.podspec import ContainerPort, ProbeSpec
from localcluster.kubelet.probers import ProbeOutcome, ProbeTarget, run_probe
from localcluster.processes import free_port


async def _http_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1]
        if path == b"/garbage":
            writer.write(b"SSH-2.0-OpenSSH\r\n")
            writer.close()
            return
        if path == b"/slow":
            await asyncio.sleep(5)
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
            "http not http": ProbeSpec("httpGet", port=port, path="/garbage"),
            "http timeout": ProbeSpec("httpGet", port=port, path="/slow", timeout_seconds=1),
            "http refused": ProbeSpec("httpGet", port=free_port()),
            "tcp open": ProbeSpec("tcpSocket", port=port),
            "tcp closed": ProbeSpec("tcpSocket", port=free_port()),
            "exec true": ProbeSpec("exec", command=("true",)),
            "exec false": ProbeSpec("exec", command=("false",)),
            "exec timeout": ProbeSpec("exec", command=("sleep", "30"), timeout_seconds=1),
        }
        results = {name: await run_probe(spec, target) for name, spec in probes.items()}
        server.close()
        await server.wait_closed()
        return results

    started = time.monotonic()
    results = asyncio.run(scenario())
    assert time.monotonic() - started < 6
    verdicts = {name: outcome.success for name, outcome in results.items()}
    assert verdicts == {
        "http ok": True,
        "http redirect": True,
        "http 503": False,
        "http unknown port": False,
        "http not http": False,
        "http timeout": False,
        "http refused": False,
        "tcp open": True,
        "tcp closed": False,
        "exec true": True,
        "exec false": False,
        "exec timeout": False,
    }
    assert "statuscode: 503" in results["http 503"].detail
    assert "timed out" in results["exec timeout"].detail
    assert "malformed HTTP response" in results["http not http"].detail
    assert "timeout after 1s" in results["http timeout"].detail


def test_https_probe_does_not_verify_the_certificate(tmp_path: Path) -> None:
    """As the kubelet's prober: HTTPS without verification (a self-signed cert is fine)."""
    pair = CertificateAuthority.create("probe-test").issue_serving(["localhost"], ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))

    async def scenario() -> ProbeOutcome:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        target = ProbeTarget("127.0.0.1", [], {}, "/")
        try:
            return await run_probe(ProbeSpec("httpGet", port=port, scheme="HTTPS"), target)
        finally:
            server.close()

    outcome = asyncio.run(scenario())
    assert outcome.success, outcome.detail
