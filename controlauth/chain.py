"""Which certificates may sign control tokens: a chain from the token's `x5c` to a trust anchor.

The chain is short by design (contract.auth.MAX_CHAIN): the controller's leaf, signed either
directly by a CA in the verifier's bundle, or by a newer CA that the bundle's CA cross-signed.
The second case is what lets the control CA rotate while Pods created with the old bundle keep
running (docs/architecture.md, "Control authentication"). Everything here is pure: the caller
supplies the time and caches the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from contract import auth


class AuthError(Exception):
    """A refused credential or token; the message says what is wrong, never what was expected."""


@dataclass(frozen=True)
class TrustAnchors:
    """The CA certificates a verifier trusts (contract.auth.TRUST_ENV)."""

    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str) -> TrustAnchors:
        """Raises ValueError naming `source` when the bundle holds no CA certificate."""
        try:
            certificates = tuple(x509.load_pem_x509_certificates(pem))
        except ValueError as exc:
            raise ValueError(f"{source}: not a PEM certificate bundle ({exc})") from exc
        if not certificates or not all(_is_ca(c) for c in certificates):
            raise ValueError(f"{source}: every certificate must be a CA certificate")
        return cls(certificates)


@dataclass(frozen=True)
class VerifiedLeaf:
    """A leaf that chains to an anchor, and until when that holds."""

    public_key: ec.EllipticCurvePublicKey
    valid_until: dt.datetime


def verify_chain(
    chain: Sequence[x509.Certificate], anchors: TrustAnchors, now: dt.datetime
) -> VerifiedLeaf:
    """The leaf's key if `chain` (leaf first) is the controller's, issued under `anchors`."""
    if not 1 <= len(chain) <= auth.MAX_CHAIN:
        raise AuthError(f"x5c must hold 1 to {auth.MAX_CHAIN} certificates")
    leaf, intermediates = chain[0], chain[1:]
    _check_controller_leaf(leaf)
    path = [leaf, *_path_to_anchor(leaf, intermediates, anchors)]
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AuthError(f"certificate {cert.subject.rfc4514_string()} is not valid now")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AuthError("the controller's certificate must hold an EC key")
    return VerifiedLeaf(key, min(c.not_valid_after_utc for c in path))


def _check_controller_leaf(leaf: x509.Certificate) -> None:
    if _is_ca(leaf):
        raise AuthError("a CA certificate cannot sign control tokens")
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        uris = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound as exc:
        raise AuthError("the certificate is not fma's controller certificate") from exc
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages or auth.CONTROLLER_IDENTITY_URI not in uris:
        raise AuthError("the certificate is not fma's controller certificate")


def _path_to_anchor(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], anchors: TrustAnchors
) -> list[x509.Certificate]:
    """The certificates above the leaf, up to and including the anchor; raises if none."""
    if anchor := _issuer_of(leaf, anchors.certificates):
        return [anchor]
    for inter in intermediates:
        if (
            _is_ca(inter)
            and _issued_by(leaf, inter)
            and (anchor := _issuer_of(inter, anchors.certificates))
        ):
            return [inter, anchor]
    raise AuthError("the certificate is not issued by a trusted control CA")


def _issuer_of(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    return next((c for c in candidates if _issued_by(cert, c)), None)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
