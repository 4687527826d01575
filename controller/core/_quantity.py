"""Kubernetes resource quantities: exact parsing, and Go's canonical text.

The populator compares node allocatable resources with LPP bounds (exact `Fraction`s, so `1Gi`
equals `1073741824`), and the launcher template hash covers the template as Go re-serializes
it, where every quantity is rewritten in canonical form (`1000m` → `1`, `1024Mi` → `1Gi`,
`0.5` → `500m`). The rules follow `k8s.io/apimachinery/pkg/api/resource` (`ParseQuantity`,
`CanonicalizeBytes`).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Final, Literal

Format = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

_BINARY: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL: Final = {
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
_DECIMAL_SUFFIX: Final = {power: suffix for suffix, power in _DECIMAL.items()}
_BINARY_SUFFIX: Final = {power: suffix for suffix, power in _BINARY.items()}
_NUMBER: Final = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)")
_EXPONENT: Final = re.compile(r"[eE]([+-]?[0-9]+)")
_NANO: Final = 10**9


class QuantityError(ValueError):
    """The value is not a Kubernetes quantity."""


def parse_quantity(value: object) -> tuple[Fraction, Format]:
    """The exact value and the format (which decides the canonical suffix) of a quantity."""
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)  # a JSON number such as 0.5 (Go parses its text)
    if isinstance(value, bool) or not isinstance(value, int | str):
        msg = f"quantity {value!r} must be a number or a string such as '80Gi'"
        raise QuantityError(msg)
    if isinstance(value, int):
        return Fraction(value), "DecimalSI"
    match = _NUMBER.fullmatch(value)
    if match is None:
        msg = f"quantity {value!r} must start with a number, e.g. '4', '500m', '80Gi'"
        raise QuantityError(msg)
    sign, digits, suffix = match.groups()
    number = Fraction(digits) * (-1 if sign == "-" else 1)
    if suffix in _BINARY:
        return number * 2 ** _BINARY[suffix], "BinarySI"
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix], "DecimalSI"
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None or abs(int(exponent.group(1))) > 64:
        msg = f"quantity {value!r} has an unknown suffix {suffix!r}"
        raise QuantityError(msg)
    return number * Fraction(10) ** int(exponent.group(1)), "DecimalExponent"


def quantity_value(value: object) -> Fraction:
    """The exact value of a quantity."""
    return parse_quantity(value)[0]


def canonical_quantity(value: object) -> str:
    """The string Go's `Quantity.MarshalJSON` writes for `value`."""
    number, fmt = parse_quantity(value)
    number = _round_up_to_nano(number)
    if number == 0:
        return "0"
    if fmt == "BinarySI" and (abs(number) < 1024 or number.denominator != 1):
        fmt = "DecimalSI"  # small or fractional binary values are shown in decimal
    if fmt == "BinarySI":
        return _base1024(int(number))
    mantissa, exponent = _base10(number)
    if fmt == "DecimalSI" and exponent in _DECIMAL_SUFFIX:
        return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def _round_up_to_nano(number: Fraction) -> Fraction:
    """Go keeps nine decimal places and rounds further digits away from zero."""
    scaled = number * _NANO
    if scaled.denominator == 1:
        return number
    rounded = math.ceil(abs(scaled))
    return Fraction(rounded if number > 0 else -rounded, _NANO)


def _base10(number: Fraction) -> tuple[int, int]:
    """Integer mantissa without trailing zeros, exponent lowered to a multiple of three."""
    mantissa, exponent = int(number * _NANO), -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    return mantissa * 10**shift, exponent - shift


def _base1024(number: int) -> str:
    exponent = 0
    while number % 1024 == 0 and exponent < 60:
        number //= 1024
        exponent += 10
    return f"{number}{_BINARY_SUFFIX.get(exponent, '')}"
