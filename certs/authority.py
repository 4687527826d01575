"""A small X.509 certificate authority: a CA and the serving certificates it signs.

fma needs TLS in three places that have no cert-manager: the local test control plane
(kube-apiserver's serving certificate), the webhook's serving certificate in tests, and the Helm
chart's self-managed mode; and a client certificate for the controller's signed control requests
(`certs.control`). One implementation keeps the key sizes, lifetimes and extensions the same
everywhere. Keys are ECDSA P-256: small, fast to make, accepted by Go's and Python's TLS stacks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_CA_LIFETIME = dt.timedelta(days=3650)
DEFAULT_LEAF_LIFETIME = dt.timedelta(days=365)
# Backdating absorbs clock skew between the machine that signs and the ones that verify.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateAuthority:
    """Signs serving and client certificates with one CA key."""

    def __init__(self, keypair: KeyPair) -> None:
        self.keypair = keypair
        self._cert = keypair.certificate
        key = serialization.load_pem_private_key(keypair.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key must be an ECDSA key")
        self._key = key

    @classmethod
    def create(
        cls,
        common_name: str,
        *,
        lifetime: dt.timedelta = DEFAULT_CA_LIFETIME,
        path_length: int = 0,
    ) -> CertificateAuthority:
        """A self-signed CA. `path_length` 1 lets a cross-certificate (`cross_sign`) stand
        between this CA, as a trust anchor, and a leaf: verifiers such as Go's and OpenSSL's
        apply the anchor's path length too."""
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            _builder(
                name, name, key.public_key(), _now() + lifetime, ca=True, path_length=path_length
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)))

    @property
    def cert_pem(self) -> bytes:
        return self.keypair.cert_pem

    def issue_serving(
        self,
        dns_names: Iterable[str],
        ip_addresses: Iterable[str] = (),
        *,
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
    ) -> KeyPair:
        """A server certificate whose subject alternative names are exactly the given names."""
        dns = list(dns_names)
        ips = [ipaddress.ip_address(a) for a in ip_addresses]
        if not dns and not ips:
            raise ValueError("a serving certificate needs at least one DNS name or IP address")
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ip) for ip in ips]
        common_name = dns[0] if dns else str(ips[0])
        return self._issue(common_name, (), sans, ExtendedKeyUsageOID.SERVER_AUTH, lifetime)

    def issue_client(
        self,
        user: str,
        groups: Iterable[str] = (),
        *,
        uris: Iterable[str] = (),
        lifetime: dt.timedelta = DEFAULT_LEAF_LIFETIME,
    ) -> KeyPair:
        """A client certificate in Kubernetes' convention: CN is the user, O the groups; `uris`
        become URI subject alternative names (an identity such as a SPIFFE ID)."""
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        return self._issue(user, tuple(groups), sans, ExtendedKeyUsageOID.CLIENT_AUTH, lifetime)

    def cross_sign(self, other: x509.Certificate) -> bytes:
        """`other` CA's subject and public key, certified by this CA (PEM): a cross-certificate.

        A verifier that trusts only this CA then accepts leaves signed by `other`, through the
        chain leaf -> cross-certificate -> this CA. Path length 0: it certifies leaves only. It
        ends when this CA does, since nothing it certifies can outlive its issuer.
        """
        not_after = min(other.not_valid_after_utc, self._cert.not_valid_after_utc)
        cert = (
            _builder(other.subject, self._cert.subject, other.public_key(), not_after, ca=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(other.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        common_name: str,
        organizations: tuple[str, ...],
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        lifetime: dt.timedelta,
    ) -> KeyPair:
        key = _new_key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        not_after = min(_now() + lifetime, self._cert.not_valid_after_utc)
        builder = (
            _builder(x509.Name(attrs), self._cert.subject, key.public_key(), not_after, ca=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_after: dt.datetime,
    *,
    ca: bool,
    path_length: int = 0,
) -> x509.CertificateBuilder:
    """What a CA and a leaf certificate share: names, key, validity, basic constraints and key
    usage (a CA signs certificates and CRLs; a leaf only signs handshakes and tokens)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def needs_renewal(
    keypair: KeyPair, *, before: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """True when the certificate expires within `before` (renew early, never on the last day)."""
    return keypair.not_after - (now or _now()) <= before
