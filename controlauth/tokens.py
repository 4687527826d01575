"""Control tokens: minted by the controller per request, checked by launchers and stubs.

A token is a compact JWS (contract.auth) bound to one request: its method, its path, a hash of
its body, the target Pod's UID and a fresh `jti`. A token seen on the wire is therefore useless
for any other request, any other Pod, a second time, or after a minute. The controller's
certificate travels in the token (`x5c`), so a verifier needs nothing but the public bundle, and
the controller's leaf can be renewed without telling anyone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from contract import auth
from controlauth.chain import AuthError, TrustAnchors, VerifiedLeaf, verify_chain

BEARER: Final = "Bearer "
_REPLAY_CAPACITY: Final = 100_000
"""Token ids remembered until they expire; beyond this the oldest go first (a flood of valid
tokens can only come from the controller itself)."""
_LEAF_CACHE: Final = 16


def body_hash(body: bytes) -> str:
    """contract.auth.CLAIM_BODY_HASH of `body`."""
    digest = hashlib.sha256(body).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Credentials:
    """The controller's signing key and its certificate chain (leaf first)."""

    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, key_pem: bytes, chain_pem: bytes, *, source: str) -> Credentials:
        """Raises ValueError naming `source` when the files do not make a usable credential."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            chain = tuple(x509.load_pem_x509_certificates(chain_pem))
        except ValueError as exc:
            raise ValueError(f"{source}: unreadable key or certificate ({exc})") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError(f"{source}: the key must be EC P-256 ({auth.TOKEN_ALGORITHM})")
        if not 1 <= len(chain) <= auth.MAX_CHAIN:
            raise ValueError(
                f"{source}: {auth.CERT_FILE} must hold 1 to {auth.MAX_CHAIN} certificates"
            )
        if chain[0].public_key() != key.public_key():
            raise ValueError(f"{source}: {auth.KEY_FILE} does not match the first certificate")
        return cls(key, chain)

    @property
    def x5c(self) -> list[str]:
        der = (c.public_bytes(serialization.Encoding.DER) for c in self.chain)
        return [base64.b64encode(d).decode() for d in der]


class Signer:
    """Mints one token per request with the credentials `source` returns at that moment."""

    def __init__(
        self, source: Callable[[], Credentials], *, clock: Callable[[], float] = time.time
    ):
        self._source = source
        self._clock = clock
        self._headers: tuple[Credentials, dict[str, Any]] | None = None

    def authorization(self, method: str, target: str, body: bytes, audience: str) -> str:
        """The `Authorization` header value for one request to the Pod whose UID is `audience`."""
        credentials = self._source()
        if self._headers is None or self._headers[0] is not credentials:
            self._headers = (credentials, {"typ": auth.TOKEN_TYPE, "x5c": credentials.x5c})
        now = int(self._clock())
        claims = {
            "aud": audience,
            "iat": now,
            "exp": now + auth.TOKEN_LIFETIME_S,
            "jti": secrets.token_urlsafe(16),
            auth.CLAIM_METHOD: method.upper(),
            auth.CLAIM_TARGET: target,
            auth.CLAIM_BODY_HASH: body_hash(body),
        }
        token = jwt.encode(
            claims, credentials.key, algorithm=auth.TOKEN_ALGORITHM, headers=self._headers[1]
        )
        return BEARER + token


class Verifier:
    """Checks a request's token; thread-safe (the stub checks from its event loop, the launcher
    from worker threads)."""

    def __init__(
        self,
        anchors: Callable[[], TrustAnchors],
        audience: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not audience:
            raise ValueError(f"{auth.POD_UID_ENV} is empty: the token audience is the Pod's UID")
        self._anchors = anchors
        self.audience = audience
        self._clock = clock
        self._lock = threading.Lock()
        self._leaves: OrderedDict[tuple[int, str], VerifiedLeaf] = OrderedDict()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, authorization: str | None, method: str, target: str, body: bytes) -> None:
        """Returns if the request is the controller's; raises AuthError saying why not."""
        if not authorization or not authorization.startswith(BEARER):
            raise AuthError("this call needs the controller's 'Authorization: Bearer' token")
        token = authorization[len(BEARER) :].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the token is malformed: {exc}") from exc
        if header.get("typ") != auth.TOKEN_TYPE or header.get("alg") != auth.TOKEN_ALGORITHM:
            raise AuthError(
                f"the token must be {auth.TOKEN_TYPE} signed with {auth.TOKEN_ALGORITHM}"
            )
        leaf = self._leaf(header.get("x5c"))
        try:
            claims = jwt.decode(
                token,
                leaf.public_key,
                algorithms=[auth.TOKEN_ALGORITHM],
                audience=self.audience,
                leeway=auth.CLOCK_SKEW_S,
                options={"require": list(auth.REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("the token was issued for another Pod (audience)") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the token is refused: {exc}") from exc
        self._check_request(claims, method, target, body)
        self._remember(str(claims["jti"]), float(claims["exp"]))

    def _leaf(self, x5c: object) -> VerifiedLeaf:
        if not isinstance(x5c, list) or not all(isinstance(c, str) for c in x5c):
            raise AuthError("the token's x5c header must be a list of base64 certificates")
        anchors = self._anchors()
        key = (id(anchors), "".join(x5c))
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        with self._lock:
            cached = self._leaves.get(key)
        if cached is not None and now <= cached.valid_until:
            return cached
        try:
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
            ]
        except ValueError as exc:
            raise AuthError(f"the token's x5c header is not DER certificates: {exc}") from exc
        leaf = verify_chain(chain, anchors, now)
        with self._lock:
            self._leaves[key] = leaf
            while len(self._leaves) > _LEAF_CACHE:
                self._leaves.popitem(last=False)
        return leaf

    def _check_request(self, claims: dict[str, Any], method: str, target: str, body: bytes) -> None:
        if claims["exp"] - claims["iat"] > auth.TOKEN_LIFETIME_S:
            raise AuthError(f"the token lives longer than {auth.TOKEN_LIFETIME_S} s")
        if claims["iat"] > self._clock() + auth.CLOCK_SKEW_S:
            raise AuthError("the token is issued in the future")
        if claims[auth.CLAIM_METHOD] != method.upper() or claims[auth.CLAIM_TARGET] != target:
            raise AuthError("the token was issued for another request")
        if claims[auth.CLAIM_BODY_HASH] != body_hash(body):
            raise AuthError("the token was issued for another request body")

    def _remember(self, jti: str, expires: float) -> None:
        now = self._clock()
        with self._lock:
            if jti in self._seen:
                raise AuthError("the token was used before")
            self._seen[jti] = expires + auth.CLOCK_SKEW_S
            while self._seen and (
                len(self._seen) > _REPLAY_CAPACITY or next(iter(self._seen.values())) < now
            ):
                self._seen.popitem(last=False)
