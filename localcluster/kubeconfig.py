"""Kubeconfig files with embedded credentials, so they stay valid wherever they are copied."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from certs.authority import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, client: KeyPair) -> None:
    """Writes a one-context kubeconfig authenticating with a client certificate."""
    user = client.certificate.subject.rfc4514_string()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fma-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": "fma-local", "context": {"cluster": "fma-local", "user": user}}],
        "current-context": "fma-local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
