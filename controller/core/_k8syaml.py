"""`sigs.k8s.io/yaml.YAMLToJSON` for the server patch: YAML 1.1 values as yaml.v2 reads them.

PyYAML also implements YAML 1.1 but resolves plain scalars differently from yaml.v2 (`0o17`,
`1e3` and `.5` stay strings; timestamps become datetimes while yaml.v2 keeps them as strings
when the target is untyped). This loader hands every plain scalar to the yaml.v2 rules of
`_yaml_resolve.resolve_plain` and turns mapping keys into strings the way YAMLToJSON does.
"""

from __future__ import annotations

from typing import Any

import yaml

from controller.core._yaml_resolve import resolve_plain

_PLAIN_TAG = "tag:fma.llm-d.ai,2025:plain"


class _Loader(yaml.SafeLoader):
    """Safe loader whose plain scalars are resolved by yaml.v2's rules."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and value != "<<":
            return _PLAIN_TAG  # "<<" keeps PyYAML's merge-key tag: yaml.v2 merges too
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def _construct_plain(loader: _Loader, node: yaml.ScalarNode) -> object:
    return resolve_plain(str(loader.construct_scalar(node)))


_Loader.add_constructor(_PLAIN_TAG, _construct_plain)


def yaml_to_json_value(text: str) -> Any:
    """The JSON value YAMLToJSON produces for one YAML document (keys become strings)."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ValueError(f"the server patch is not valid YAML: {error}") from error
    return _stringify_keys(value)


def _stringify_keys(value: object) -> object:
    if isinstance(value, dict):
        return {_key(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(item) for item in value]
    return value


def _key(key: object) -> str:
    if key is None:
        return "null"
    if key is True or key is False:
        return "true" if key else "false"
    return str(key)
