"""The controller's control credential (`certs.control`, `fma-certs ensure-control`): issue, keep,
renew, and rotate the control CA cross-signed, so Pods holding an older bundle keep verifying."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from certs.authority import CertificateAuthority, KeyPair
from certs.bundle import Outcome, RenewalPolicy, StoredMaterial, ensure_certificates
from certs.cli import main
from certs.control import (
    CONTROL_POLICY,
    ensure_control_credentials,
    ensure_control_directory,
)
from certs.files import read_directory, update_directory
from contract import auth
from controlauth.chain import AuthError, TrustAnchors, verify_chain
from controlauth.sources import credentials_from_dir
from controlauth.tokens import Signer, Verifier

DAY = dt.timedelta(days=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def chain_of(material: StoredMaterial) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(material.tls_cert or b"")


def bundle_of(material: StoredMaterial) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(material.ca_bundle or b"")


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def issued() -> StoredMaterial:
    return ensure_control_credentials(None).certificates.material()


def rotated(material: StoredMaterial, **kwargs: object) -> Outcome:
    return ensure_control_credentials(material, rotate_ca=True, **kwargs)  # type: ignore[arg-type]


def strictly_verified(material: StoredMaterial, bundle: bytes | None) -> list[x509.Certificate]:
    """The path an RFC 5280 verifier (path length included) builds from `material`'s chain to
    `bundle`; raises when there is none."""
    chain = chain_of(material)
    store = Store(x509.load_pem_x509_certificates(bundle or b""))
    verifier = PolicyBuilder().store(store).build_client_verifier()
    return list(verifier.verify(chain[0], chain[1:]).chain)


def test_fresh_issue_is_the_controllers_identity_under_a_control_ca() -> None:
    outcome = ensure_control_credentials(None)
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (True, True, True)
    material = outcome.certificates.material()
    [leaf] = chain_of(material)
    ca = outcome.certificates.ca.certificate
    assert bundle_of(material) == [ca]
    assert common_name(ca).startswith("fma-control-ca-20")
    assert common_name(leaf) == auth.CONTROLLER_COMMON_NAME
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(sans) == [x509.UniformResourceIdentifier(auth.CONTROLLER_IDENTITY_URI)]
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    assert leaf.not_valid_after_utc - now() < dt.timedelta(days=30, minutes=1)
    leaf.verify_directly_issued_by(ca)
    verify_chain([leaf], TrustAnchors.from_pem(material.ca_bundle or b"", source="t"), now())
    assert strictly_verified(material, material.ca_bundle) == [leaf, ca]


def test_the_control_ca_is_not_the_webhooks() -> None:
    webhook = ensure_certificates(None, dns_names=["fma-webhook"]).certificates
    control = ensure_control_credentials(None).certificates
    assert webhook.ca.certificate.subject != control.ca.certificate.subject
    with pytest.raises(AuthError):
        verify_chain(
            chain_of(control.material()),
            TrustAnchors.from_pem(webhook.ca_bundle, source="webhook"),
            now(),
        )


def test_second_run_keeps_everything() -> None:
    material = issued()
    outcome = ensure_control_credentials(material)
    assert not outcome.changed and outcome.reasons == ()
    assert outcome.certificates.material() == material


def test_leaf_renewal_keeps_the_ca() -> None:
    material = issued()
    expiry = chain_of(material)[0].not_valid_after_utc
    assert not ensure_control_credentials(material, now=expiry - 11 * DAY).changed
    outcome = ensure_control_credentials(material, now=expiry - 9 * DAY)
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (False, True, False)
    assert outcome.reasons[0].startswith("client certificate: it expires ")
    renewed = outcome.certificates.material()
    assert (renewed.ca_cert, renewed.ca_key, renewed.ca_bundle) == (
        material.ca_cert,
        material.ca_key,
        material.ca_bundle,
    )
    assert renewed.tls_cert != material.tls_cert and renewed.tls_key != material.tls_key


def test_a_leaf_with_another_identity_is_reissued() -> None:
    material = issued()
    ca = CertificateAuthority(KeyPair(material.ca_cert or b"", material.ca_key or b""))
    for stranger in (
        ca.issue_serving(["fma-controller"]),
        ca.issue_client(auth.CONTROLLER_COMMON_NAME),
        ca.issue_client("someone", uris=[auth.CONTROLLER_IDENTITY_URI]),
    ):
        forged = dataclasses.replace(material, tls_cert=stranger.cert_pem, tls_key=stranger.key_pem)
        outcome = ensure_control_credentials(forged)
        assert (outcome.ca_rotated, outcome.leaf_issued) == (False, True)
        assert "identity" in outcome.reasons[0]


def test_ca_rotation_cross_signs_the_new_ca_and_keeps_the_old_one_trusted() -> None:
    old = issued()
    outcome = rotated(old)
    assert (outcome.ca_rotated, outcome.leaf_issued, outcome.bundle_changed) == (True, True, True)
    assert outcome.reasons == ("a CA rotation was asked for: rotating the CA",)
    new = outcome.certificates.material()
    old_ca = x509.load_pem_x509_certificate(old.ca_cert or b"")
    new_ca = outcome.certificates.ca.certificate
    assert common_name(new_ca) != common_name(old_ca)
    assert bundle_of(new) == [new_ca, old_ca]
    leaf, cross = chain_of(new)
    # The cross-certificate: the new CA's subject and key, certified by the old CA.
    assert (cross.subject, cross.issuer) == (new_ca.subject, old_ca.subject)
    assert cross.public_key() == new_ca.public_key()
    constraints = cross.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert cross.not_valid_after_utc == old_ca.not_valid_after_utc
    # A leaf signed by the new CA chains to the OLD CA through the cross-certificate...
    leaf.verify_directly_issued_by(new_ca)
    leaf.verify_directly_issued_by(cross)
    cross.verify_directly_issued_by(old_ca)
    # ...which both fma's verifier and a strict RFC 5280 one accept, from either bundle.
    for bundle in (old.ca_bundle, new.ca_bundle):
        verify_chain([leaf, cross], TrustAnchors.from_pem(bundle or b"", source="t"), now())
    assert strictly_verified(new, old.ca_bundle) == [leaf, cross, old_ca]
    assert strictly_verified(new, new.ca_bundle) == [leaf, new_ca]


def test_after_a_rotation_runs_are_idempotent_and_renewals_keep_the_cross_certificate() -> None:
    new = rotated(issued()).certificates.material()
    assert not ensure_control_credentials(new).changed
    expiry = chain_of(new)[0].not_valid_after_utc
    renewed = ensure_control_credentials(new, now=expiry - 9 * DAY)
    assert renewed.leaf_issued and not renewed.ca_rotated
    material = renewed.certificates.material()
    assert chain_of(material)[1:] == chain_of(new)[1:]
    assert material.ca_bundle == new.ca_bundle


def test_a_due_ca_rotates_cross_signed_too() -> None:
    old = issued()
    ca_expiry = x509.load_pem_x509_certificate(old.ca_cert or b"").not_valid_after_utc
    outcome = ensure_control_credentials(old, now=ca_expiry - 89 * DAY)
    assert outcome.ca_rotated and outcome.reasons[0].startswith("the CA expires ")
    assert len(chain_of(outcome.certificates.material())) == 2


def test_the_old_ca_and_the_cross_certificate_leave_once_the_old_ca_expires() -> None:
    short_ca = RenewalPolicy(
        leaf_lifetime=30 * DAY,
        leaf_renew_before=10 * DAY,
        ca_lifetime=100 * DAY,
        ca_renew_before=20 * DAY,
    )
    old = ensure_control_credentials(None, policy=short_ca).certificates.material()
    long_leaf = RenewalPolicy(leaf_lifetime=400 * DAY, leaf_renew_before=10 * DAY)
    new = rotated(old, policy=long_leaf).certificates.material()
    assert len(chain_of(new)) == 2 and len(bundle_of(new)) == 2
    old_expiry = x509.load_pem_x509_certificate(old.ca_cert or b"").not_valid_after_utc
    assert not ensure_control_credentials(new, policy=long_leaf, now=old_expiry - DAY).changed
    later = ensure_control_credentials(new, policy=long_leaf, now=old_expiry + DAY)
    assert (later.ca_rotated, later.leaf_issued, later.bundle_changed) == (False, True, True)
    assert later.reasons == (
        "client certificate: its chain of intermediate certificates is out of date: reissuing",
    )
    material = later.certificates.material()
    assert len(chain_of(material)) == 1
    assert material.ca_bundle == material.ca_cert


def test_a_pod_two_rotations_old_no_longer_verifies() -> None:
    """The cross-certificate links one generation: rotate again only once the Pods created
    before the previous rotation are gone (docs/operations.md, "Certificates")."""
    first = issued()
    second = rotated(first).certificates.material()
    third = rotated(second).certificates.material()
    chain = chain_of(third)
    assert len(bundle_of(third)) == 3
    verify_chain(chain, TrustAnchors.from_pem(second.ca_bundle or b"", source="t"), now())
    with pytest.raises(AuthError, match="not issued by a trusted control CA"):
        verify_chain(chain, TrustAnchors.from_pem(first.ca_bundle or b"", source="t"), now())


def test_directory_holds_the_contract_files(tmp_path: Path) -> None:
    outcome = ensure_control_directory(tmp_path / "control")
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "control").iterdir()}
    assert files == {
        auth.CA_FILE: 0o644,
        auth.CERT_FILE: 0o644,
        auth.KEY_FILE: 0o600,
        "ca.key": 0o600,
    }
    assert read_directory(tmp_path / "control") == outcome.certificates.material()
    assert not ensure_control_directory(tmp_path / "control").changed
    rotation = ensure_control_directory(tmp_path / "control", rotate_ca=True)
    assert rotation.ca_rotated
    assert read_directory(tmp_path / "control") == rotation.certificates.material()


def test_tokens_keep_verifying_while_the_ca_and_the_leaf_rotate_under_bindings(
    tmp_path: Path,
) -> None:
    """The life cycle under load: a rotator renews the leaf, rotates the CA and renews the leaf
    again in the credential directory, while requesters are bound: each new Pod takes the
    bundle as it is at its creation (as the webhook injects it), and the controller signs a call
    to every bound Pod with whatever its reloading credential source holds. Every call must
    verify, whichever generation the Pod's bundle and the controller's chain are from."""
    directory = tmp_path / "control"
    ensure_control_directory(directory)
    credentials = credentials_from_dir(directory, interval_s=0)
    signer = Signer(credentials)
    pods: list[Verifier] = []
    bundles: list[int] = []
    chains: set[int] = set()

    def bind() -> None:
        """A new requester gets the bundle of now; then the controller calls every bound one."""
        bundle = (directory / auth.CA_FILE).read_bytes()
        bundles.append(bundle.count(b"BEGIN CERTIFICATE"))
        anchors = TrustAnchors.from_pem(bundle, source=f"pod {len(pods)}")
        pods.append(Verifier(functools.partial(lambda a: a, anchors), f"uid-{len(pods)}"))
        path = f"/v2/vllm/instances/{len(pods)}"
        for verifier in pods:
            header = signer.authorization("PUT", path, b"{}", verifier.audience)
            verifier.check(header, "PUT", path, b"{}")
            chains.add(len(credentials().chain))

    def renew_leaf() -> None:
        due = now() + 25 * DAY  # the 30-day leaf is within its 10-day window then
        update_directory(directory, functools.partial(ensure_control_credentials, now=due))

    def rotate_ca() -> None:
        ensure_control_directory(directory, rotate_ca=True)

    done = threading.Event()

    def rotator() -> None:
        for step in (renew_leaf, rotate_ca, renew_leaf):
            step()
            done.wait(0.05)
        done.set()

    for _ in range(3):
        bind()
    thread = threading.Thread(target=rotator)
    thread.start()
    try:
        while not done.is_set():
            bind()
            done.wait(0.01)  # a binding rate that keeps the calls per step in the hundreds
    finally:
        done.wait(10)
        thread.join()
    for _ in range(3):
        bind()
    assert (bundles[0], bundles[-1]) == (1, 2)
    assert chains == {1, 2}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else {}), captured.err


def test_cli_ensure_control_rotate_and_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = str(tmp_path)
    code, first, _ = run(capsys, "ensure-control", "--dir", target)
    assert code == 0 and first["caRotated"] and first["leafIssued"]
    assert first["client"] == {
        "subject": f"CN={auth.CONTROLLER_COMMON_NAME}",
        "notAfter": first["client"]["notAfter"],  # type: ignore[index]
        "dnsNames": [],
        "uris": [auth.CONTROLLER_IDENTITY_URI],
    }
    assert "chainCertificates" not in first and first["bundleCertificates"] == 1
    code, again, _ = run(capsys, "ensure-control", "--dir", target)
    assert code == 0 and again["changed"] is False
    code, rotation, _ = run(capsys, "ensure-control", "--dir", target, "--rotate-ca")
    assert code == 0 and rotation["caRotated"]
    assert (rotation["chainCertificates"], rotation["bundleCertificates"]) == (1, 2)
    code, shown, _ = run(capsys, "show", "--dir", target)
    assert code == 0 and shown["client"] == rotation["client"]


def test_cli_ensure_control_policy_defaults_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert CONTROL_POLICY.leaf_lifetime == 30 * DAY
    assert CONTROL_POLICY.leaf_renew_before == 10 * DAY
    code, out, _ = run(
        capsys,
        "ensure-control",
        "--dir",
        str(tmp_path),
        "--leaf-lifetime",
        "2d",
        "--renew-before",
        "1d",
    )
    assert code == 0
    not_after = dt.datetime.fromisoformat(str(out["client"]["notAfter"]))  # type: ignore[index]
    assert not_after - now() < 2 * DAY + dt.timedelta(minutes=1)
    code, _, err = run(capsys, "ensure-control", "--secret", "s")
    assert code == 1 and "--secret needs --namespace" in err
    code, _, err = run(capsys, "ensure-control", "--dir", str(tmp_path), "--renew-before", "40d")
    assert code == 1 and "shorter than" in err
