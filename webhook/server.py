"""uvicorn over HTTPS, with the serving certificate reloaded in place when its files change.

Why in place: cert-manager (or `fma-certs`) renews the certificate by rewriting the Secret, and
the kubelet swaps the mounted files. Restarting the server for that would refuse the
apiserver's calls for a moment, which for the CR guard (failurePolicy Fail) means refused
writes. Instead the server owns its `ssl.SSLContext` and a task on the event loop polls the two
files; when they change it calls `load_cert_chain` on the same context. OpenSSL copies the
certificate into each connection when the handshake starts, so new connections get the new
certificate while open connections and in-flight requests carry on untouched. The reload runs on
the event-loop thread, the thread that creates the TLS connections, so the context is never
changed concurrently with a handshake. A half-written pair (new certificate, old key) fails to
load and is retried at the next change; the old pair keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509

from jsonlog import fields
from webhook.metrics import WebhookMetrics

_log = logging.getLogger(__name__)

# The apiserver's webhook client drops idle connections after 90 s (Go's IdleConnTimeout).
# Keeping ours open longer means the client always closes first, so it never sends a request
# on a connection the server is closing at that moment.
KEEP_ALIVE_TIMEOUT_S = 120


def make_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context holding the given pair."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


@dataclass(frozen=True)
class _FileState:
    inode: int
    size: int
    mtime_ns: int


def _state(path: Path) -> _FileState | None:
    try:
        st = os.stat(path)  # follows the kubelet's ..data symlink swap  # noqa: PTH116
    except OSError:
        return None
    return _FileState(st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(eq=False)
class CertificateReloader:
    """Reloads `context`'s certificate and key from their files whenever either changes."""

    context: ssl.SSLContext
    cert: Path
    key: Path
    _: KW_ONLY
    metrics: WebhookMetrics | None = None
    reloads: int = field(default=0, init=False)
    _seen: tuple[_FileState | None, _FileState | None] = field(init=False)

    def __post_init__(self) -> None:
        self._seen = (_state(self.cert), _state(self.key))
        self._record_expiry()

    def check(self) -> bool:
        """Reload if the files changed since the last look; True when a new pair was loaded."""
        current = (_state(self.cert), _state(self.key))
        if current == self._seen or None in current:
            return False
        self._seen = current
        try:
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (ssl.SSLError, OSError) as exc:
            _log.warning(
                "serving certificate not reloaded; keeping the previous one",
                extra=fields(event="certificate_reload_failed", error=str(exc)),
            )
            self._count("failed")
            return False
        self.reloads += 1
        self._count("ok")
        expiry = self._record_expiry()
        _log.info(
            "serving certificate reloaded",
            extra=fields(event="certificate_reloaded", cert=str(self.cert), not_after=expiry),
        )
        return True

    async def run(self, interval_s: float) -> None:
        """Poll forever (cancel to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            self.check()

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.certificate_reloads.labels(result=result).inc()

    def _record_expiry(self) -> str | None:
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError):
            return None
        not_after = cert.not_valid_after_utc
        if self.metrics is not None:
            self.metrics.certificate_expiry.set(not_after.timestamp())
        return not_after.isoformat()


def uvicorn_config(
    app: Any,
    context: ssl.SSLContext,
    *,
    host: str,
    port: int,
    access_log: bool = False,
) -> uvicorn.Config:
    """uvicorn on our own SSL context (so the reloader can reach it), httptools, no log setup."""

    def use_our_context(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> Any:
        return context

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        ssl_context_factory=use_our_context,
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        server_header=False,
        lifespan="on",  # the app's lifespan runs the watch caches (`webhook.app`)
    )


async def serve_tls(
    app: Any,
    *,
    cert: Path,
    key: Path,
    host: str,
    port: int,
    reload_interval_s: float,
    metrics: WebhookMetrics | None = None,
    access_log: bool = False,
    started: Callable[[uvicorn.Server], None] | None = None,
) -> None:
    """Serve `app` over HTTPS until SIGTERM/SIGINT, reloading the certificate as it changes."""
    context = make_ssl_context(cert, key)
    reloader = CertificateReloader(context, cert, key, metrics=metrics)
    server = uvicorn.Server(
        uvicorn_config(app, context, host=host, port=port, access_log=access_log)
    )
    watcher = asyncio.create_task(reloader.run(reload_interval_s), name="certificate-reloader")
    if started is not None:
        started(server)
    begun = time.monotonic()
    try:
        await server.serve()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        _log.info(
            "server stopped",
            extra=fields(event="stopped", uptime_s=round(time.monotonic() - begun, 1)),
        )
