"""The launcher's 422 for a request that does not validate, safe for any input.

FastAPI's own handler echoes each error's `input` in the answer. When that input is a number
JSON cannot carry back (`1e999` parses as infinity) or a string holding a lone surrogate
(`"\\ud800"` is valid JSON), encoding the 422 itself fails and the client gets a 500 for what is
its own mistake. This handler keeps FastAPI's shape (`{"detail": [{"type", "loc", "msg",
"input"}]}`, with `loc` naming the field at fault) and leaves out an `input` or `ctx` that
cannot be encoded.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response


def _encodable(value: Any) -> bool:
    """Whether `JSONResponse` can send `value` (it refuses NaN and infinities, and writes
    UTF-8, which has no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError):  # TypeError: jsonable_encoder left something odd
        return False
    return True


def _safe(error: dict[str, Any]) -> dict[str, Any]:
    """The error without the parts that cannot be sent; a `loc` step that cannot (a dict key
    with a lone surrogate) is spelled with escapes, so the answer still names the field."""
    safe = {key: value for key, value in error.items() if key == "loc" or _encodable(value)}
    safe["loc"] = [step if _encodable(step) else ascii(step) for step in error.get("loc", ())]
    return safe


async def _handle(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    return JSONResponse({"detail": [_safe(error) for error in errors]}, status_code=422)


def install(app: FastAPI) -> None:
    """Answer `RequestValidationError` with the safe 422."""
    app.add_exception_handler(RequestValidationError, _handle)
