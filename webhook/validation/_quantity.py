"""Kubernetes resource quantities (`resource.Quantity`), parsed to exact fractions.

The LPP's `allocatableResources` bounds are quantities; the webhook compares `min` with `max`, and
limits with requests in a launcher template. Exact `Fraction`s compare `1Gi` with `1073741824`
and `500m` with `0.5` without rounding. The grammar is Go's `ParseQuantity`, which is stricter
than the CRD pattern in one place: an exponent must be an integer (`1e1.5` passes the schema but
no Go controller can decode it).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

_BINARY_SUFFIXES: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES: Final = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_NUMBER_RE: Final = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)$")
_EXPONENT_RE: Final = re.compile(r"^[eE]([+-]?[0-9]+)$")
# Bounds that keep a hostile input from costing time or memory; real quantities are far inside.
_MAX_LENGTH: Final = 64
_MAX_EXPONENT: Final = 64


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(value: object) -> Fraction:
    """Parse a quantity as it travels in JSON: an integer or a string like `"80Gi"`.

    Raises QuantityError with a reason a user can act on.
    """
    if isinstance(value, bool):
        raise QuantityError("must be a number or a quantity string such as '80Gi', not a boolean")
    if isinstance(value, int):
        return Fraction(value)
    if not isinstance(value, str):
        raise QuantityError("must be a number or a quantity string such as '80Gi'")
    if len(value) > _MAX_LENGTH:
        raise QuantityError(f"must be at most {_MAX_LENGTH} characters")
    match = _NUMBER_RE.match(value)
    if match is None:
        raise QuantityError("must start with a number, e.g. '4', '0.5', '500m', '80Gi', '1e3'")
    sign, digits, suffix = match.groups()
    number = Fraction(digits)
    if sign == "-":
        number = -number
    return number * _multiplier(suffix)


def _multiplier(suffix: str) -> Fraction:
    """The factor a suffix stands for: binary SI, decimal SI or a decimal exponent."""
    if suffix in _BINARY_SUFFIXES:
        return Fraction(2 ** _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
    exponent = _EXPONENT_RE.match(suffix)
    if exponent is None:
        raise QuantityError(
            f"unknown suffix {suffix!r}; use one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, "
            "or an integer exponent such as e3"
        )
    power = int(exponent.group(1))
    if abs(power) > _MAX_EXPONENT:
        raise QuantityError(f"exponent {power} is out of range (at most ±{_MAX_EXPONENT})")
    return Fraction(10) ** power
