"""Go `encoding/json` output, byte for byte, for JSON-shaped Python values.

The wire hashes of contracts §4 are computed over bytes that Go's `json.Marshal` produced, so
fma must reproduce them exactly: compact separators, map keys in byte order, and Go's string
escaping (`<`, `>`, `&` as `\\u003c`..., U+2028/U+2029 escaped, `\\b`/`\\f` short forms as
since Go 1.22, invalid text replaced by U+FFFD). Python's `json.dumps` differs on each point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

_HEX: Final = "0123456789abcdef"
_SHORT: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_ALWAYS_ESCAPED: Final = {"<", ">", "&", "\u2028", "\u2029"}


def go_string(text: str) -> str:
    """The JSON string literal Go writes for `text` (with HTML escaping, Go's default)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT:
            out.append(_SHORT[char])
        elif code < 0x20 or char in _ALWAYS_ESCAPED:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate (Python decodes "\\ud800" to one) is invalid UTF-8 in Go.
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_float(value: float) -> str:
    """Go's `float64` JSON form: shortest digits, exponent outside [1e-6, 1e21)."""
    if math.isnan(value) or math.isinf(value):
        msg = f"json: unsupported value: {value}"
        raise ValueError(msg)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = repr(value)
        if "e" not in text:
            text = f"{value:e}"
        mantissa, exponent = text.split("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").lstrip("0") or "0"
        if len(digits) == 1 and sign == "-":
            return f"{mantissa}e-{digits}"
        return f"{mantissa}e{sign}{digits}"
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def go_json(value: object) -> str:
    """Compact Go JSON of a JSON-shaped value; mappings are written with sorted keys.

    Go sorts the keys of `map[string]T` by their UTF-8 bytes; sorting Python strings by their
    UTF-8 encoding gives the same order.
    """
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: object, parts: list[str]) -> None:  # noqa: PLR0912 - one branch per JSON type
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(str(value))
    elif isinstance(value, float):
        parts.append(go_float(value))
    elif isinstance(value, str):
        parts.append(go_string(value))
    elif isinstance(value, Mapping):
        parts.append("{")
        for index, key in enumerate(sorted(value, key=lambda k: str(k).encode())):
            if index:
                parts.append(",")
            parts.append(go_string(str(key)))
            parts.append(":")
            _encode(value[key], parts)
        parts.append("}")
    elif isinstance(value, Sequence):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _encode(item, parts)
        parts.append("]")
    else:
        msg = f"json: unsupported type: {type(value).__name__}"
        raise TypeError(msg)
