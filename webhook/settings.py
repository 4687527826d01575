"""The webhook server's settings: one typed, frozen object built from the command line.

Every knob lives here with its default and the reason for it, so the CLI, the tests and the
benchmark build the same thing and nothing reads a global or an environment variable behind the
server's back (the one exception is `POD_NAMESPACE`, the usual downward-API default for the
webhook's own namespace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from contract import auth
from webhook.mutation import MutationSettings, default_requester_image
from webhook.validation import ValidationSettings

DEFAULT_PORT: Final = 9443
"""The usual webhook port: unprivileged, and what controller-runtime webhooks use."""

DEFAULT_RELEASE: Final = "fma"
"""Helm release name assumed when no controller username is given: the controllers then run
as ServiceAccount `fma-fma-controllers` in the webhook's namespace."""


def controller_username(namespace: str, release: str = DEFAULT_RELEASE) -> str:
    """The fma controllers' identity: ServiceAccount `<release>-fma-controllers` in `namespace`."""
    return f"system:serviceaccount:{namespace}:{release}-fma-controllers"


def default_namespace() -> str:
    """The webhook's own namespace: the downward-API `POD_NAMESPACE`, else `fma-system`."""
    return os.environ.get("POD_NAMESPACE", "fma-system")


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """Everything `fma-webhook serve` needs; see `webhook.cli` for the matching flags."""

    tls_cert: Path
    """PEM serving certificate (chain). Re-read whenever the file changes."""
    tls_key: Path
    """PEM private key of `tls_cert`; re-read together with it."""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    kubeconfig: Path | None = None
    """Kubeconfig for the watches; None means in-cluster credentials (`kube.ConnectionSettings`)."""
    namespace: str = field(default_factory=default_namespace)
    """The webhook's own namespace: never mutated, and where the controllers' account lives."""
    requester_image: str = field(default_factory=default_requester_image)
    controller_usernames: frozenset[str] = frozenset()
    """Usernames allowed to write controller-owned Pod fields; empty means
    `controller_username(namespace)`. See `effective_controller_usernames`."""
    cert_reload_interval_s: float = 2.0
    """How often the certificate files are checked for changes. Kubernetes updates a mounted
    Secret within about a minute, so seconds are plenty and cost nothing."""
    watch_timeout_s: int = 300
    """Server-side timeout of each watch request; the watch resumes from its resourceVersion."""
    owner_wait_s: float = 0.5
    """How long an admission may wait for the watch to deliver a Pod's ReplicaSet/StatefulSet
    (it is created just before its Pods). Past it the webhook assumes the most cautious
    selector: all of the Pod's labels."""
    control_auth: str = auth.MODE_ON
    """`off` only for installs whose controller is the reference's, which signs nothing: the
    stubs then accept any caller (contracts §14)."""
    control_trust_file: Path = Path(auth.TRUST_FILE)
    """The control CA bundle given to every stub; re-read like the serving certificate."""
    log_level: str = "info"
    access_log: bool = False
    """uvicorn's per-request access log; off because the handlers log each decision already."""

    def effective_controller_usernames(self) -> frozenset[str]:
        """The configured controller usernames, or the default one for `namespace`."""
        if self.controller_usernames:
            return self.controller_usernames
        return frozenset({controller_username(self.namespace, DEFAULT_RELEASE)})

    def mutation_settings(self) -> MutationSettings:
        """What `mutate_pod` needs from these settings."""
        return MutationSettings(
            requester_image=self.requester_image, webhook_namespace=self.namespace
        )

    def validation_settings(self) -> ValidationSettings:
        """What the validators need from these settings."""
        return ValidationSettings(controller_usernames=self.effective_controller_usernames())
