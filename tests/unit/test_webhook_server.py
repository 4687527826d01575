"""The HTTPS server: real uvicorn, real TLS from a test CA, certificate reload without a gap."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from certs.authority import CertificateAuthority, KeyPair
from localcluster.processes import free_port
from webhook.metrics import WebhookMetrics
from webhook.server import CertificateReloader, make_ssl_context, serve_tls


def _write_pair(directory: Path, pair: KeyPair) -> None:
    """Writes like a careful renewer: each file replaced atomically, certificate first."""
    for name, data in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem)):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(directory / name)


def _served_der(port: int, ca: CertificateAuthority) -> bytes:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _der(pair: KeyPair) -> bytes:
    return x509.load_pem_x509_certificate(pair.cert_pem).public_bytes(serialization.Encoding.DER)


@contextmanager
def _running(app: FastAPI, directory: Path, metrics: WebhookMetrics) -> Iterator[int]:
    port = free_port()
    servers: list[uvicorn.Server] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.run(
            serve_tls(
                app,
                cert=directory / "tls.crt",
                key=directory / "tls.key",
                host="127.0.0.1",
                port=port,
                reload_interval_s=0.05,
                metrics=metrics,
                started=servers.append,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready.is_set() and time.monotonic() < deadline:
        if servers and servers[0].started:
            ready.set()
        time.sleep(0.01)
    assert ready.is_set(), "server did not start"
    try:
        yield port
    finally:
        servers[0].should_exit = True
        thread.join(10)


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test-ca")


class _Hammer(threading.Thread):
    """Sends requests on one keep-alive connection, opened before the swap, until stopped."""

    def __init__(self, port: int, verify: ssl.SSLContext) -> None:
        super().__init__()
        self.url = f"https://127.0.0.1:{port}"
        self.verify = verify
        self.stop = threading.Event()
        self.served = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(verify=self.verify, base_url=self.url) as client:
            while not self.stop.is_set():
                try:
                    assert client.get("/ping").status_code == 200
                    self.served += 1
                except Exception as exc:
                    self.failures.append(repr(exc))


def _ping_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def test_new_certificate_is_served_while_requests_keep_succeeding(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    first, second = ca.issue_serving([], ["127.0.0.1"]), ca.issue_serving([], ["127.0.0.1"])
    _write_pair(tmp_path, first)
    metrics = WebhookMetrics()
    with _running(_ping_app(), tmp_path, metrics) as port:
        assert _served_der(port, ca) == _der(first)
        hammer = _Hammer(port, ssl.create_default_context(cadata=ca.cert_pem.decode()))
        hammer.start()
        try:
            time.sleep(0.1)
            _write_pair(tmp_path, second)
            deadline = time.monotonic() + 5
            while _served_der(port, ca) != _der(second):
                assert time.monotonic() < deadline, "the new certificate was never served"
                time.sleep(0.02)
            time.sleep(0.1)
        finally:
            hammer.stop.set()
            hammer.join(10)
    assert hammer.failures == []
    assert hammer.served > 10
    reloads = metrics.registry.get_sample_value(
        "fma_webhook_certificate_reloads_total", {"result": "ok"}
    )
    assert reloads is not None
    assert reloads >= 1


def test_mismatched_pair_keeps_the_old_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    first, second = ca.issue_serving(["a"]), ca.issue_serving(["b"])
    _write_pair(tmp_path, first)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    reloader = CertificateReloader(make_ssl_context(cert, key), cert, key)
    assert not reloader.check(), "nothing changed"
    cert.write_bytes(second.cert_pem)  # the key is still the first one's
    assert not reloader.check()
    key.write_bytes(second.key_pem)
    assert reloader.check()
    assert reloader.reloads == 1
