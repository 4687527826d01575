"""The controller's control credential: a client certificate under a control CA of its own.

The controller signs every mutating call to a launcher or a requester stub with a token that
carries its certificate chain; launchers and stubs verify it against the control CA bundle they
got in their environment when their Pod was created (`contract.auth`). This module keeps that
credential, in the same stores and with the same keep-or-renew rules as the webhook's serving
certificate (`certs.bundle.ensure_leaf`):

- a control CA separate from the webhook's (the webhook's key must never be able to sign control
  tokens), CN `fma-control-ca-<UTC time of creation>`;
- the leaf: CN `fma-controller`, extended key usage clientAuth only, URI SAN
  `contract.auth.CONTROLLER_IDENTITY_URI`; 30 days, renewed 10 days before expiry;
- a CA rotation (due, or asked for with `rotate_ca`) is cross-signed: the old CA certifies the
  new CA's subject and key, `tls.crt` is [leaf, cross-certificate] and `ca.crt` is [new CA, old
  CA]. Pods created before the rotation hold only the old CA and verify leaf -> cross -> old CA;
  Pods created after verify leaf -> new CA. Once the old CA expires, both the cross-certificate
  and the old CA leave the files.

The files are `contract.auth`'s: `tls.key`, `tls.crt`, `ca.crt` (a directory adds `ca.key`; the
Secret form keeps the CA key in a second Secret, `<name>-ca`, that the controller never mounts).
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import CertificateAuthority, KeyPair
from certs.bundle import LeafProfile, Outcome, RenewalPolicy, StoredMaterial, ensure_leaf
from certs.files import update_directory
from contract import auth

if TYPE_CHECKING:
    import kubernetes.client

    from certs.secrets_store import SecretRef

CONTROL_CA_COMMON_NAME: Final = "fma-control-ca"
"""The control CA's CN before its generation suffix."""
DEFAULT_CONTROL_LEAF_LIFETIME: Final = dt.timedelta(days=30)
DEFAULT_CONTROL_LEAF_RENEW_BEFORE: Final = dt.timedelta(days=10)
CONTROL_POLICY: Final = RenewalPolicy(
    leaf_lifetime=DEFAULT_CONTROL_LEAF_LIFETIME,
    leaf_renew_before=DEFAULT_CONTROL_LEAF_RENEW_BEFORE,
)
"""A short-lived leaf (it rotates freely: verifiers pin the CA, not the leaf); the CA keeps the
webhook CA's lifetime and window."""


def _issue(authority: CertificateAuthority, lifetime: dt.timedelta) -> KeyPair:
    return authority.issue_client(
        auth.CONTROLLER_COMMON_NAME, uris=[auth.CONTROLLER_IDENTITY_URI], lifetime=lifetime
    )


def _identity_problem(cert: x509.Certificate) -> str | None:
    """Why `cert` is not the controller's client identity that verifiers accept (None: it is)."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it lacks the controller's usage or identity"
    if (
        names != [auth.CONTROLLER_COMMON_NAME]
        or usages != [ExtendedKeyUsageOID.CLIENT_AUTH]
        or list(sans) != [x509.UniformResourceIdentifier(auth.CONTROLLER_IDENTITY_URI)]
    ):
        return "its identity is not the controller's"
    return None


CONTROL_PROFILE: Final = LeafProfile(
    label="client certificate",
    ca_common_name=CONTROL_CA_COMMON_NAME,
    issue=_issue,
    identity_problem=_identity_problem,
    cross_signed_rotation=True,
)


def ensure_control_credentials(
    current: StoredMaterial | None,
    *,
    policy: RenewalPolicy = CONTROL_POLICY,
    now: dt.datetime | None = None,
    rotate_ca: bool = False,
) -> Outcome:
    """What the control credential's store should hold (see the module doc); `rotate_ca`
    rotates the CA now, cross-signed, whatever its expiry."""
    return ensure_leaf(current, CONTROL_PROFILE, policy=policy, now=now, rotate_ca=rotate_ca)


def ensure_control_directory(
    directory: Path, *, policy: RenewalPolicy = CONTROL_POLICY, rotate_ca: bool = False
) -> Outcome:
    """Issue or renew the control credential in `directory` (`tls.key`, `tls.crt`, `ca.crt`,
    and `ca.key`): what a controller run outside a cluster points `--control-credentials-dir`
    at. Idempotent; only changed files are replaced, each atomically."""
    decide = functools.partial(ensure_control_credentials, policy=policy, rotate_ca=rotate_ca)
    return update_directory(directory, decide)


def ensure_control_secrets(
    api_client: kubernetes.client.ApiClient,
    ref: SecretRef,
    *,
    policy: RenewalPolicy = CONTROL_POLICY,
    rotate_ca: bool = False,
) -> Outcome:
    """Issue or renew the control credential in the Secret `ref.name` (what the controller
    mounts) and its CA in `ref.ca_secret_name`; safe against concurrent runners."""
    from certs.secrets_store import update_secrets  # the kubernetes client only when needed

    decide = functools.partial(ensure_control_credentials, policy=policy, rotate_ca=rotate_ca)
    return update_secrets(api_client, ref, decide)
