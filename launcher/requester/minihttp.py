"""A small HTTP/1.1 server on bare asyncio streams, for processes that must stay cheap.

Why not FastAPI/uvicorn: the requester stub runs in every requester Pod, and a benchmark runs
hundreds of stubs (and vLLM stand-ins) in one process. Measured here: a stub process on this
module holds 23 MB resident (26 MB with pynvml loaded; a bare `import asyncio` is 20 MB) against
46 MB for the same two servers on FastAPI/uvicorn, and 500 stubs in one process add about 4 MB
(9 KB each) because, with no per-server signal handling or global state, they share one loop.
The price is a deliberately narrow HTTP: request bodies by `Content-Length` or chunked encoding,
`Expect: 100-continue`, keep-alive, fixed-length responses. That is all the controller, curl and
the probes use.

The handler is a plain `async (Request) -> Response` function; `Router` maps method and path to
such functions and answers 404/405 in the caller's own dialect (Go's plain text for the stub,
FastAPI's JSON for the vLLM stand-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

_log = logging.getLogger(__name__)

MAX_HEAD_BYTES: Final = 64 * 1024
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
KEEP_ALIVE_SECONDS: Final = 75.0
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One parsed request; header names are lower-case, query values keep their order."""

    method: str
    target: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    peer: str = ""
    version: str = "HTTP/1.1"

    def query_first(self, name: str) -> str | None:
        """The first value of a query parameter, as Go's `URL.Query().Get` would pick."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def text(status: int, body: str) -> Response:
    return Response(status, body.encode())


Handler = Callable[[Request], Awaitable[Response]]
AccessLog = Callable[[Request, int], None]


class BadRequestError(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Router:
    """Exact-path routing; an unknown path gets `not_found`, a known one `method_not_allowed`."""

    not_found: Response = field(default_factory=lambda: text(404, "404 page not found\n"))
    method_not_allowed: Response = field(default_factory=lambda: text(405, "Method Not Allowed\n"))
    _routes: dict[str, dict[str, Handler]] = field(default_factory=dict)

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes.setdefault(path, {})[method] = handler

    async def __call__(self, request: Request) -> Response:
        by_method = self._routes.get(request.path)
        if by_method is None:
            return self.not_found
        handler = by_method.get(request.method)
        if handler is None:
            allow = ", ".join(sorted(by_method))
            r = self.method_not_allowed
            return Response(r.status, r.body, r.content_type, (*r.headers, ("Allow", allow)))
        return await handler(request)


def too_large(max_body: int) -> BadRequestError:
    """The 413 for a body over `max_body`; it names the limit, so a caller knows what fits."""
    return BadRequestError(f"request body too large: the limit is {max_body} bytes", 413)


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    """One CRLF-terminated line of a chunked body; a line longer than the stream's limit (the
    head's, 64 KiB) is a malformed request, not a server error."""
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequestError(f"{what} too long") from None


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        size_line = (await _read_line(reader, "chunk size line"))[:-2]
        size_text = size_line.split(b";", 1)[0].strip()
        # `int(x, 16)` would also take "0x10", "+5", "1_0" and spaces: refuse what HTTP does.
        if not size_text or size_text.translate(None, _HEX_DIGITS):
            raise BadRequestError(f"bad chunk size {bytes(size_line[:40])!r}")
        if len(size_text.lstrip(b"0")) > 16 or len(body) + int(size_text, 16) > max_body:
            raise too_large(max_body)
        size = int(size_text, 16)
        if size == 0:
            while (await _read_line(reader, "chunk trailer")) != b"\r\n":  # ignored
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequestError("bad chunk terminator")


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(f"malformed request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequestError(f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], parts[1], parts[2], headers


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int, peer: str = ""
) -> Request | None:
    """The next request on the connection, or None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise BadRequestError("incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequestError("request head too large", 431) from None
    method, target, version, headers = _parse_head(head[:-4])
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, max_body)
    else:
        raw_length = headers.get("content-length", "0")
        # Digits only: `int` would also take "+5", " 5" and "1_0", which HTTP does not.
        if not (raw_length.isascii() and raw_length.isdigit()):
            raise BadRequestError(f"bad Content-Length {raw_length[:40]!r}")
        if len(raw_length.lstrip("0")) > 18 or int(raw_length) > max_body:
            raise too_large(max_body)
        body = await reader.readexactly(int(raw_length))
    try:
        split = urlsplit(target)
    except ValueError as e:  # e.g. "http://[x/": an unclosed IPv6 literal
        raise BadRequestError(f"malformed request target {target[:80]!r}: {e}") from None
    return Request(
        method=method,
        target=target,
        path=unquote(split.path),
        query=parse_qs(split.query, keep_blank_values=True),
        headers=headers,
        body=body,
        peer=peer,
        version=version,
    )


_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def http_date(now: float | None = None) -> str:
    """RFC 9110 IMF-fixdate, without `email.utils` (a heavy import) or locale-dependent names."""
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def encode_response(response: Response, *, server: str, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.content_type is not None:
        lines.append(f"Content-Type: {response.content_type}")
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append(f"Date: {http_date()}")
    if server:
        lines.append(f"Server: {server}")
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error answer, end our side and discard what the client still sends, briefly.

    Closing a socket with unread input makes the kernel send a reset, which can destroy the
    answer before the client reads it: a client streaming a body over the limit would see
    "connection reset" instead of the 413 that names the limit. So half-close, read and drop
    up to `LINGER_BYTES` or `LINGER_SECONDS`, then close (a "lingering close", as nginx does)."""
    if not writer.can_write_eof():
        return
    writer.write_eof()
    dropped = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_SECONDS):
            while dropped < LINGER_BYTES and (data := await reader.read(1 << 16)):
                dropped += len(data)


def _wants_keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


@dataclass
class HttpServer:
    """A listening server; `close` stops accepting and ends every open connection."""

    handler: Handler
    name: str
    server_header: str = ""
    max_body: int = DEFAULT_MAX_BODY_BYTES
    access_log: AccessLog | None = None
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(
        self, *, host: str = "", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        """Listen on `host:port`, or on an already bound `sock` (listen() happens here)."""
        if sock is not None:
            self._server = await asyncio.start_server(
                self._on_connect, sock=sock, limit=MAX_HEAD_BYTES
            )
        else:
            self._server = await asyncio.start_server(
                self._on_connect, host or None, port, limit=MAX_HEAD_BYTES, reuse_address=True
            )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Only `close` cancels us. Ending normally keeps asyncio's stream callback from
            # logging the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""
        while True:
            try:
                async with asyncio.timeout(KEEP_ALIVE_SECONDS):
                    request = await read_request(reader, writer, self.max_body, peer)
            except BadRequestError as e:
                writer.write(
                    encode_response(
                        text(e.status, f"{e}\n"), server=self.server_header, keep_alive=False
                    )
                )
                await writer.drain()
                await _linger(reader, writer)
                return
            if request is None:
                return
            response = await self._respond(request)
            keep_alive = _wants_keep_alive(request)
            writer.write(
                encode_response(response, server=self.server_header, keep_alive=keep_alive)
            )
            await writer.drain()
            if self.access_log is not None:
                self.access_log(request, response.status)
            if not keep_alive:
                return

    async def _respond(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except Exception:
            _log.exception("%s: handler failed for %s %s", self.name, request.method, request.path)
            return text(500, "Internal Server Error\n")
