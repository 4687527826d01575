"""Type-checked reads from a Pod given as plain JSON data.

The apiserver has already validated the Pod's shape when it calls the webhook, but the function
must not trust that: a malformed object, or a field this code misreads, has to end in a skip with
a reason, never in an exception that would fail the admission call. Each reader raises `Skip`
naming the JSON path and what was expected there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.mutation._model import Skip, quote


def _kind(value: object) -> str:
    return type(value).__name__


def get_map(parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    """The object at `parent[key]`, or None when absent or null."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise Skip(f"{path} is a {_kind(value)}, not an object; fix the Pod manifest")
    return value


def get_list(parent: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    """The list at `parent[key]`, or None when absent or null."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise Skip(f"{path} is a {_kind(value)}, not a list; fix the Pod manifest")
    return value


def get_str(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    """The string at `parent[key]`, or None when absent or null."""
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Skip(f"{path} is a {_kind(value)}, not a string; fix the Pod manifest")


def get_str_list(parent: Mapping[str, Any], key: str, path: str) -> list[str] | None:
    """A list of strings (`command`, `args`), or None when absent or null."""
    items = get_list(parent, key, path)
    if items is not None and not all(isinstance(item, str) for item in items):
        raise Skip(f"{path} must be a list of strings; quote every item in the Pod manifest")
    return items


def get_str_map(parent: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """A string-to-string map (labels, annotations); empty when absent or null."""
    value = get_map(parent, key, path)
    if value is None:
        return {}
    for item_key, item in value.items():
        if not isinstance(item, str):
            raise Skip(f"{path}[{quote(item_key)}] is a {_kind(item)}, not a string; quote it")
    return value


def as_map(value: object, path: str) -> dict[str, Any]:
    """`value` itself as an object (a list item such as a container)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise Skip(f"{path} is a {_kind(value)}, not an object; fix the Pod manifest")
    return value
