"""The wire of fma's control authentication: who may drive launchers and requester stubs.

Every mutating call of the controller to a launcher or a requester's SPI carries a signed,
single-use request token; the launcher and the stub verify it against the control CA's public
bundle. The bundle and the Pod's own UID reach them through their environment (the webhook sets
it on the stub, the populator on launcher Pods), so no secret ever enters a served namespace.
docs/contracts.md ("Control authentication") states the format; docs/architecture.md explains
the choice.
"""

from __future__ import annotations

from typing import Any, Final

# --- The token ----------------------------------------------------------------------------------

TOKEN_TYPE: Final = "fma-control+jwt"
"""The JWS `typ` header: a control token is never mistaken for another JWT the key might sign."""
TOKEN_ALGORITHM: Final = "ES256"
TOKEN_LIFETIME_S: Final = 60
"""`exp - iat` at most: long enough for a slow wake's request to be read, short for a replay."""
CLOCK_SKEW_S: Final = 30
"""Leeway between the controller's clock and a node's."""
MAX_CHAIN: Final = 2
"""Certificates in `x5c`: the controller's leaf and at most one cross-signed CA (CA rotation)."""

CLAIM_METHOD: Final = "htm"
CLAIM_TARGET: Final = "htu"
"""The request's path and query as sent (e.g. `/v2/vllm/instances/abc`)."""
CLAIM_BODY_HASH: Final = "bh"
"""base64url (unpadded) SHA-256 of the request body; of b"" when there is none."""
REQUIRED_CLAIMS: Final = ("aud", "iat", "exp", "jti", CLAIM_METHOD, CLAIM_TARGET, CLAIM_BODY_HASH)

CONTROLLER_IDENTITY_URI: Final = "spiffe://fma.llm-d.ai/controller"
"""The URI SAN of the controller's client certificate; a certificate of the same CA without it
(or without the clientAuth usage) signs nothing a verifier accepts."""
CONTROLLER_COMMON_NAME: Final = "fma-controller"

MUTATING_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods that need a token; reads stay open (the reference's tools and `kubectl` use them)."""

# --- The environment of a verifier (launcher, requester stub) ---------------------------------

TRUST_ENV: Final = "FMA_CONTROL_TRUST"
"""PEM text of the control CA certificates the verifier trusts."""
POD_UID_ENV: Final = "FMA_POD_UID"
"""The verifier's own Pod UID (downward API `metadata.uid`): the audience a token must name."""
MODE_ENV: Final = "FMA_CONTROL_AUTH"
"""`off` turns verification off: the compatibility switch for installs with reference parts."""
MODE_OFF: Final = "off"
MODE_ON: Final = "on"
POD_UID_FIELD: Final = "metadata.uid"

# --- The controller's credential files (a `kubernetes.io/tls` Secret's keys) -------------------

KEY_FILE: Final = "tls.key"
CERT_FILE: Final = "tls.crt"
"""The leaf, then any intermediates (a cross-signed CA while a CA rotation is in progress)."""
CA_FILE: Final = "ca.crt"
"""The trust bundle: the current control CA first, then the previous one while it is valid."""
CREDENTIALS_DIR: Final = "/var/run/fma/control"
"""Where the chart mounts the controller's credential Secret."""
TRUST_FILE: Final = "/var/run/fma/control-trust/ca.crt"
"""Where the chart mounts the webhook's copy of the bundle (only the `ca.crt` key)."""


def verifier_env(trust_pem: str | None) -> list[dict[str, Any]]:
    """The environment entries of a launcher or stub container (the webhook and the populator
    both set them): its UID from the downward API and the bundle, or the switch when the
    install runs with authentication off (`trust_pem` None)."""
    uid = {"name": POD_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": POD_UID_FIELD}}}
    if trust_pem is None:
        return [uid, {"name": MODE_ENV, "value": MODE_OFF}]
    return [uid, {"name": TRUST_ENV, "value": trust_pem}]


TRUST_CONFIG_MAP: Final = "fma-control-trust"
"""The ConfigMap (key `ca.crt`) in which the controller publishes the current bundle in its
namespace, as Kubernetes publishes `kube-root-ca.crt`: requesters written by hand read
`FMA_CONTROL_TRUST` from it (`configMapKeyRef`)."""
