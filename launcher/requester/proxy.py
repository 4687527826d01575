"""The requester's inference proxy: a byte-transparent TCP relay to the bound vLLM server.

A user's Service selects the requester Pod (it is the Pod the user's Deployment made), but vLLM
runs in the provider Pod. So the stub listens on the serving ports of the vLLM container it
replaced (and on the reference's separate proxy port) and relays every connection, byte for byte,
to the server the controller names with `PUT /v1/proxy/config`. It does not parse HTTP: keep-alive,
chunked bodies, SSE streams, upgrades and whatever vLLM adds later pass through unchanged.

Why asyncio protocols rather than streams: a relay is on the hot path of every inference request,
and the stub shares 2-core machines with much else. Protocol callbacks move bytes without a task,
a future or a `StreamReader` buffer per read: each read (up to 256 KiB with asyncio's transports)
is handed as is to the other transport's `write`, which sends it at once and keeps only what the
kernel did not take. Reads are fresh `bytes`, not one reused buffer (`BufferedProtocol`): Python
3.12's transports and uvloop's keep a reference to unsent data instead of copying it, so a reused
buffer would be overwritten under them. Backpressure is the transports' own flow
control: when one side's write buffer passes its high-water mark, the other side stops reading
(`pause_reading`) until it drains, so a slow client cannot make the stub hold a whole response.
TCP_NODELAY is on for both sockets (asyncio sets it on every TCP transport), so a small SSE
event is not held back by Nagle's algorithm.

Half-close is relayed (EOF from either side becomes `write_eof` on the other, and the connection
closes once both directions ended); a reset on either side resets the other, so a client sees a
vanished server at once instead of waiting on a socket nobody will write to. Before a target is
set, and when the dial fails or takes longer than `dial_timeout`, the client connection is closed
immediately: a client retries elsewhere sooner than it would time out. A target given as a host
name is resolved on every dial (in asyncio's resolver thread), as Go's dialer would; fma's
controller gives the provider Pod's IP, which needs no lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Final, cast

from jsonlog import fields

_log = logging.getLogger("fma.requester")

DIAL_TIMEOUT_SECONDS: Final = 10.0
"""The reference's `--proxy-dial-timeout` default."""
WRITE_HIGH_WATER_BYTES: Final = 256 * 1024
LISTEN_BACKLOG: Final = 1024
"""asyncio's default of 100 drops SYNs when a few hundred clients connect at once, and a dropped
SYN costs the client a one-second retransmit."""
DIAL_FAILURE_LOG_SECONDS: Final = 10.0

_LINGER_RESET: Final = struct.pack("ii", 1, 0)
_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


# --- The target and its JSON ------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyTarget:
    """Where connections go: an IP literal (normalised) or a host name (lower case), a port."""

    address: str
    port: int

    def as_json(self) -> dict[str, object]:
        return {"address": self.address, "port": self.port}

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


class ProxyConfigError(ValueError):
    """A `PUT /v1/proxy/config` body that cannot be a target; the message names the field."""


def parse_target(body: bytes) -> ProxyTarget:
    """The target in a JSON body `{"address": str, "port": int}`, or ProxyConfigError."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProxyConfigError(f"the body is not JSON: {e}") from None
    except RecursionError:  # `json` recurses per nesting level; a config is one flat object
        raise ProxyConfigError("the body is not a config: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ProxyConfigError('the body must be a JSON object {"address": ..., "port": ...}')
    return ProxyTarget(_address(value.get("address")), _target_port(value.get("port")))


def _address(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ProxyConfigError("address: want a non-empty string (an IP address or host name)")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    name = raw.removesuffix(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # "10.0.0.300" is a bad IP address, not a host name
    ):
        raise ProxyConfigError(f"address {raw!r} is neither an IP address nor a host name")
    return name.lower()


def _target_port(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise ProxyConfigError(f"port: want an integer 1-65535, got {json.dumps(raw)}")
    return raw


# --- Counters -------------------------------------------------------------------------------


@dataclass
class ProxyStats:
    """Counters since start; the stub has no metrics server, so these are for tests, benchmarks
    and a future one."""

    connections_total: int = 0
    refused_unconfigured: int = 0
    dial_failures: int = 0
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0


# --- The two halves of a relayed connection -------------------------------------------------


class _Half(asyncio.Protocol):
    """One socket of a relayed pair; what it reads it writes to `peer`, EOF and errors too."""

    __slots__ = ("eof", "peer", "proxy", "transport")

    transport: asyncio.Transport

    def __init__(self, proxy: Proxy, peer: _Half | None) -> None:
        self.proxy = proxy
        self.peer = peer
        self.eof = False

    def eof_received(self) -> bool:
        """Pass the half-close on; once both directions ended, close both (after flushing)."""
        self.eof = True
        peer = self.peer
        if peer is None:
            return False
        peer.transport.write_eof()
        if peer.eof:
            self.transport.close()
            peer.transport.close()
        return True

    def pause_writing(self) -> None:
        """Our write buffer is full: stop reading what would fill it further."""
        peer = self.peer
        if peer is not None and not peer.eof:  # resuming a reader past EOF would re-read EOF
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and not peer.eof:
            peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """Close the other side too: flushing what it holds after an orderly close, at once
        (a reset for the other end) after an error, so neither end waits on a dead partner."""
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None  # our transport is dead now; the peer must not touch it again
            if exc is None:
                peer.transport.close()
            else:
                _reset(peer.transport)


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset, as the other side did: a client must not take a response cut
    short for a whole one (a plain close would send FIN, which ends an HTTP/1.0-style body)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Client(_Half):
    """The accepted side: refused without a target, paused until the dial completes."""

    __slots__ = ("dial", "early")

    def __init__(self, proxy: Proxy) -> None:
        super().__init__(proxy, None)
        self.dial: asyncio.Task[None] | None = None
        self.early: bytearray | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        proxy = self.proxy
        proxy.stats.connections_total += 1
        target = proxy.target
        if target is None:
            proxy.stats.refused_unconfigured += 1
            transport.close()
            return
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES)
        transport.pause_reading()  # nothing to write the bytes to yet
        proxy.open.add(self)
        self.dial = asyncio.get_running_loop().create_task(self._dial(target))

    async def _dial(self, target: ProxyTarget) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.proxy.dial_timeout):
                await loop.create_connection(
                    lambda: _Upstream(self.proxy, self), target.address, target.port
                )
        except (OSError, TimeoutError) as e:
            self.proxy.dial_failed(target, e)
            self.transport.close()
        finally:
            self.dial = None

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            self._hold(data)
            return
        peer.transport.write(data)
        self.proxy.stats.bytes_to_upstream += len(data)

    def _hold(self, data: bytes) -> None:
        """Bytes read before the upstream is connected. asyncio honours the pause asked for in
        `connection_made`; uvloop starts reading after it regardless. Keep them for the
        upstream, and pause now."""
        if self.early is None:
            self.early = bytearray()
        self.early += data
        self.proxy.stats.bytes_to_upstream += len(data)
        self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.peer is None and self.dial is not None:  # uvloop again: EOF while dialling
            self.eof = True
            return True  # passed on when the upstream connects
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.open.discard(self)
        if self.dial is not None:
            self.dial.cancel()
        super().connection_lost(exc)

    def abort(self) -> None:
        """Drop both sockets now (the proxy is shutting down)."""
        peer = self.peer
        self.transport.abort()
        if peer is not None:
            peer.transport.abort()


class _Upstream(_Half):
    """The dialled side; on connect it links itself to the client and lets the client read."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        client = self.peer
        assert isinstance(client, _Client)
        if client.transport.is_closing():  # the client left while we dialled
            self.peer = None
            transport.abort()
            return
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES)
        client.peer = self
        if client.early is not None:
            transport.write(client.early)
            client.early = None
        if client.eof:
            transport.write_eof()
        else:
            client.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None:
            peer.transport.write(data)
            self.proxy.stats.bytes_to_client += len(data)


# --- The proxy --------------------------------------------------------------------------------


class Proxy:
    """One target, any number of listeners, all on the running event loop."""

    def __init__(self, *, dial_timeout: float = DIAL_TIMEOUT_SECONDS) -> None:
        self.dial_timeout = dial_timeout
        self.target: ProxyTarget | None = None
        self.stats = ProxyStats()
        self.open: set[_Client] = set()
        self._servers: list[asyncio.Server] = []
        self._last_failure_log = float("-inf")
        self._unlogged_failures = 0

    @property
    def connections_open(self) -> int:
        """Client connections accepted and not yet closed (dialling ones included)."""
        return len(self.open)

    async def listen(self, host: str, port: int) -> int:
        """Listen on `host:port` (port 0 picks one) and return the bound port."""
        server = await asyncio.get_running_loop().create_server(
            lambda: _Client(self),
            host or None,
            port,
            reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        dials = [client.dial for client in self.open if client.dial is not None]
        for client in list(self.open):
            client.abort()  # its connection_lost cancels its dial
        await asyncio.gather(*dials, return_exceptions=True)
        for server in servers:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports' connection_lost run

    def dial_failed(self, target: ProxyTarget, error: BaseException) -> None:
        """Count, and log at most every few seconds: a dead server and a busy client would
        otherwise write a line per connection attempt."""
        self.stats.dial_failures += 1
        self._unlogged_failures += 1
        now = time.monotonic()
        if now - self._last_failure_log < DIAL_FAILURE_LOG_SECONDS:
            return
        _log.warning(
            "proxy cannot reach its target",
            extra=fields(
                event="proxy-dial",
                target=str(target),
                error=str(error) or type(error).__name__,
                failures=self._unlogged_failures,
            ),
        )
        self._last_failure_log, self._unlogged_failures = now, 0
