"""`ensure_certificates`: keep what is valid, reissue the leaf when due, rotate the CA rarely."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

import pytest
from cryptography import x509

from certs.authority import CertificateAuthority
from certs.bundle import (
    Outcome,
    RenewalPolicy,
    StoredMaterial,
    ensure_certificates,
    service_dns_names,
)

NAMES = service_dns_names("fma-webhook", "fma-system")
DAY = dt.timedelta(days=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def first() -> Outcome:
    return ensure_certificates(None, dns_names=NAMES, ip_addresses=["127.0.0.1"])


def again(stored: StoredMaterial, **kwargs: object) -> Outcome:
    options: dict[str, object] = {"dns_names": NAMES, "ip_addresses": ["127.0.0.1"]}
    options.update(kwargs)
    return ensure_certificates(stored, **options)  # type: ignore[arg-type]


def sans(pem: bytes) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    ]


def test_service_dns_names() -> None:
    assert NAMES == [
        "fma-webhook",
        "fma-webhook.fma-system",
        "fma-webhook.fma-system.svc",
        "fma-webhook.fma-system.svc.cluster.local",
    ]
    assert service_dns_names("s", "n", "example.org")[-1] == "s.n.svc.example.org"


def test_first_run_creates_everything() -> None:
    outcome = first()
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (True, True, True)
    assert outcome.changed
    assert outcome.reasons == ("no CA stored: creating one",)
    certificates = outcome.certificates
    assert sans(certificates.leaf.cert_pem) == (NAMES, ["127.0.0.1"])
    leaf = certificates.leaf.certificate
    leaf.verify_directly_issued_by(certificates.ca.certificate)
    assert certificates.ca_bundle == certificates.ca.cert_pem


def test_second_run_keeps_everything() -> None:
    stored = first().certificates.material()
    outcome = again(stored)
    assert not outcome.changed
    assert outcome.reasons == ()
    assert outcome.certificates.material() == stored


def test_names_are_compared_as_sets() -> None:
    stored = first().certificates.material()
    assert not again(stored, dns_names=list(reversed(NAMES))).changed


def test_changed_names_reissue_only_the_leaf() -> None:
    stored = first().certificates.material()
    outcome = again(stored, dns_names=[*NAMES, "extra.example"])
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (False, True, False)
    assert outcome.certificates.ca.cert_pem == stored.ca_cert
    assert "extra.example" in sans(outcome.certificates.leaf.cert_pem)[0]
    assert not again(stored, ip_addresses=["127.0.0.1"]).changed
    assert again(stored, ip_addresses=[]).leaf_issued


def test_leaf_is_renewed_within_the_window_and_not_before() -> None:
    stored = first().certificates.material()
    leaf_expiry = x509.load_pem_x509_certificate(stored.tls_cert or b"").not_valid_after_utc
    assert not again(stored, now=leaf_expiry - dt.timedelta(days=31)).changed
    outcome = again(stored, now=leaf_expiry - dt.timedelta(days=29))
    assert (outcome.ca_rotated, outcome.leaf_issued) == (False, True)
    assert outcome.reasons[0].startswith("serving certificate: it expires ")
    wide = RenewalPolicy(leaf_renew_before=dt.timedelta(days=60))
    assert again(stored, now=leaf_expiry - dt.timedelta(days=59), policy=wide).leaf_issued


def test_ca_near_expiry_is_rotated_and_the_old_one_stays_trusted() -> None:
    stored = first().certificates.material()
    ca_expiry = x509.load_pem_x509_certificate(stored.ca_cert or b"").not_valid_after_utc
    outcome = again(stored, now=ca_expiry - dt.timedelta(days=89))
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (True, True, True)
    assert outcome.certificates.ca.cert_pem != stored.ca_cert
    bundle = x509.load_pem_x509_certificates(outcome.certificates.ca_bundle)
    assert [c.subject for c in bundle] == [outcome.certificates.ca.certificate.subject] * 2
    assert bundle[0] == outcome.certificates.ca.certificate
    assert bundle[1] == x509.load_pem_x509_certificate(stored.ca_cert or b"")


def test_retired_cas_leave_the_bundle_once_expired() -> None:
    short = RenewalPolicy(ca_lifetime=dt.timedelta(days=100))
    old = ensure_certificates(None, dns_names=NAMES, policy=short).certificates.material()
    rotated = again(old, dns_names=NAMES, ip_addresses=[], now=now() + 20 * DAY)
    assert rotated.ca_rotated
    material = rotated.certificates.material()
    assert material.ca_bundle is not None and material.ca_bundle.count(b"BEGIN") == 2
    assert not again(material, ip_addresses=[]).changed
    old_expiry = x509.load_pem_x509_certificate(old.ca_cert or b"").not_valid_after_utc
    later = again(material, ip_addresses=[], now=old_expiry + DAY)
    assert (later.ca_rotated, later.leaf_issued, later.bundle_changed) == (False, False, True)
    assert later.reasons == ("the trust bundle (ca.crt) is out of date",)
    assert later.certificates.ca_bundle == later.certificates.ca.cert_pem


def test_leaf_from_another_ca_is_reissued() -> None:
    stored = first().certificates.material()
    stranger = CertificateAuthority.create("other").issue_serving(NAMES, ["127.0.0.1"])
    forged = dataclasses.replace(stored, tls_cert=stranger.cert_pem, tls_key=stranger.key_pem)
    outcome = again(forged)
    assert (outcome.ca_rotated, outcome.leaf_issued) == (False, True)
    assert "not signed by the CA" in outcome.reasons[0]


def test_mismatched_leaf_key_is_reissued() -> None:
    stored = first().certificates.material()
    other_key = first().certificates.leaf.key_pem
    outcome = again(dataclasses.replace(stored, tls_key=other_key))
    assert outcome.reasons == ("serving certificate: its key does not match: reissuing",)


@pytest.mark.parametrize(
    "damage",
    [
        {"ca_key": None},
        {"ca_cert": b"garbage"},
        {"ca_key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        {"ca_cert": b""},
    ],
)
def test_unusable_ca_is_replaced_with_everything(damage: dict[str, bytes | None]) -> None:
    stored = dataclasses.replace(first().certificates.material(), **damage)
    outcome = again(stored)
    assert outcome.ca_rotated and outcome.leaf_issued


def test_leaf_as_ca_is_not_a_ca() -> None:
    stored = first().certificates.material()
    as_ca = dataclasses.replace(stored, ca_cert=stored.tls_cert, ca_key=stored.tls_key)
    outcome = again(as_ca)
    assert outcome.ca_rotated
    assert "do not form a CA" in outcome.reasons[0]


@pytest.mark.parametrize("damage", [{"tls_cert": b"junk"}, {"tls_key": None}, {"tls_key": b"x"}])
def test_unusable_leaf_is_reissued_with_the_same_ca(damage: dict[str, bytes | None]) -> None:
    stored = dataclasses.replace(first().certificates.material(), **damage)
    outcome = again(stored)
    assert (outcome.ca_rotated, outcome.leaf_issued) == (False, True)


def test_ca_not_yet_valid_is_replaced() -> None:
    stored = first().certificates.material()
    outcome = again(stored, now=now() - dt.timedelta(hours=1))
    assert outcome.ca_rotated
    assert "not valid yet" in outcome.reasons[0]


def test_policy_rejects_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="ca_renew_before must be at least"):
        RenewalPolicy(
            ca_renew_before=dt.timedelta(days=10), leaf_renew_before=dt.timedelta(days=20)
        )
    with pytest.raises(ValueError, match="shorter than leaf_lifetime"):
        RenewalPolicy(leaf_lifetime=DAY, leaf_renew_before=DAY)
    with pytest.raises(ValueError, match="shorter than ca_lifetime"):
        RenewalPolicy(ca_lifetime=dt.timedelta(days=90))


def test_short_lifetimes_are_honoured() -> None:
    policy = RenewalPolicy(
        leaf_lifetime=dt.timedelta(days=3),
        leaf_renew_before=DAY,
        ca_lifetime=dt.timedelta(days=30),
        ca_renew_before=dt.timedelta(days=2),
    )
    outcome = ensure_certificates(None, dns_names=["localhost"], policy=policy)
    leaf = outcome.certificates.leaf.certificate
    assert leaf.not_valid_after_utc - now() < dt.timedelta(days=3, minutes=1)
    assert ipaddress.ip_address("127.0.0.1") not in sans(outcome.certificates.leaf.cert_pem)[1]
