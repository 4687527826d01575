"""Running one probe: httpGet, tcpSocket or exec, with the probe's timeout (the "do" half of
probing; `probestate` decides what results mean).

As the kubelet's prober: an HTTP status in [200, 400) is a success and redirects are not
followed; the host defaults to the Pod IP; exec probes run in the container's environment and
working directory, and a timeout kills their whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localcluster.kubelet.expansion import expand, mapping_for
from localcluster.kubelet.podspec import ContainerPort, ProbeSpec, resolve_port
from localcluster.kubelet.process import signal_group, spawn

USER_AGENT = "kube-probe/1.20"
_MAX_RESPONSE = 12 * 1024  # status line and headers, and 10 KiB of body
_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go and in which environment exec probes run."""

    pod_ip: str
    ports: Sequence[ContainerPort]
    env: Mapping[str, str]
    cwd: str


@dataclass(frozen=True)
class ProbeOutcome:
    success: bool
    detail: str = ""


async def run_probe(spec: ProbeSpec, target: ProbeTarget) -> ProbeOutcome:
    """One probe attempt."""
    if spec.handler == "exec":
        return await _exec(spec, target)
    port = resolve_port(spec.port, target.ports)
    if port is None:
        return ProbeOutcome(False, f"unknown port {spec.port!r}")
    host = spec.host or target.pod_ip
    if spec.handler == "tcpSocket":
        return await _tcp(host, port, spec.timeout_seconds)
    return await _http(spec, host, port)


async def _http(spec: ProbeSpec, host: str, port: int) -> ProbeOutcome:
    path = spec.path if spec.path.startswith("/") else "/" + spec.path
    url = f"{spec.scheme.lower()}://{host}:{port}{path}"
    # Like the kubelet's prober: no keep-alive, so a probe never rides a stale connection.
    headers = {
        "Host": f"{host}:{port}",
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Connection": "close",
        **dict(spec.headers),
    }
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            status = await _get_status(host, port, path, headers, tls=spec.scheme == "HTTPS")
    except TimeoutError:
        return ProbeOutcome(False, f"Get {url}: timeout after {spec.timeout_seconds}s")
    except (OSError, ValueError) as exc:
        return ProbeOutcome(False, f"Get {url}: {exc or type(exc).__name__}")
    if 200 <= status < 400:
        return ProbeOutcome(True)
    return ProbeOutcome(False, f"HTTP probe failed with statuscode: {status}")


async def _get_status(
    host: str, port: int, path: str, headers: Mapping[str, str], *, tls: bool
) -> int:
    """One `GET` on a fresh connection; the status code. The response is read up to 10 KiB
    past the status line (as the kubelet reads bodies) and dropped.

    A bare HTTP/1.1 client: an httpx request costs five times the CPU, and a benchmark's
    kubelet runs a thousand probes a second. Plain HTTP goes over a non-blocking socket with
    the loop's `sock_*` calls (no transport or stream objects); HTTPS over asyncio streams."""
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = head.encode("latin-1") + b"\r\n"
    response = await (_exchange_tls if tls else _exchange)(host, port, request)
    status_line = response.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed HTTP response {status_line[:80]!r}")
    return int(parts[1])


async def _exchange(host: str, port: int, request: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, request)
        data = b""
        while len(data) < _MAX_RESPONSE and (chunk := await loop.sock_recv(sock, _MAX_RESPONSE)):
            data += chunk
        return data
    finally:
        sock.close()


async def _exchange_tls(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port, ssl=_INSECURE)
    try:
        writer.write(request)
        data = b""
        while len(data) < _MAX_RESPONSE and (chunk := await reader.read(_MAX_RESPONSE)):
            data += chunk
        return data
    finally:
        writer.close()


async def _tcp(host: str, port: int, timeout_seconds: float) -> ProbeOutcome:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_seconds)
    except (OSError, TimeoutError) as exc:
        return ProbeOutcome(False, f"dial tcp {host}:{port}: {exc or 'timeout'}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeOutcome(True)


async def _exec(spec: ProbeSpec, target: ProbeTarget) -> ProbeOutcome:
    argv = [expand(part, mapping_for(target.env)) for part in spec.command]
    if not argv:
        return ProbeOutcome(False, "exec probe without a command")
    try:
        process = await spawn(argv, env=target.env, cwd=target.cwd, capture=False)
    except OSError as exc:
        return ProbeOutcome(False, f"exec {argv[0]}: {exc}")
    try:
        code = await asyncio.wait_for(process.wait(), spec.timeout_seconds)
    except TimeoutError:
        signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        return ProbeOutcome(False, f"command timed out after {spec.timeout_seconds}s")
    finally:
        signal_group(process.pid, signal.SIGKILL)
    if code == 0:
        return ProbeOutcome(True)
    return ProbeOutcome(False, f"command {argv} exited with {code}")
