"""Where the apiserver is and how to authenticate: an `httpx.AsyncClient` ready for `KubeClient`.

The official client's loaders do the parsing (kubeconfig files, contexts, exec plugins,
in-cluster ServiceAccount tokens with refresh); we keep only their result: the server URL, the
TLS material and a header provider asked again on every request, so a rotated token is picked up
without a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx
import kubernetes.client
import kubernetes.config

from kube._transport import APISERVER_KEEPALIVE_S, pooled_transport


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """How a process reaches the apiserver.

    `kubeconfig` None means in-cluster (the Pod's ServiceAccount), falling back to the default
    kubeconfig (`$KUBECONFIG`, `~/.kube/config`) when not running in a Pod.
    """

    kubeconfig: Path | None = None
    context: str | None = None
    request_timeout_s: float = 30.0
    """Connect/read/write timeout of ordinary calls (watches set their own read timeout)."""
    max_connections: int = 64
    """Each watch holds one connection for its whole life; writes share the rest."""
    max_streams: int = 2000
    """Connections of `stream_client`, whose streams (`pods/log?follow`) last as long as what
    they follow: one per bound direct-mode server."""
    user_agent: str = "fma-controller"
    """What the apiserver's audit log and metrics name the caller."""


class _ConfigAuth(httpx.Auth):
    """Adds the bearer token (if any) of an official-client `Configuration` to each request."""

    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # `auth_settings` runs the loader's refresh hook (expired in-cluster or exec tokens).
        settings = self._configuration.auth_settings().get("BearerToken")
        if settings and settings.get("value"):
            request.headers["Authorization"] = str(settings["value"])
        yield request


def load_configuration(settings: ConnectionSettings) -> kubernetes.client.Configuration:
    """The official client's view of the connection, from a kubeconfig or the Pod's identity."""
    configuration = kubernetes.client.Configuration()
    if settings.kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(
                context=settings.context, client_configuration=configuration
            )
        return configuration
    kubernetes.config.load_kube_config(
        config_file=str(settings.kubeconfig),
        context=settings.context,
        client_configuration=configuration,
    )
    return configuration


def _ssl_context(configuration: kubernetes.client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def http_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """An async HTTP client bound to the apiserver of `settings` (base URL, TLS, auth)."""
    configuration = load_configuration(settings)
    return http_client_for(configuration, settings)


def stream_client(settings: ConnectionSettings) -> httpx.AsyncClient:
    """A client of its own for long-lived streams such as a followed container log.

    Each stream holds a connection until what it follows ends. In the shared pool of
    `http_client` they would starve every other call: 64 followed logs did, in a run of 500
    direct-mode requesters, and every write then waited for a connection until it timed out.

    On httpx's own transport, not `pooled_transport`: asyncio's TLS layer, which aiohttp
    uses, gives each connection a 256 KiB receive buffer, and hundreds of streams held for
    hours made that 130 MB of the controller's memory; httpx reads TLS through `SSLObject` with
    no such buffer, and a stream's one request makes httpx's pool cost nothing that matters.
    """
    configuration = load_configuration(settings)
    limits = httpx.Limits(
        max_connections=settings.max_streams, max_keepalive_connections=settings.max_streams
    )
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context(configuration), limits=limits)
    return http_client_for(configuration, settings, transport=transport)


def http_client_for(
    configuration: kubernetes.client.Configuration,
    settings: ConnectionSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """Like `http_client`, from an already loaded official-client `Configuration`.

    `transport` replaces the network (tests pass an `httpx.MockTransport`).
    """
    if transport is None:
        transport = pooled_transport(
            max_connections=settings.max_connections,
            verify=_ssl_context(configuration),
            keepalive_s=APISERVER_KEEPALIVE_S,
        )
    return httpx.AsyncClient(
        base_url=str(configuration.host),
        auth=_ConfigAuth(configuration),
        timeout=httpx.Timeout(settings.request_timeout_s),
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": settings.user_agent},
    )
