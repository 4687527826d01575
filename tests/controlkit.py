"""Control credentials for tests: issued by `fma-certs`' own code into a directory.

Tests that drive a launcher or a requester stub with authentication on use this: the
controller's side (`auth`, what `fma-controller --control-credentials-dir` loads) and the Pod's
side (`env`, what the webhook and the populator put into a Pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from certs.control import ensure_control_directory
from contract import auth
from controlauth import ControllerAuth, TrustAnchors, Verifier, controller_auth_from_dir


@dataclass(frozen=True)
class ControlKit:
    directory: Path
    auth: ControllerAuth

    def anchors(self) -> TrustAnchors:
        return TrustAnchors.from_pem(self.auth.trust(), source=str(self.directory))

    def verifier(self, uid: str) -> Verifier:
        anchors = self.anchors()
        return Verifier(lambda: anchors, uid)

    def env(self, uid: str) -> dict[str, str]:
        """A verifying Pod's environment (contract.auth.verifier_env, with the UID resolved)."""
        return {auth.TRUST_ENV: self.auth.trust_pem(), auth.POD_UID_ENV: uid}

    def header(self, method: str, target: str, uid: str, body: bytes = b"") -> str:
        """The `Authorization` value the controller would send."""
        return self.auth.signer.authorization(method, target, body, uid)


def control_kit(directory: Path) -> ControlKit:
    """Issue (or keep) the control credential in `directory` and load it as the controller does."""
    ensure_control_directory(directory)
    return ControlKit(directory, controller_auth_from_dir(directory, interval_s=0.0))
