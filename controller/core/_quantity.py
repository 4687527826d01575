"""Go's canonical text of a Kubernetes resource quantity.

The launcher template hash covers the template as Go re-serializes it, where every quantity is
rewritten in canonical form (`1000m` → `1`, `1024Mi` → `1Gi`, `0.5` → `500m`). The rules follow
`k8s.io/apimachinery/pkg/api/resource` (`CanonicalizeBytes`); parsing is `contract.rules`'s, the
one the webhook uses too.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Final

from contract.rules import BINARY_SUFFIXES, DECIMAL_SUFFIXES, parse_quantity

_DECIMAL_SUFFIX: Final = {power: suffix for suffix, power in DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIX: Final = {power: suffix for suffix, power in BINARY_SUFFIXES.items()}
_NANO: Final = 10**9


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
