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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from localcluster.kubelet.expansion import expand, mapping_for
from localcluster.kubelet.podspec import ContainerPort, ProbeSpec, resolve_port
from localcluster.kubelet.process import signal_group, spawn

USER_AGENT = "kube-probe/1.20"


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


async def run_probe(
    spec: ProbeSpec, target: ProbeTarget, client: httpx.AsyncClient
) -> ProbeOutcome:
    """One probe attempt."""
    if spec.handler == "exec":
        return await _exec(spec, target)
    port = resolve_port(spec.port, target.ports)
    if port is None:
        return ProbeOutcome(False, f"unknown port {spec.port!r}")
    host = spec.host or target.pod_ip
    if spec.handler == "tcpSocket":
        return await _tcp(host, port, spec.timeout_seconds)
    return await _http(spec, host, port, client)


async def _http(spec: ProbeSpec, host: str, port: int, client: httpx.AsyncClient) -> ProbeOutcome:
    path = spec.path if spec.path.startswith("/") else "/" + spec.path
    url = f"{spec.scheme.lower()}://{host}:{port}{path}"
    # Like the kubelet's prober: no keep-alive, so a probe never rides a stale connection.
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Connection": "close",
        **dict(spec.headers),
    }
    try:
        response = await client.get(url, headers=headers, timeout=spec.timeout_seconds)
    except httpx.TimeoutException:
        return ProbeOutcome(False, f"Get {url}: timeout after {spec.timeout_seconds}s")
    except httpx.HTTPError as exc:
        return ProbeOutcome(False, f"Get {url}: {exc or type(exc).__name__}")
    if 200 <= response.status_code < 400:
        return ProbeOutcome(True)
    return ProbeOutcome(False, f"HTTP probe failed with statuscode: {response.status_code}")


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
