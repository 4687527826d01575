"""A cap on request bodies for the launcher's API, as a pure ASGI middleware.

uvicorn and Starlette buffer whatever body a client sends, so without a cap one request could
make the launcher (which holds every instance's state) hold gigabytes. Two ways past the cap, two
checks:

- a declared `Content-Length` over the limit is refused with 413 before the app runs, so nothing
  is read;
- a body without a declared length (chunked) is counted as it arrives; once past the limit the
  app is told the client went away (`http.disconnect`, which ends its read with an error) and
  whatever it answers is replaced by the same 413. Nothing reaches a handler, so a refused call
  changes no state.

The 413 is FastAPI's error shape (`{"detail": ...}`) and names the limit, so a client knows what
would fit. A middleware rather than a dependency: it covers every route, including ones added
later, and the routes that never read a body.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.launcher import MAX_BODY_BYTES

_CONTENT_LENGTH: Final = b"content-length"


def too_large_detail(max_bytes: int) -> str:
    """The 413's message; tests and clients match on it."""
    return f"request body too large: the limit is {max_bytes} bytes"


def _declared_length(scope: Scope) -> int | None:
    """The `Content-Length` as a number, None when absent or not one (the server rejects those).

    Very long digit strings count as over any limit instead of reaching `int`."""
    for name, value in scope.get("headers", ()):
        if name.lower() == _CONTENT_LENGTH:
            digits = value.strip().lstrip(b"0") or b"0"
            if not digits.isdigit():
                return None
            return int(digits) if len(digits) <= 18 else 10**18
    return None


class BodyLimit:
    """Refuses (413) any HTTP request whose body exceeds `max_bytes` (the launcher's limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_detail(self.max_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        exceeded = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        refused = False

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused and message["type"] == "http.response.start":
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except ClientDisconnect:
            # A reader that lets the disconnect we made up escape (a dependency reading the
            # body, say) still gets the 413; a real disconnect goes on up.
            if not exceeded:
                raise
            if not refused:
                refused = True
                await self._refuse(send)
