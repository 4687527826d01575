"""The controller's side on the wire: an `httpx.Auth` that signs one request for one Pod."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from controlauth.tokens import Signer


class ControlToken(httpx.Auth):
    """Adds the control token for the Pod whose UID is `audience` (contract.auth).

    httpx hands the request over with its body already encoded (`requires_request_body`), so
    the token's body hash covers exactly the bytes sent, and its target is the raw path and
    query httpx puts on the request line.
    """

    requires_request_body = True

    def __init__(self, signer: Signer, audience: str) -> None:
        self.signer = signer
        self.audience = audience

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Sets the request's `Authorization` (its body must be read: `request.content`)."""
        target = request.url.raw_path.decode("ascii")
        request.headers["Authorization"] = self.signer.authorization(
            request.method, target, request.content, self.audience
        )
