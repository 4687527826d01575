"""Go `encoding/json` of a `corev1.Pod`, from the Pod's JSON form.

The launcher template hash (contracts §4.2) is the SHA-256 of `json.Marshal(pod)` in Go:
struct fields in declaration order, `omitempty` rules, `null` for absent non-optional fields
(`"creationTimestamp":null`), `{}` for the empty status, and quantities in canonical form. This
module walks the JSON value along the generated field table (`_pod_fields.POD_FIELDS`) and
writes the same bytes.

Where the bytes may differ from the reference: fields newer than the table (they are written
after the known ones, sorted by name), non-canonical timestamps, and quantities beyond
`Ei`/nanounits. Such differences only make reference-built launchers look stale or incompatible
to fma (they are replaced, never misused), because every hash fma compares is also computed by
fma. `strict=True` rejects unknown fields instead, as Go's strict decoding does for the direct
provider (§4.1 step 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Final, NoReturn

from contract.rules import QuantityError
from controller.core._gojson import go_float, go_json, go_string
from controller.core._pod_fields import POD_FIELDS
from controller.core._quantity import canonical_quantity


class PodEncodeError(ValueError):
    """The object does not decode into a `corev1.Pod` (wrong type, unknown field...)."""


_Field = tuple[str, bool, str]
_SCALARS: Final = {"s": str, "b": bool, "f": float}


@cache
def _fields(type_name: str) -> tuple[_Field, ...]:
    entries = []
    for entry in POD_FIELDS[type_name].split():
        name, _, kind = entry.partition(":")
        kind = kind.partition("/")[0]
        entries.append((name.rstrip("?"), name.endswith("?"), kind))
    return tuple(entries)


def encode_pod(pod: Mapping[str, object], *, strict: bool = False) -> str:
    """Compact Go JSON of `pod` decoded into and re-encoded from a `corev1.Pod`."""
    parts: list[str] = []
    _struct(pod, "Pod", parts, path="", strict=strict)
    return "".join(parts)


def _struct(value: object, type_name: str, parts: list[str], *, path: str, strict: bool) -> None:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        _fail(path, f"expected an object for {type_name}, got {_kind(value)}")
    fields = _fields(type_name)
    known = {name for name, _, _ in fields}
    unknown = sorted(key for key in value if key not in known)
    if strict and unknown:
        _fail(path, f'unknown field "{unknown[0]}"')
    parts.append("{")
    first = True
    for name, omitempty, kind in fields:
        item = value.get(name)
        if omitempty and _is_empty(item, kind):
            continue
        if not first:
            parts.append(",")
        first = False
        parts.append(go_string(name) + ":")
        _value(item, kind, parts, path=f"{path}.{name}", strict=strict)
    for name in unknown:
        if not first:
            parts.append(",")
        first = False
        parts.append(go_string(name) + ":" + go_json(value[name]))
    parts.append("}")


def _is_empty(item: object, kind: str) -> bool:
    """Go's `omitempty`: false, 0, "", nil pointer, empty slice or map; never a struct."""
    if kind.startswith(("@", "!")) and kind not in ("!Quantity", "!IntOrString"):
        return False  # a struct value is never empty for encoding/json
    if item is None:
        return True
    if kind.startswith("*"):
        return False
    if kind in ("!Quantity", "!IntOrString"):
        return False
    if isinstance(item, bool):
        return item is False
    return item in (0, "") or (isinstance(item, Sequence | Mapping) and len(item) == 0)


def _value(item: object, kind: str, parts: list[str], *, path: str, strict: bool) -> None:
    if kind.startswith("*"):
        if item is None:
            parts.append("null")
        else:
            _value(item, kind[1:], parts, path=path, strict=strict)
    elif kind.startswith("@"):
        _struct(item, kind[1:], parts, path=path, strict=strict)
    elif kind.startswith("[]"):
        _list(item, kind[2:], parts, path=path, strict=strict)
    elif kind.startswith("{}"):
        _map(item, kind[2:], parts, path=path, strict=strict)
    elif kind.startswith("!"):
        parts.append(_custom(item, kind[1:], path))
    else:
        parts.append(_scalar(item, kind, path))


def _list(item: object, kind: str, parts: list[str], *, path: str, strict: bool) -> None:
    if item is None:
        parts.append("null")
        return
    if isinstance(item, str) or not isinstance(item, Sequence):
        _fail(path, f"expected an array, got {_kind(item)}")
    parts.append("[")
    for index, element in enumerate(item):
        if index:
            parts.append(",")
        _value(element, kind, parts, path=f"{path}[{index}]", strict=strict)
    parts.append("]")


def _map(item: object, kind: str, parts: list[str], *, path: str, strict: bool) -> None:
    if item is None:
        parts.append("null")
        return
    if not isinstance(item, Mapping):
        _fail(path, f"expected an object, got {_kind(item)}")
    parts.append("{")
    for index, key in enumerate(sorted(item, key=lambda k: str(k).encode())):
        if index:
            parts.append(",")
        parts.append(go_string(str(key)) + ":")
        _value(item[key], kind, parts, path=f"{path}[{key}]", strict=strict)
    parts.append("}")


def _scalar(item: object, kind: str, path: str) -> str:
    if kind == "any":
        return go_json(item)
    if item is None:
        return {"s": '""', "i": "0", "b": "false", "f": "0"}[kind]
    if kind == "i":
        if isinstance(item, bool) or not isinstance(item, int):
            _fail(path, f"expected an integer, got {_kind(item)}")
        return str(item)
    if kind == "f":
        if isinstance(item, bool) or not isinstance(item, int | float):
            _fail(path, f"expected a number, got {_kind(item)}")
        return go_float(float(item))
    if not isinstance(item, _SCALARS[kind]):
        _fail(path, f"expected a {_SCALARS[kind].__name__}, got {_kind(item)}")
    return go_json(item)


def _custom(item: object, kind: str, path: str) -> str:
    """Types with their own MarshalJSON: Quantity, IntOrString, Time and the like."""
    if kind == "Quantity":
        try:
            return go_string(canonical_quantity(item if item is not None else 0))
        except QuantityError as error:
            _fail(path, f"{item!r} is not a quantity: {error}")
    if kind == "IntOrString":
        if item is None:
            return "0"
        if isinstance(item, bool) or not isinstance(item, int | str):
            _fail(path, f"expected an integer or a string, got {_kind(item)}")
        return go_json(item)
    if item is None:
        return "null"  # metav1.Time and friends write their zero value as null
    return go_json(item)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _fail(path: str, problem: str) -> NoReturn:
    location = path.lstrip(".") or "the Pod"
    raise PodEncodeError(f"{location}: {problem}")


@cache
def _patch_meta(type_name: str) -> dict[str, tuple[str, str, str]]:
    table = {}
    for entry in POD_FIELDS[type_name].split():
        name, _, rest = entry.partition(":")
        kind, _, patch = rest.partition("/")
        strategy, _, key = patch.partition("=")
        table[name.rstrip("?")] = (kind, strategy, key)
    return table


def field_meta(type_name: str, field: str) -> tuple[str, str, str] | None:
    """(type, patch strategy, merge key) of a field of a core/v1 type, or None if unknown."""
    if type_name not in POD_FIELDS:
        return None
    return _patch_meta(type_name).get(field)
