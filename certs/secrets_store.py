"""Certificates in Kubernetes Secrets, written with optimistic concurrency.

Two Secrets, so that the Pods which mount the leaf never see the CA key:
- the leaf Secret (type `kubernetes.io/tls`): `tls.crt`, `tls.key` and `ca.crt` (the trust
  bundle): the webhook's serving certificate, which the webhook mounts and a chart reads
  `caBundle` from, or the controller's control credential (`certs.control`), which the
  controller mounts;
- the CA Secret (type `kubernetes.io/tls`, default name `<leaf>-ca`): the CA's `tls.crt` and
  `tls.key`, read only by whoever runs `fma-certs ensure` or `fma-certs ensure-control`.

Every write carries the `resourceVersion` that was read (a create carries none and fails if the
Secret appeared meanwhile). Two runners started together (two Helm hooks, a Job and a CronJob)
therefore never overwrite each other: the loser gets 409 Conflict, reads again, finds the
winner's certificates valid and keeps them. The CA Secret is written before the leaf Secret,
so a leaf is never stored without its CA.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import kubernetes.client
from kubernetes.client.rest import ApiException

from certs.bundle import Decide, Outcome, RenewalPolicy, StoredMaterial, ensure_certificates
from certs.files import CA_CERT, TLS_CERT, TLS_KEY

TLS_SECRET_TYPE: Final = "kubernetes.io/tls"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "fma-certs"}
DEFAULT_ATTEMPTS: Final = 5
_CONFLICT: Final = 409
_NOT_FOUND: Final = 404


@dataclass(frozen=True)
class SecretRef:
    """Where the certificates live: the leaf Secret and the CA Secret, in one namespace."""

    namespace: str
    name: str
    ca_name: str = ""

    @property
    def ca_secret_name(self) -> str:
        return self.ca_name or f"{self.name}-ca"


@dataclass(frozen=True)
class _Read:
    """The Secrets as read (None: absent), kept whole so a replace preserves their metadata."""

    material: StoredMaterial
    ca_secret: Any
    leaf_secret: Any


class ConcurrentUpdateError(RuntimeError):
    """Another writer kept changing the Secrets; every attempt met a newer version."""


def read_secrets(core: kubernetes.client.CoreV1Api, ref: SecretRef) -> StoredMaterial:
    """What the Secrets hold now (missing Secrets or keys read as None)."""
    return _read(core, ref).material


def ensure_secrets(
    api_client: kubernetes.client.ApiClient,
    ref: SecretRef,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    policy: RenewalPolicy | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    fresh: bool = False,
) -> Outcome:
    """The webhook's certificates in Secrets (`update_secrets` with `ensure_certificates`)."""
    decide = functools.partial(
        ensure_certificates, dns_names=dns_names, ip_addresses=ip_addresses, policy=policy
    )
    return update_secrets(api_client, ref, decide, attempts=attempts, fresh=fresh)


def update_secrets(
    api_client: kubernetes.client.ApiClient,
    ref: SecretRef,
    decide: Decide,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    fresh: bool = False,
) -> Outcome:
    """Read, decide, write what changed; retry on a conflict (deciding again on what the
    winner wrote). `fresh` ignores the stored certificates (a new CA and leaf, written over the
    old ones).

    Raises ConcurrentUpdateError when every attempt lost a race, ValueError when a Secret of that
    name has another type, and `ApiException` for any other API error (e.g. missing RBAC).
    """
    core = kubernetes.client.CoreV1Api(api_client)
    for _ in range(attempts):
        current = _read(core, ref)
        outcome = decide(None if fresh else current.material)
        try:
            _write(core, ref, outcome, current)
        except ApiException as error:
            if error.status == _CONFLICT:
                continue
            raise
        return outcome
    raise ConcurrentUpdateError(
        f"Secrets {ref.namespace}/{ref.name} kept changing during {attempts} attempts"
    )


def _read(core: kubernetes.client.CoreV1Api, ref: SecretRef) -> _Read:
    ca_secret = _get(core, ref.namespace, ref.ca_secret_name)
    leaf_secret = _get(core, ref.namespace, ref.name)
    ca_data, data = _data(ca_secret), _data(leaf_secret)
    material = StoredMaterial(
        ca_cert=ca_data.get(TLS_CERT),
        ca_key=ca_data.get(TLS_KEY),
        tls_cert=data.get(TLS_CERT),
        tls_key=data.get(TLS_KEY),
        ca_bundle=data.get(CA_CERT),
    )
    return _Read(material, ca_secret, leaf_secret)


def _get(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> Any:
    """The Secret (a `V1Secret`), or None when it does not exist."""
    try:
        return core.read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == _NOT_FOUND:
            return None
        raise


def _data(secret: Any) -> dict[str, bytes]:
    if secret is None:
        return {}
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def _write(
    core: kubernetes.client.CoreV1Api, ref: SecretRef, outcome: Outcome, current: _Read
) -> None:
    material = outcome.certificates.material()
    if outcome.ca_rotated:
        ca_data = {TLS_CERT: material.ca_cert, TLS_KEY: material.ca_key}
        _put(core, ref.namespace, ref.ca_secret_name, ca_data, current.ca_secret)
    if outcome.leaf_issued or outcome.bundle_changed:
        data = {
            TLS_CERT: material.tls_cert,
            TLS_KEY: material.tls_key,
            CA_CERT: material.ca_bundle,
        }
        _put(core, ref.namespace, ref.name, data, current.leaf_secret)


def _put(
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    name: str,
    data: Mapping[str, bytes | None],
    existing: Any,
) -> None:
    """Create the Secret, or replace `existing` at exactly its resourceVersion (keeping its
    labels and annotations). Losing a race surfaces as ApiException 409."""
    encoded = {k: base64.b64encode(v).decode("ascii") for k, v in data.items() if v is not None}
    if existing is None:
        metadata = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
        body = {"metadata": metadata, "type": TLS_SECRET_TYPE, "data": encoded}
        core.create_namespaced_secret(namespace, body)
        return
    if existing.type != TLS_SECRET_TYPE:
        raise ValueError(
            f"Secret {namespace}/{name} has type {existing.type!r}; fma-certs writes "
            f"{TLS_SECRET_TYPE!r} Secrets: delete it or choose another name"
        )
    existing.metadata.labels = {**(existing.metadata.labels or {}), **MANAGED_BY}
    existing.data = encoded
    core.replace_namespaced_secret(name, namespace, existing)
