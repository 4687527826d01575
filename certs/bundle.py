"""The webhook's certificates as one unit, and the decision to keep, reissue or rotate them.

`ensure_certificates` is the pure-ish core of `fma-certs ensure` (it reads no files and calls no
API; it only generates keys): given what is stored now, it returns what should be stored.
It is idempotent: valid material comes back unchanged, so running it on every install, upgrade
or cron tick is safe.

- The serving (leaf) certificate is reissued when it is missing, unreadable, not signed by the
  current CA, its key does not match, its names differ from the wanted ones, or it expires within
  `leaf_renew_before`.
- The CA is replaced only when it is missing, unreadable or expires within `ca_renew_before`
  (then the leaf is reissued too). The old CA stays in the trust bundle (`ca.crt`) until it
  expires, so the apiserver keeps trusting the running webhook's current leaf until the webhook
  has reloaded the new one: rotation needs no downtime window.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certs.authority import (
    DEFAULT_CA_LIFETIME,
    DEFAULT_LEAF_LIFETIME,
    CertificateAuthority,
    KeyPair,
    needs_renewal,
)

DEFAULT_LEAF_RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_CA_RENEW_BEFORE = dt.timedelta(days=90)
DEFAULT_CA_COMMON_NAME = "fma-webhook-ca"


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = "cluster.local"
) -> list[str]:
    """Every name a client may use for a Service: the apiserver uses `<svc>.<ns>.svc`."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


@dataclass(frozen=True, kw_only=True)
class RenewalPolicy:
    """Lifetimes and renew-before windows. The CA window must cover the leaf window, or a leaf
    (whose expiry is capped at the CA's) would be due for renewal on every run."""

    leaf_lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME
    ca_lifetime: dt.timedelta = DEFAULT_CA_LIFETIME
    leaf_renew_before: dt.timedelta = DEFAULT_LEAF_RENEW_BEFORE
    ca_renew_before: dt.timedelta = DEFAULT_CA_RENEW_BEFORE

    def __post_init__(self) -> None:
        if self.leaf_renew_before >= self.leaf_lifetime:
            raise ValueError("leaf_renew_before must be shorter than leaf_lifetime")
        if self.ca_renew_before >= self.ca_lifetime:
            raise ValueError("ca_renew_before must be shorter than ca_lifetime")
        if self.ca_renew_before < self.leaf_renew_before:
            raise ValueError("ca_renew_before must be at least leaf_renew_before")


@dataclass(frozen=True)
class StoredMaterial:
    """What a store holds now, as raw PEM bytes; any part may be missing or garbage."""

    ca_cert: bytes | None = None
    ca_key: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    ca_bundle: bytes | None = None


@dataclass(frozen=True)
class WebhookCertificates:
    """A CA, the serving certificate it signed, and the trust bundle for `caBundle`/`ca.crt`
    (the current CA first, then retired CAs that have not expired)."""

    ca: KeyPair
    serving: KeyPair
    ca_bundle: bytes

    def material(self) -> StoredMaterial:
        """The form a store writes."""
        return StoredMaterial(
            ca_cert=self.ca.cert_pem,
            ca_key=self.ca.key_pem,
            tls_cert=self.serving.cert_pem,
            tls_key=self.serving.key_pem,
            ca_bundle=self.ca_bundle,
        )


@dataclass(frozen=True)
class Outcome:
    """What `ensure_certificates` decided, with the reasons (for logs and the CLI's output).

    A store writes the CA when `ca_rotated`, and the serving material when `leaf_issued` or
    `bundle_changed`; nothing when `changed` is false.
    """

    certificates: WebhookCertificates
    ca_rotated: bool
    leaf_issued: bool
    bundle_changed: bool
    reasons: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.ca_rotated or self.leaf_issued or self.bundle_changed


def ensure_certificates(
    current: StoredMaterial | None,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    policy: RenewalPolicy | None = None,
    now: dt.datetime | None = None,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
) -> Outcome:
    """Keep what is valid, reissue the leaf or rotate the CA when due (see the module doc)."""
    policy = policy or RenewalPolicy()
    now = now or dt.datetime.now(dt.UTC)
    stored = current or StoredMaterial()
    wanted = _Names.of(dns_names, ip_addresses)
    reasons: list[str] = []
    authority = _usable_ca(stored, policy, now, reasons)
    ca_rotated = authority is None
    if authority is None:
        authority = CertificateAuthority.create(ca_common_name, lifetime=policy.ca_lifetime)
    leaf = (
        None
        if ca_rotated
        else _usable_leaf(stored, authority, wanted=wanted, policy=policy, now=now, reasons=reasons)
    )
    leaf_issued = leaf is None
    if leaf is None:
        leaf = authority.issue_serving(dns_names, ip_addresses, lifetime=policy.leaf_lifetime)
    bundle = _trust_bundle(authority, stored, now)
    bundle_changed = bundle != stored.ca_bundle
    if bundle_changed and not reasons:
        reasons.append("the trust bundle (ca.crt) is out of date")
    certificates = WebhookCertificates(authority.keypair, leaf, bundle)
    return Outcome(certificates, ca_rotated, leaf_issued, bundle_changed, tuple(reasons))


@dataclass(frozen=True)
class _Names:
    """Subject alternative names, compared as sets (order carries no meaning)."""

    dns: frozenset[str]
    ips: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]

    @classmethod
    def of(cls, dns_names: Sequence[str], ip_addresses: Sequence[str]) -> _Names:
        return cls(frozenset(dns_names), frozenset(ipaddress.ip_address(a) for a in ip_addresses))

    @classmethod
    def in_certificate(cls, cert: x509.Certificate) -> _Names:
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls(frozenset(), frozenset())
        return cls(
            frozenset(sans.get_values_for_type(x509.DNSName)),
            frozenset(sans.get_values_for_type(x509.IPAddress)),  # type: ignore[arg-type]
        )


def _usable_ca(
    stored: StoredMaterial, policy: RenewalPolicy, now: dt.datetime, reasons: list[str]
) -> CertificateAuthority | None:
    """The stored CA if it can keep signing for a while, else None with the reason recorded."""
    if not stored.ca_cert or not stored.ca_key:
        reasons.append("no CA stored: creating one")
        return None
    try:
        authority = CertificateAuthority(KeyPair(stored.ca_cert, stored.ca_key))
        cert = authority.keypair.certificate
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        reasons.append("the stored CA cannot be read: creating a new one")
        return None
    if not is_ca or not _key_matches(cert, stored.ca_key):
        reasons.append("the stored CA certificate and key do not form a CA: creating a new one")
        return None
    if cert.not_valid_before_utc > now:
        reasons.append("the stored CA is not valid yet: creating a new one")
        return None
    if needs_renewal(authority.keypair, before=policy.ca_renew_before, now=now):
        reasons.append(f"the CA expires {cert.not_valid_after_utc:%Y-%m-%d}: rotating it")
        return None
    return authority


def _usable_leaf(
    stored: StoredMaterial,
    authority: CertificateAuthority,
    *,
    wanted: _Names,
    policy: RenewalPolicy,
    now: dt.datetime,
    reasons: list[str],
) -> KeyPair | None:
    """The stored serving pair if it is still right, else None with the reason recorded."""
    if not stored.tls_cert or not stored.tls_key:
        reasons.append("no serving certificate stored: issuing one")
        return None
    leaf = KeyPair(stored.tls_cert, stored.tls_key)
    try:
        cert = leaf.certificate
        cert.verify_directly_issued_by(authority.keypair.certificate)
        key_ok = _key_matches(cert, stored.tls_key)
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
        reasons.append("the serving certificate is unreadable or not signed by the CA: reissuing")
        return None
    problem = None
    if not key_ok:
        problem = "its key does not match"
    elif _Names.in_certificate(cert) != wanted:
        problem = "its names differ from the wanted ones"
    elif cert.not_valid_before_utc > now:
        problem = "it is not valid yet"
    elif needs_renewal(leaf, before=policy.leaf_renew_before, now=now):
        problem = f"it expires {cert.not_valid_after_utc:%Y-%m-%d}"
    if problem is not None:
        reasons.append(f"serving certificate: {problem}: reissuing")
        return None
    return leaf


def _key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    """True when `key_pem` is the private key of `cert`'s public key."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))


def _trust_bundle(
    authority: CertificateAuthority, stored: StoredMaterial, now: dt.datetime
) -> bytes:
    """The current CA, then the other unexpired CAs of the old bundle and the old CA."""
    current = authority.keypair.certificate
    kept = [current]
    for cert in _certificates(stored.ca_bundle) + _certificates(stored.ca_cert):
        if cert.not_valid_after_utc <= now or any(cert == k for k in kept):
            continue
        if _is_ca(cert):
            kept.append(cert)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in kept)


def _certificates(pem: bytes | None) -> list[x509.Certificate]:
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
