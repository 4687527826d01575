"""Strategic merge patch of a Pod: a port of `strategicpatch.StrategicMergePatch`.

The direct provider (contracts §4.1) is the requester's Pod with the user's server patch
applied by the reference's apimachinery, and its `nominal` hash covers the result, so fma applies
the patch the same way: maps merge recursively, `null` deletes a key, lists whose Go field
carries `patchStrategy:"merge"` merge by their `patchMergeKey` (containers and env by `name`,
ports by `containerPort`, volumeMounts by `mountPath`, ...) and keep Go's element order, other
lists are replaced, and the `$patch: replace|delete` directives (in maps and list elements),
`$deleteFromPrimitiveList/` and `$retainKeys` work as in Go. `$setElementOrder/` is rejected
with a clear error rather than half-implemented.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from controller.core._podjson import field_meta

_DIRECTIVE: Final = "$patch"
_DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList/"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"

JsonMap = dict[str, Any]


class PatchError(ValueError):
    """The patch cannot be applied (the message names the field and the problem)."""


def strategic_merge_pod(original: Mapping[str, Any], patch: Mapping[str, Any]) -> JsonMap:
    """Apply `patch` to the Pod `original` (both JSON maps); neither argument is modified."""
    return _merge_map(copy.deepcopy(dict(original)), copy.deepcopy(dict(patch)), "@Pod")


def _go_type(value: object) -> str:
    """The Go dynamic type of a decoded JSON value (all numbers are float64)."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    return "string" if isinstance(value, str) else "nil"


def _merge_map(original: JsonMap | None, patch: JsonMap, kind: str | None) -> JsonMap:
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return patch
        if directive == "delete":
            return {}
        raise PatchError(f'unknown patch type "{directive}" in map')
    original = {} if original is None else original
    _retain_keys(original, patch)
    if any(key.startswith(_SET_ORDER) for key in patch):
        raise PatchError("the $setElementOrder directive is not supported in server patches")
    for raw_key, patch_value in list(patch.items()):
        delete_list = raw_key.startswith(_DELETE_PRIMITIVES)
        key = raw_key[len(_DELETE_PRIMITIVES) :] if delete_list else raw_key
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original:
            original[key] = patch_value
            continue
        original[key] = _merge_value(original[key], patch_value, kind, key, delete_list)
    return original


def _merge_value(old: Any, new: Any, kind: str | None, key: str, delete_list: bool) -> Any:
    """Merge one field present on both sides: maps and merge-lists recurse, the rest replace."""
    if _go_type(old) != _go_type(new):
        return new
    if isinstance(old, dict):
        sub_kind, strategy, _ = _meta(kind, key)
        return new if "replace" in strategy else _merge_map(old, new, sub_kind)
    if isinstance(old, list):
        sub_kind, strategy, merge_key = _meta(kind, key)
        if "merge" in strategy.split(","):
            element = sub_kind[2:] if sub_kind and sub_kind.startswith("[]") else None
            return _merge_slice(old, new, element, merge_key, delete_list)
    return new


def _meta(kind: str | None, key: str) -> tuple[str | None, str, str]:
    """Field type, patch strategy and merge key of `key` in the Go type `kind`."""
    kind = (kind or "").lstrip("*")
    if kind.startswith("{}"):
        return kind[2:], "", ""
    if kind.startswith("@"):
        meta = field_meta(kind[1:], key)
        if meta is None:
            raise PatchError(
                f'unable to find api field in struct {kind[1:]} for the json field "{key}"'
            )
        return meta
    return None, "", ""


def _retain_keys(original: JsonMap, patch: JsonMap) -> None:
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    if not isinstance(keep, list):
        raise PatchError("$retainKeys must be a list")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_slice(
    original: list[Any], patch: list[Any], element: str | None, merge_key: str, delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kinds = {_go_type(item) for item in original + patch}
    if len(kinds) != 1 or "slice" in kinds:
        raise PatchError("lists to merge must hold values of one type, and not lists")
    if kinds != {"map"}:
        if delete_list:
            return [item for item in original if item not in patch]
        merged = _dedupe(original + patch)
    else:
        if not merge_key:
            raise PatchError("cannot merge lists without merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_by_key(list(original), patch, merge_key, element)
    patch_items = [item for item in merged if _index(patch, item, merge_key) >= 0]
    server_only = [item for item in merged if _index(patch, item, merge_key) < 0]
    return _merge_sorted(
        _normalize(server_only, original, merge_key),
        _normalize(patch_items, patch, merge_key),
        original,
        merge_key,
    )


def _special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """`$patch: delete` removes matching elements; `$patch: replace` replaces the list."""
    plain, replace = [], False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [o for o in original if o.get(merge_key) != item[merge_key]]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f'unknown patch type "{directive}" in list element')
    return (plain, []) if replace else (original, plain)


def _merge_by_key(
    original: list[Any], patch: list[Any], merge_key: str, element: str | None
) -> list[Any]:
    for item in patch:
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        position = _index(original, item, merge_key)
        if position >= 0:
            original[position] = _merge_map(original[position], item, element)
        else:
            original.append(item)
    return original


def _index(items: list[Any], value: Any, merge_key: str) -> int:
    """Go's `index`: position of the element with the same merge key value (or same scalar)."""
    wanted = value.get(merge_key) if merge_key and isinstance(value, dict) else value
    for position, item in enumerate(items):
        current = item.get(merge_key) if merge_key and isinstance(item, dict) else item
        if current == wanted and _go_type(current) == _go_type(wanted):
            return position
    return -1


def _normalize(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """Sort by position in `order`, `$patch: delete` elements last (Go `normalizeSliceOrder`)."""
    keep = [i for i in items if not (isinstance(i, dict) and i.get(_DIRECTIVE) == "delete")]
    deleted = [i for i in items if isinstance(i, dict) and i.get(_DIRECTIVE) == "delete"]
    for item in keep + list(order):
        if merge_key and isinstance(item, dict) and merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
    keep.sort(key=lambda item: _index(order, item, merge_key))
    return keep + deleted


def _merge_sorted(left: list[Any], right: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """Go's `mergeSortedSlice`: interleave server-only items into the patch items."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = _index(order, left[i], merge_key), _index(order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _dedupe(items: list[Any]) -> list[Any]:
    """Go's `deduplicateScalars`, including the way it moves the last element forward."""
    items = list(items)
    length = len(items) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if items[i] == items[j] and _go_type(items[i]) == _go_type(items[j]):
                items[j] = items[length]
                items = items[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return items
