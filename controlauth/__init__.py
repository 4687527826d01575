"""Authentication of fma's control calls (docs/architecture.md, "Control authentication").

The controller signs each mutating call to a launcher or a requester stub (`Signer`); they
check it (`Verifier`) against the control CA bundle in their environment. The wire format is in
`contract.auth`. This package sits just above `contract` so the launcher, the stub, the
controller and the webhook share one implementation.
"""

from controlauth.chain import AuthError, TrustAnchors, verify_chain
from controlauth.client import ControlToken
from controlauth.sources import (
    ControllerAuth,
    FileBacked,
    controller_auth_from_dir,
    credentials_from_dir,
    trust_from_file,
    verifier_from_env,
)
from controlauth.tokens import BEARER, Credentials, Signer, Verifier, body_hash

__all__ = [
    "BEARER",
    "AuthError",
    "ControlToken",
    "ControllerAuth",
    "Credentials",
    "FileBacked",
    "Signer",
    "TrustAnchors",
    "Verifier",
    "body_hash",
    "controller_auth_from_dir",
    "credentials_from_dir",
    "trust_from_file",
    "verifier_from_env",
    "verify_chain",
]
