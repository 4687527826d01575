"""Certificates in a directory: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`.

The names are those of a mounted `kubernetes.io/tls` Secret (plus `ca.key`, which the serving
Secret never holds), so a webhook or the controller reads its files the same way in tests and in
a cluster; the control credential's contract (`contract.auth`) declares them.
`ca.crt` is the trust bundle (current CA first); the CA certificate is its first entry.

Each file is replaced atomically (write a temporary file, then rename), and keys are created
mode 0600. The four files are not replaced together: a reader that catches `tls.crt` and
`tls.key` from different generations must retry (the webhook's reloader keeps the old pair when
the new one does not load). `ensure` writes only the files whose content changed.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.bundle import Decide, Outcome, RenewalPolicy, StoredMaterial, ensure_certificates
from contract import auth

CA_CERT: Final = auth.CA_FILE
CA_KEY: Final = "ca.key"
TLS_CERT: Final = auth.CERT_FILE
TLS_KEY: Final = auth.KEY_FILE
_PRIVATE: Final = frozenset({CA_KEY, TLS_KEY})


def read_directory(directory: Path) -> StoredMaterial:
    """What the directory holds; missing files (or a missing directory) read as None."""
    bundle = _read(directory / CA_CERT)
    return StoredMaterial(
        ca_cert=_first_certificate(bundle),
        ca_key=_read(directory / CA_KEY),
        tls_cert=_read(directory / TLS_CERT),
        tls_key=_read(directory / TLS_KEY),
        ca_bundle=bundle,
    )


def write_directory(directory: Path, outcome: Outcome) -> list[Path]:
    """Write what `outcome` changed; returns the paths written (empty when nothing changed)."""
    directory.mkdir(parents=True, exist_ok=True)
    material = outcome.certificates.material()
    wanted = {
        CA_KEY: material.ca_key,
        CA_CERT: material.ca_bundle,
        TLS_KEY: material.tls_key,
        TLS_CERT: material.tls_cert,
    }
    written = []
    # CA first: a crash between files then leaves a leaf the next run sees as "not signed by
    # the CA" and reissues, rather than a leaf whose CA was never saved.
    for name, content in wanted.items():
        path = directory / name
        if content is not None and _read(path) != content:
            _write_atomic(path, content, private=name in _PRIVATE)
            written.append(path)
    return written


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _first_certificate(bundle: bytes | None) -> bytes | None:
    """The first certificate of a PEM bundle (the current CA), re-encoded; None if unreadable."""
    if not bundle:
        return None
    try:
        first = x509.load_pem_x509_certificates(bundle)[0]
    except (ValueError, IndexError):
        return None
    return first.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, content: bytes, *, private: bool) -> None:
    """Replace `path` in one rename; a private file never exists with looser permissions."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600 if private else 0o644)
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def update_directory(directory: Path, decide: Decide, *, fresh: bool = False) -> Outcome:
    """Read the directory, decide, write what changed. `fresh` ignores what is there (a new CA
    and leaf, nothing kept)."""
    outcome = decide(None if fresh else read_directory(directory))
    write_directory(directory, outcome)
    return outcome


def ensure_directory(
    directory: Path,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    policy: RenewalPolicy | None = None,
    fresh: bool = False,
) -> Outcome:
    """The webhook's certificates in `directory` (`update_directory` with
    `ensure_certificates`)."""
    decide = functools.partial(
        ensure_certificates, dns_names=dns_names, ip_addresses=ip_addresses, policy=policy
    )
    return update_directory(directory, decide, fresh=fresh)
