"""Control tokens: who may sign, what a token is bound to, and a CA rotation under way.

The credentials come from `fma-certs`' own code (`tests.controlkit`), so these tests also show
that what the certificate tool issues is what the verifiers accept.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from certs.authority import CertificateAuthority
from certs.control import ensure_control_directory
from contract import auth
from controlauth import (
    AuthError,
    Credentials,
    Signer,
    TrustAnchors,
    Verifier,
    controller_auth_from_dir,
    verifier_from_env,
)
from tests.controlkit import ControlKit, control_kit

UID = "pod-uid"
PATH = "/v2/vllm/instances/abc"


@pytest.fixture
def kit(tmp_path: Path) -> ControlKit:
    return control_kit(tmp_path / "control")


def test_the_controllers_token_is_accepted_once(kit: ControlKit) -> None:
    verifier = kit.verifier(UID)
    header = kit.header("PUT", PATH, UID, b'{"options":""}')
    verifier.check(header, "PUT", PATH, b'{"options":""}')
    with pytest.raises(AuthError, match="used before"):
        verifier.check(header, "PUT", PATH, b'{"options":""}')


@pytest.mark.parametrize(
    ("method", "target", "body", "uid", "needle"),
    [
        ("PUT", PATH, b"other", UID, "body"),
        ("DELETE", PATH, b"", UID, "another request"),
        ("PUT", PATH + "?x", b"", UID, "another request"),
        ("PUT", PATH, b"", "another-pod", "another Pod"),
    ],
)
def test_a_token_is_bound_to_its_request_and_pod(
    kit: ControlKit, method: str, target: str, body: bytes, uid: str, needle: str
) -> None:
    header = kit.header("PUT", PATH, UID, b"")
    with pytest.raises(AuthError, match=needle):
        Verifier(kit.anchors, uid).check(header, method, target, body)


@pytest.mark.parametrize(
    "header", [None, "", "Basic abc", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c"]
)
def test_malformed_headers_are_refused_with_a_reason(kit: ControlKit, header: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        kit.verifier(UID).check(header, "PUT", PATH, b"")
    assert str(caught.value)


def test_an_expired_or_long_lived_token_is_refused(kit: ControlKit) -> None:
    old = Signer(lambda: _credentials(kit), clock=lambda: time.time() - 600)
    with pytest.raises(AuthError, match="expired"):
        kit.verifier(UID).check(old.authorization("PUT", PATH, b"", UID), "PUT", PATH, b"")
    claims = _claims(kit.header("PUT", PATH, UID))
    claims["exp"] = claims["iat"] + 3600
    forged = _sign(kit, claims)
    with pytest.raises(AuthError, match="longer"):
        kit.verifier(UID).check(forged, "PUT", PATH, b"")


def test_a_foreign_ca_or_a_certificate_without_the_identity_signs_nothing(
    kit: ControlKit, tmp_path: Path
) -> None:
    stranger = control_kit(tmp_path / "stranger")  # a CA fma's Pods do not trust
    with pytest.raises(AuthError, match="not issued by a trusted control CA"):
        kit.verifier(UID).check(stranger.header("PUT", PATH, UID), "PUT", PATH, b"")
    # A serving certificate of a CA the verifier trusts is still not the controller's.
    ca = CertificateAuthority.create("fma-webhook-ca")
    serving = ca.issue_serving(["fma-webhook.fma-system.svc"])
    impostor = Signer(lambda: Credentials.from_pem(serving.key_pem, serving.cert_pem, source="x"))
    anchors = TrustAnchors.from_pem(ca.cert_pem, source="webhook CA")
    with pytest.raises(AuthError, match="not fma's controller certificate"):
        Verifier(lambda: anchors, UID).check(
            impostor.authorization("PUT", PATH, b"", UID), "PUT", PATH, b""
        )


def test_a_ca_rotation_keeps_old_and_new_pods_working(kit: ControlKit, tmp_path: Path) -> None:
    """Pods carry the bundle of their creation; after a rotation the controller's chain (leaf,
    cross-certificate) satisfies both the Pods made before and those made after."""
    before = kit.verifier("old-pod")
    ensure_control_directory(kit.directory, rotate_ca=True)
    rotated = controller_auth_from_dir(kit.directory, interval_s=0.0)
    after_anchors = TrustAnchors.from_pem(rotated.trust(), source="rotated")
    assert len(after_anchors.certificates) == 2  # the new CA, then the old one
    after = Verifier(lambda: after_anchors, "new-pod")
    assert len(_header_of(rotated.signer.authorization("PUT", PATH, b"", "x"))["x5c"]) == 2
    before.check(rotated.signer.authorization("PUT", PATH, b"", "old-pod"), "PUT", PATH, b"")
    after.check(rotated.signer.authorization("PUT", PATH, b"", "new-pod"), "PUT", PATH, b"")
    only_new = TrustAnchors(after_anchors.certificates[:1])
    Verifier(lambda: only_new, "newer").check(
        rotated.signer.authorization("PUT", PATH, b"", "newer"), "PUT", PATH, b""
    )


def test_the_controller_picks_up_renewed_files_without_a_restart(
    kit: ControlKit, tmp_path: Path
) -> None:
    live = controller_auth_from_dir(kit.directory, interval_s=0.0)
    first = _header_of(live.signer.authorization("PUT", PATH, b"", UID))["x5c"]
    copy = tmp_path / "renewed"
    shutil.copytree(kit.directory, copy)
    for name in (auth.KEY_FILE, auth.CERT_FILE):
        (copy / name).unlink()
    ensure_control_directory(copy)  # a new leaf under the same CA
    for name in (auth.KEY_FILE, auth.CERT_FILE):
        (copy / name).replace(kit.directory / name)
    second = _header_of(live.signer.authorization("PUT", PATH, b"", UID))["x5c"]
    assert first != second
    kit.verifier(UID).check(live.signer.authorization("PUT", PATH, b"", UID), "PUT", PATH, b"")
    (kit.directory / auth.KEY_FILE).write_text("garbage")  # a half-written renewal
    kept = _header_of(live.signer.authorization("PUT", PATH, b"", UID))["x5c"]
    assert kept == second  # the last good credential stays in use


def test_the_environment_decides_on_or_off(kit: ControlKit) -> None:
    assert verifier_from_env({auth.MODE_ENV: "off"}) is None
    assert verifier_from_env({auth.MODE_ENV: "OFF", auth.TRUST_ENV: "x"}) is None
    with pytest.raises(ValueError, match=auth.MODE_ENV):
        verifier_from_env({auth.MODE_ENV: "maybe"})
    with pytest.raises(ValueError, match="CA certificate"):
        verifier_from_env({auth.TRUST_ENV: _leaf_pem(kit), auth.POD_UID_ENV: UID})
    verifier = verifier_from_env(kit.env(UID))
    assert verifier is not None
    verifier.check(kit.header("POST", "/v1/become-ready", UID), "POST", "/v1/become-ready", b"")


def test_a_pods_environment_names_its_uid_from_the_downward_api() -> None:
    entries = {e["name"]: e for e in auth.verifier_env("PEM")}
    assert entries[auth.POD_UID_ENV]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert entries[auth.TRUST_ENV]["value"] == "PEM"
    off = {e["name"]: e for e in auth.verifier_env(None)}
    assert off[auth.MODE_ENV]["value"] == auth.MODE_OFF and auth.TRUST_ENV not in off


# --- helpers -----------------------------------------------------------------------------------


def _credentials(kit: ControlKit) -> Credentials:
    key = (kit.directory / auth.KEY_FILE).read_bytes()
    return Credentials.from_pem(key, (kit.directory / auth.CERT_FILE).read_bytes(), source="t")


def _leaf_pem(kit: ControlKit) -> str:
    return (kit.directory / auth.CERT_FILE).read_text()


def _header_of(authorization: str) -> dict[str, Any]:
    return jwt.get_unverified_header(authorization.removeprefix("Bearer "))


def _claims(authorization: str) -> dict[str, Any]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "==")))


def _sign(kit: ControlKit, claims: dict[str, Any]) -> str:
    credentials = _credentials(kit)
    headers = {"typ": auth.TOKEN_TYPE, "x5c": credentials.x5c}
    return "Bearer " + jwt.encode(claims, credentials.key, algorithm="ES256", headers=headers)
