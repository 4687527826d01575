"""A CA and the one leaf it signs, as a unit, and the decision to keep, reissue or rotate them.

`ensure_leaf` is the pure-ish core of `fma-certs ensure` and `fma-certs ensure-control` (it reads
no files and calls no API; it only generates keys): given what is stored now, it returns what
should be stored. It is idempotent: valid material comes back unchanged, so running it on every
install, upgrade or cron tick is safe. A `LeafProfile` says what differs between the two leaves:
the webhook's serving certificate (`ensure_certificates`, here) and the controller's client
certificate (`certs.control`).

- The leaf is reissued when it is missing, unreadable, not signed by the current CA, its key does
  not match, its identity (names) differs from the wanted one, it expires within
  `leaf_renew_before`, or its chain of intermediates is out of date.
- The CA is replaced only when it is missing, unreadable, expires within `ca_renew_before`, or a
  rotation is asked for (then the leaf is reissued too). The old CA stays in the trust bundle
  (`ca.crt`) until it expires, so whoever still trusts only the old CA keeps trusting the current
  leaf until it has the new bundle: rotation needs no downtime window. For the webhook that
  holds because the apiserver gets the new bundle at once; for the control credential, whose
  verifiers keep the bundle they started with, the profile asks for a cross-signed rotation
  (`LeafProfile.cross_signed_rotation`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

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
class Certificates:
    """A CA, the leaf it signed, the intermediates that link the leaf to older CAs (PEM; empty
    but during a cross-signed rotation), and the trust bundle for `caBundle`/`ca.crt` (the
    current CA first, then retired CAs that have not expired)."""

    ca: KeyPair
    leaf: KeyPair
    ca_bundle: bytes
    intermediates: bytes = b""

    def material(self) -> StoredMaterial:
        """The form a store writes: `tls.crt` is the leaf followed by its intermediates."""
        return StoredMaterial(
            ca_cert=self.ca.cert_pem,
            ca_key=self.ca.key_pem,
            tls_cert=self.leaf.cert_pem + self.intermediates,
            tls_key=self.leaf.key_pem,
            ca_bundle=self.ca_bundle,
        )


@dataclass(frozen=True)
class Outcome:
    """What `ensure_certificates` decided, with the reasons (for logs and the CLI's output).

    A store writes the CA when `ca_rotated`, and the leaf's material (`tls.crt`, `tls.key`,
    `ca.crt`) when `leaf_issued` or `bundle_changed`; nothing when `changed` is false.
    """

    certificates: Certificates
    ca_rotated: bool
    leaf_issued: bool
    bundle_changed: bool
    reasons: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.ca_rotated or self.leaf_issued or self.bundle_changed


Decide = Callable[[StoredMaterial | None], Outcome]
"""What a store calls with what it holds (None: start afresh) to learn what to write."""


@dataclass(frozen=True)
class LeafProfile:
    """What differs between the leaves `ensure_leaf` keeps.

    `label` names the leaf in the reasons; `issue` signs a new one; `identity_problem` says why
    a stored one is not the wanted identity (None: it is). `ca_common_name` is the CA's CN; with
    `cross_signed_rotation` it gets a generation suffix (so each CA's subject differs), a
    rotation has the old CA cross-sign the new one, and the leaf carries that cross-certificate
    while the old CA is valid: verifiers holding only the old CA keep accepting new leaves.
    """

    label: str
    ca_common_name: str
    issue: Callable[[CertificateAuthority, dt.timedelta], KeyPair]
    identity_problem: Callable[[x509.Certificate], str | None]
    cross_signed_rotation: bool = False


def ensure_certificates(
    current: StoredMaterial | None,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    policy: RenewalPolicy | None = None,
    now: dt.datetime | None = None,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
) -> Outcome:
    """The webhook's CA and serving certificate for exactly these names (see the module doc)."""
    wanted = _Names.of(dns_names, ip_addresses)

    def issue(authority: CertificateAuthority, lifetime: dt.timedelta) -> KeyPair:
        return authority.issue_serving(dns_names, ip_addresses, lifetime=lifetime)

    def identity_problem(cert: x509.Certificate) -> str | None:
        if _Names.in_certificate(cert) != wanted:
            return "its names differ from the wanted ones"
        return None

    profile = LeafProfile("serving certificate", ca_common_name, issue, identity_problem)
    return ensure_leaf(current, profile, policy=policy, now=now)


def ensure_leaf(
    current: StoredMaterial | None,
    profile: LeafProfile,
    *,
    policy: RenewalPolicy | None = None,
    now: dt.datetime | None = None,
    rotate_ca: bool = False,
) -> Outcome:
    """Keep what is valid, reissue the leaf or rotate the CA when due or asked (`rotate_ca`)."""
    policy = policy or RenewalPolicy()
    now = now or dt.datetime.now(dt.UTC)
    stored = current or StoredMaterial()
    reasons: list[str] = []
    previous = _stored_ca(stored, reasons)
    authority = previous
    if previous is not None:
        problem = (
            "a CA rotation was asked for: rotating the CA"
            if rotate_ca
            else _ca_problem(previous.keypair, policy, now)
        )
        if problem is not None:
            reasons.append(problem)
            authority = None
    ca_rotated = authority is None
    if authority is None:
        authority = _new_ca(profile, policy, now, previous)
    bundle = _trust_bundle(authority, stored, now)
    if not profile.cross_signed_rotation:
        chain: list[x509.Certificate] = []
    elif ca_rotated:
        chain = _cross_certificates(previous, authority, now)
    else:
        chain = _carried_chain(stored, authority, bundle, now)
    intermediates = b"".join(_pem(c) for c in chain)
    leaf = (
        None
        if ca_rotated
        else _usable_leaf(
            stored,
            authority,
            profile,
            intermediates=intermediates,
            policy=policy,
            now=now,
            reasons=reasons,
        )
    )
    leaf_issued = leaf is None
    if leaf is None:
        leaf = profile.issue(authority, policy.leaf_lifetime)
    bundle_changed = bundle != stored.ca_bundle
    if bundle_changed and not reasons:
        reasons.append("the trust bundle (ca.crt) is out of date")
    certificates = Certificates(authority.keypair, leaf, bundle, intermediates)
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


def _stored_ca(stored: StoredMaterial, reasons: list[str]) -> CertificateAuthority | None:
    """The stored CA if it is one (readable, a CA, its key), else None with the reason."""
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
    return authority


def _ca_problem(ca: KeyPair, policy: RenewalPolicy, now: dt.datetime) -> str | None:
    """Why a readable CA cannot keep signing for a while (None: it can)."""
    cert = ca.certificate
    if cert.not_valid_before_utc > now:
        return "the stored CA is not valid yet: creating a new one"
    if needs_renewal(ca, before=policy.ca_renew_before, now=now):
        return f"the CA expires {cert.not_valid_after_utc:%Y-%m-%d}: rotating it"
    return None


def _new_ca(
    profile: LeafProfile,
    policy: RenewalPolicy,
    now: dt.datetime,
    previous: CertificateAuthority | None,
) -> CertificateAuthority:
    """A new CA. Under a cross-signed rotation its CN carries a generation (the UTC time), so a
    leaf's issuer names exactly one CA, and its path length admits the cross-certificate."""
    if not profile.cross_signed_rotation:
        return CertificateAuthority.create(profile.ca_common_name, lifetime=policy.ca_lifetime)
    name = f"{profile.ca_common_name}-{now:%Y%m%dT%H%M%SZ}"
    if previous is not None and _common_name(previous.keypair.certificate) == name:
        name += "-2"  # a second rotation within the same second
    return CertificateAuthority.create(name, lifetime=policy.ca_lifetime, path_length=1)


def _common_name(cert: x509.Certificate) -> str:
    return ",".join(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))


def _cross_certificates(
    previous: CertificateAuthority | None, authority: CertificateAuthority, now: dt.datetime
) -> list[x509.Certificate]:
    """The new CA certified by the old one, when the old one can still vouch for it."""
    if previous is None or not _valid_at(previous.keypair.certificate, now):
        return []
    return [x509.load_pem_x509_certificate(previous.cross_sign(authority.keypair.certificate))]


def _carried_chain(
    stored: StoredMaterial, authority: CertificateAuthority, bundle: bytes, now: dt.datetime
) -> list[x509.Certificate]:
    """The stored intermediates that still link the current CA to another CA of the bundle."""
    ca = authority.keypair.certificate
    anchors = [c for c in _certificates(bundle) if c != ca]
    return [
        cert
        for cert in _certificates(stored.tls_cert)[1:]
        if cert.subject == ca.subject
        and cert.public_key() == ca.public_key()
        and _valid_at(cert, now)
        and any(_issued_by(cert, anchor) for anchor in anchors)
    ]


def _usable_leaf(
    stored: StoredMaterial,
    authority: CertificateAuthority,
    profile: LeafProfile,
    *,
    intermediates: bytes,
    policy: RenewalPolicy,
    now: dt.datetime,
    reasons: list[str],
) -> KeyPair | None:
    """The stored leaf (without its intermediates) if it is still right, else None with the
    reason recorded."""
    label = profile.label
    if not stored.tls_cert or not stored.tls_key:
        reasons.append(f"no {label} stored: issuing one")
        return None
    stored_chain = _certificates(stored.tls_cert)
    if not stored_chain or not _issued_by(stored_chain[0], authority.keypair.certificate):
        reasons.append(f"the {label} is unreadable or not signed by the CA: reissuing")
        return None
    cert = stored_chain[0]
    leaf = KeyPair(_pem(cert), stored.tls_key)
    problem = None
    if not _key_matches(cert, stored.tls_key):
        problem = "its key does not match"
    elif (identity := profile.identity_problem(cert)) is not None:
        problem = identity
    elif cert.not_valid_before_utc > now:
        problem = "it is not valid yet"
    elif needs_renewal(leaf, before=policy.leaf_renew_before, now=now):
        problem = f"it expires {cert.not_valid_after_utc:%Y-%m-%d}"
    elif b"".join(_pem(c) for c in stored_chain[1:]) != intermediates:
        problem = "its chain of intermediate certificates is out of date"
    if problem is not None:
        reasons.append(f"{label}: {problem}: reissuing")
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
    return b"".join(_pem(c) for c in kept)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
        return False
    return True


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


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
