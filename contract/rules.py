"""Rules on custom-resource content that the webhook (at admission) and the controllers (at bind
and population time) both apply, so that both reach the same decision.

- Kubernetes name rules, as the apiserver applies them (`k8s.io/apimachinery/.../validation`):
  same regular expressions, same length limits, same quirks (annotation keys are checked
  lower-cased, label keys as written). Each returns a list of problems; empty means valid.
- ISC routing metadata (contracts §3.1, §8.5): keys must be qualified names outside the reserved
  prefixes, label values valid label values. `routing_problems` is the one decision; the webhook
  and the controller only word its findings differently (a field path and a fix for a user, the
  reference's texts for a requester status).
- Label selector requirements (an LPP's `matchExpressions`): which operators take values.
- Resource quantities (`resource.Quantity`): exact values, Go's `ParseQuantity` grammar.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

from contract.keys import DUAL_PODS_PREFIX

# --- Kubernetes names ---------------------------------------------------------------------------

DNS1123_LABEL_MAX: Final = 63
DNS1123_SUBDOMAIN_MAX: Final = 253
QUALIFIED_NAME_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63

_DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE: Final = re.compile(rf"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME_RE: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# What a value that does not match says (the apiserver's wording, for the same regexes).
_DNS1123_LABEL_SHAPE: Final = (
    "must consist of lower case alphanumeric characters or '-', and must start and end with "
    "an alphanumeric character"
)
_DNS1123_SUBDOMAIN_SHAPE: Final = (
    "must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
    "with an alphanumeric character"
)
_LABEL_VALUE_SHAPE: Final = (
    "must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character"
)


def dns1123_label(value: str) -> list[str]:
    """Problems of `value` as a DNS-1123 label (container names, for example)."""
    return _matched(value, DNS1123_LABEL_MAX, _DNS1123_LABEL_RE, _DNS1123_LABEL_SHAPE)


def dns1123_subdomain(value: str) -> list[str]:
    """Problems of `value` as a DNS-1123 subdomain (object names, key prefixes)."""
    return _matched(value, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN_RE, _DNS1123_SUBDOMAIN_SHAPE)


def qualified_name(value: str) -> list[str]:
    """Problems of `value` as a qualified name: `[prefix/]name`, as label keys must be."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name must have at most one '/'"]
    name = parts[-1]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("the prefix before '/' must be non-empty")
        else:
            problems += [f"prefix: {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        problems.append("the name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        problems.append(f"the name part must be no more than {QUALIFIED_NAME_MAX} characters")
    elif not _QUALIFIED_NAME_RE.match(name):
        problems.append(
            "the name part must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character"
        )
    return problems


def label_key(key: str) -> list[str]:
    """Problems of `key` as a label key."""
    return qualified_name(key)


def annotation_key(key: str) -> list[str]:
    """Problems of `key` as an annotation key (the apiserver checks it lower-cased)."""
    return qualified_name(key.lower())


def label_value(value: str) -> list[str]:
    """Problems of `value` as a label value (may be empty)."""
    return _matched(value, LABEL_VALUE_MAX, _LABEL_VALUE_RE, _LABEL_VALUE_SHAPE)


def _matched(value: str, max_length: int, pattern: re.Pattern[str], shape: str) -> list[str]:
    """The apiserver's two checks of a name-like value: its length, then its shape."""
    problems = []
    if len(value) > max_length:
        problems.append(f"must be no more than {max_length} characters")
    if not pattern.match(value):
        problems.append(shape)
    return problems


# --- ISC routing metadata -----------------------------------------------------------------------

RESERVED_PREFIXES: Final = (DUAL_PODS_PREFIX, "kubernetes.io/", "k8s.io/")
"""Prefixes routing metadata must not use (contracts §3.1): the controllers' own keys and the
prefixes Kubernetes reserves for its core components. Exactly these: subdomains such as
`app.kubernetes.io/` are the ecosystem's recommended labels, and the reference accepts them."""

RoutingKind = Literal["label", "annotation"]


def reserved_prefix(key: str) -> str | None:
    """The reserved prefix `key` uses, or None. Compared lower-cased, as DNS names are."""
    if "/" not in key:
        return None
    prefix = key.split("/", 1)[0].lower() + "/"
    return prefix if prefix in RESERVED_PREFIXES else None


@dataclass(frozen=True, slots=True)
class RoutingProblem:
    """One finding about one routing key: `what` is `key` (not a qualified name), `reserved`
    (a reserved prefix) or `value` (not a label value); `details` say why."""

    kind: RoutingKind
    key: str
    what: Literal["key", "reserved", "value"]
    details: tuple[str, ...]
    value: str = ""


def routing_problems(
    labels: Mapping[str, str], annotations: Mapping[str, str]
) -> list[RoutingProblem]:
    """Every problem of an ISC's routing labels and annotations, labels first, keys in order."""
    return [
        *(p for key, value in labels.items() for p in _key_problems("label", key, value)),
        *(p for key, value in annotations.items() for p in _key_problems("annotation", key, value)),
    ]


def _key_problems(kind: RoutingKind, key: str, value: str) -> list[RoutingProblem]:
    problems = []
    syntax = label_key(key) if kind == "label" else annotation_key(key)
    if syntax:
        problems.append(RoutingProblem(kind, key, "key", tuple(syntax)))
    prefix = reserved_prefix(key)
    if prefix is not None:
        problems.append(RoutingProblem(kind, key, "reserved", (prefix,)))
    if kind == "label" and (bad := label_value(value)):
        problems.append(RoutingProblem(kind, key, "value", tuple(bad), value))
    return problems


# --- Label selectors ----------------------------------------------------------------------------

VALUE_OPERATORS: Final = frozenset({"In", "NotIn"})
EXISTENCE_OPERATORS: Final = frozenset({"Exists", "DoesNotExist"})


def requirement_problem(operator: str, values: Sequence[str]) -> tuple[str, str] | None:
    """(field, problem) of one `matchExpressions` entry, as `LabelSelectorAsSelector` sees it,
    or None: `In`/`NotIn` need values, `Exists`/`DoesNotExist` take none."""
    if operator in VALUE_OPERATORS:
        return None if values else ("values", f"must be non-empty for operator {operator}")
    if operator in EXISTENCE_OPERATORS:
        return ("values", f"must be empty for operator {operator}") if values else None
    return "operator", f"{operator!r} is not a valid label selector operator"


# --- Quantities ---------------------------------------------------------------------------------

QuantityFormat = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

BINARY_SUFFIXES: Final = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
DECIMAL_SUFFIXES: Final = {
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
_NUMBER_RE: Final = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)")
_EXPONENT_RE: Final = re.compile(r"[eE]([+-]?[0-9]+)")
# Bounds that keep a hostile input from costing time or memory; real quantities are far inside.
_MAX_LENGTH: Final = 64
_MAX_EXPONENT: Final = 64


class QuantityError(ValueError):
    """The value is not a Kubernetes quantity."""


def parse_quantity(value: object) -> tuple[Fraction, QuantityFormat]:
    """The exact value and the format (which decides Go's canonical suffix) of a quantity as it
    travels in JSON: an integer, a string such as `"80Gi"`, or a JSON number, whose text Go
    parses (`Quantity.UnmarshalJSON`). Exact `Fraction`s compare `1Gi` with `1073741824` and
    `500m` with `0.5` without rounding. Go's grammar is stricter than the CRD pattern in one
    place: an exponent must be an integer (`1e1.5` passes the schema but no Go controller can
    decode it).

    Raises QuantityError with a reason a user can act on.
    """
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)
    if isinstance(value, bool):
        raise QuantityError("must be a number or a quantity string such as '80Gi', not a boolean")
    if isinstance(value, int):
        return Fraction(value), "DecimalSI"
    if not isinstance(value, str):
        raise QuantityError("must be a number or a quantity string such as '80Gi'")
    if len(value) > _MAX_LENGTH:
        raise QuantityError(f"must be at most {_MAX_LENGTH} characters")
    match = _NUMBER_RE.fullmatch(value)
    if match is None:
        raise QuantityError("must start with a number, e.g. '4', '0.5', '500m', '80Gi', '1e3'")
    sign, digits, suffix = match.groups()
    number = Fraction(digits) * (-1 if sign == "-" else 1)
    if suffix in BINARY_SUFFIXES:
        return number * 2 ** BINARY_SUFFIXES[suffix], "BinarySI"
    if suffix in DECIMAL_SUFFIXES:
        return number * Fraction(10) ** DECIMAL_SUFFIXES[suffix], "DecimalSI"
    exponent = _EXPONENT_RE.fullmatch(suffix)
    if exponent is None:
        raise QuantityError(
            f"unknown suffix {suffix!r}; use one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, "
            "or an integer exponent such as e3"
        )
    power = int(exponent.group(1))
    if abs(power) > _MAX_EXPONENT:
        raise QuantityError(f"exponent {power} is out of range (at most ±{_MAX_EXPONENT})")
    return number * Fraction(10) ** power, "DecimalExponent"


def quantity_value(value: object) -> Fraction:
    """The exact value of a quantity (see `parse_quantity`)."""
    return parse_quantity(value)[0]
