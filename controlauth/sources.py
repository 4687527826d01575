"""Where the credentials and the trust bundle come from, and how a rotation reaches a process.

The controller's credentials are a mounted Secret (contract.auth.CREDENTIALS_DIR); the kubelet
swaps its files atomically when cert-manager or `fma-certs` renews them. `FileBacked` re-reads
them when their stat changes, at most once per interval, so a renewal takes effect without a
restart and a half-written state is never used (a failed parse keeps the last good value).
Launchers and stubs take the bundle from their environment (contract.auth.TRUST_ENV): it is
fixed for the Pod's life, which the cross-signed CA rotation accounts for.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from contract import auth
from controlauth.chain import TrustAnchors
from controlauth.tokens import Credentials, Signer, Verifier

_log = logging.getLogger(__name__)
T = TypeVar("T")


class FileBacked(Generic[T]):
    """A value parsed from files, re-parsed when one of them changes."""

    def __init__(
        self,
        paths: Sequence[Path],
        parse: Callable[[list[bytes]], T],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = tuple(paths)
        self._parse = parse
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._value = parse([p.read_bytes() for p in self.paths])
        self._checked = clock()

    def __call__(self) -> T:
        now = self._clock()
        if now - self._checked < self._interval:
            return self._value
        with self._lock:
            self._checked = now
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self._value = self._parse([p.read_bytes() for p in self.paths])
                    self._stamp = stamp
                    _log.info("reloaded", extra={"paths": [str(p) for p in self.paths]})
            except (OSError, ValueError) as exc:
                _log.warning("reload failed; keeping the last good value: %s", exc)
        return self._value

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stats = (p.stat() for p in self.paths)
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def credentials_from_dir(directory: Path, *, interval_s: float = 1.0) -> FileBacked[Credentials]:
    """The controller's credentials in `directory` (tls.key, tls.crt), reloaded on change."""
    key, cert = directory / auth.KEY_FILE, directory / auth.CERT_FILE
    return FileBacked(
        [key, cert],
        lambda data: Credentials.from_pem(data[0], data[1], source=str(directory)),
        interval_s=interval_s,
    )


def trust_from_file(path: Path, *, interval_s: float = 1.0) -> FileBacked[bytes]:
    """The bundle's PEM text (checked to be CA certificates), reloaded on change."""

    def parse(data: list[bytes]) -> bytes:
        TrustAnchors.from_pem(data[0], source=str(path))
        return data[0]

    return FileBacked([path], parse, interval_s=interval_s)


@dataclass(frozen=True)
class ControllerAuth:
    """The controller's half: it signs its calls and gives the Pods it creates the bundle."""

    signer: Signer
    trust: Callable[[], bytes]

    def trust_pem(self) -> str:
        return self.trust().decode()


def controller_auth_from_dir(directory: Path, *, interval_s: float = 1.0) -> ControllerAuth:
    """The credentials and bundle of `directory` (a mounted Secret), each reloaded on change.

    Raises OSError or ValueError naming the directory when they are missing or unusable."""
    credentials = credentials_from_dir(directory, interval_s=interval_s)
    trust = trust_from_file(directory / auth.CA_FILE, interval_s=interval_s)
    return ControllerAuth(Signer(credentials), trust)


def verifier_from_env(environ: Mapping[str, str] | None = None) -> Verifier | None:
    """The verifier a launcher or stub runs with; None when authentication is switched off.

    Secure by default: without the bundle and without the explicit switch the process refuses
    to start (ValueError naming the variables), rather than serving an open control API.
    """
    env = os.environ if environ is None else environ
    mode = env.get(auth.MODE_ENV, auth.MODE_ON).strip().lower()
    if mode == auth.MODE_OFF:
        return None
    if mode != auth.MODE_ON:
        raise ValueError(f"{auth.MODE_ENV}={mode!r}: use {auth.MODE_ON!r} or {auth.MODE_OFF!r}")
    trust = env.get(auth.TRUST_ENV, "").strip()
    uid = env.get(auth.POD_UID_ENV, "").strip()
    if not trust:
        raise ValueError(
            f"{auth.TRUST_ENV} is not set: give the control CA bundle (PEM) so that only fma's "
            f"controller can drive this process, or set {auth.MODE_ENV}={auth.MODE_OFF}"
        )
    if not uid:
        raise ValueError(
            f"{auth.POD_UID_ENV} is not set: set it from the downward API "
            f"(fieldRef {auth.POD_UID_FIELD}), or set {auth.MODE_ENV}={auth.MODE_OFF}"
        )
    anchors = TrustAnchors.from_pem(trust.encode(), source=auth.TRUST_ENV)
    return Verifier(lambda: anchors, uid)
