"""The kubelet's HTTPS API on each node's InternalIP: `/containerLogs`, `/pods`, `/healthz`.

This is what makes the real `kubectl logs` work: the apiserver proxies
`/api/v1/namespaces/{ns}/pods/{pod}/log` to `https://<InternalIP>:<daemonEndpoints port>/
containerLogs/{ns}/{pod}/{container}` and, without `--kubelet-certificate-authority`, does not
verify our self-signed certificate.

A deliberately small HTTP/1.1 server on asyncio streams (GET only, one request per connection,
chunked responses so `follow` can stream): the kubelet API needs nothing more, and a framework
would add a second event-loop owner to a process whose loop runs Pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from localcluster.kubelet.clock import parse_rfc3339, utcnow
from localcluster.kubelet.logfiles import LogNotFoundError, LogOptions, iter_log, select_instance
from localcluster.kubelet.podspec import PodView

_log = logging.getLogger(__name__)
_FOLLOW_POLL_SECONDS = 0.2
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}

# (node, namespace, pod name) -> (the Pod, its log directory), or None.
FindPod = Callable[[str, str, str], tuple[PodView, Path] | None]
ListPods = Callable[[str], list[dict[str, object]]]


@dataclass
class KubeletApi:
    """Handlers for one node's endpoint."""

    node: str
    find_pod: FindPod
    list_pods: ListPods
    healthy: Callable[[], bool]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            await self._route(method, target, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except (ConnectionError, ssl.SSLError) as exc:
            _log.debug("kubelet API connection ended", extra={"error": str(exc)})
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)

    async def _route(self, method: str, target: str, writer: asyncio.StreamWriter) -> None:
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if method != "GET":
            await _respond(writer, 405, b"only GET is served\n")
        elif parts == ["healthz"]:
            ok = self.healthy()
            await _respond(writer, 200 if ok else 500, b"ok" if ok else b"unhealthy")
        elif parts == ["pods"]:
            body = {"kind": "PodList", "apiVersion": "v1", "items": self.list_pods(self.node)}
            await _respond(writer, 200, json.dumps(body).encode(), "application/json")
        elif len(parts) == 4 and parts[0] == "containerLogs":
            await self._logs(parts[1], parts[2], parts[3], parse_qs(url.query), writer)
        else:
            await _respond(writer, 404, b"404 page not found\n")

    async def _logs(
        self,
        namespace: str,
        name: str,
        container: str,
        query: dict[str, list[str]],
        writer: asyncio.StreamWriter,
    ) -> None:
        found = self.find_pod(self.node, namespace, name)
        if found is None:
            await _respond(writer, 404, f'pod "{name}" not found\n'.encode())
            return
        pod, log_dir = found
        if pod.container(container) is None:
            message = f"container {container} is not valid for pod {name}\n"
            await _respond(writer, 400, message.encode())
            return
        try:
            options = log_options(query)
            path = select_instance(log_dir / container, container, name, options.previous)
        except (LogNotFoundError, ValueError) as exc:
            await _respond(writer, 400, f"{exc}\n".encode())
            return
        await _start_chunked(writer)
        for chunk in iter_log(path, options):
            if chunk is None:
                if writer.is_closing():
                    return
                await asyncio.sleep(_FOLLOW_POLL_SECONDS)
                continue
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def log_options(query: dict[str, list[str]]) -> LogOptions:
    """The query of GET /containerLogs (the apiserver forwards PodLogOptions as-is)."""

    def first(key: str) -> str | None:
        values = query.get(key)
        return values[0] if values else None

    def flag(key: str) -> bool:
        return (first(key) or "").lower() in ("true", "1")

    def number(key: str) -> int | None:
        value = first(key)
        return int(value) if value not in (None, "") else None

    since: dt.datetime | None = None
    if (seconds := number("sinceSeconds")) is not None:
        since = utcnow() - dt.timedelta(seconds=seconds)
    elif text := first("sinceTime"):
        since = parse_rfc3339(text)
    return LogOptions(
        follow=flag("follow"),
        previous=flag("previous"),
        tail_lines=number("tailLines"),
        timestamps=flag("timestamps"),
        limit_bytes=number("limitBytes"),
        since_time=since,
    )


async def _respond(
    writer: asyncio.StreamWriter, code: int, body: bytes, content_type: str = "text/plain"
) -> None:
    reason = _REASONS.get(code, "Error")
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()


async def _start_chunked(writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["http/1.1"])
    return context


async def serve(
    api: KubeletApi, host: str, port: int, context: ssl.SSLContext | None
) -> asyncio.Server:
    """Starts serving `api` on host:port (TLS when `context` is given)."""
    return await asyncio.start_server(
        api.handle, host=host, port=port, ssl=context, reuse_address=True
    )
