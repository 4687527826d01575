"""Pydantic JSON schema → Kubernetes structural OpenAPI v3 schema.

A CRD of `apiextensions.k8s.io/v1` must carry a *structural* schema: every node has a `type`
(except int-or-string and preserve-unknown-fields nodes), there are no references, `anyOf` and
friends hold only value validations, and `additionalProperties` is either absent or a schema for
map values. Pydantic emits JSON Schema 2020-12, so this module rewrites it:

- `$ref`s are inlined; keys next to a reference (a field's own description) win over the
  referenced model's (its docstring);
- `anyOf [X, {"type": "null"}]`, pydantic's spelling of an optional field, becomes `X`: optional
  means "not in `required`", and the Kubernetes convention is to omit, not to send null;
- `title`, `default: null` and `additionalProperties: false` (not structural) are dropped, and
  `additionalProperties: true` (a model with `extra="allow"`) becomes
  `x-kubernetes-preserve-unknown-fields: true`;
- descriptions are re-flowed: single line breaks from docstrings become spaces.

Anything else is refused with `SchemaError`, so a model that cannot be expressed structurally
(a non-null default, `gt`, a union, ...) fails generation instead of yielding a CRD the target
apiserver (Kubernetes v1.20, which has no CEL rules) would reject.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

JsonSchema = dict[str, Any]

# Keywords copied unchanged (after recursion where they hold schemas).
_KEPT = frozenset(
    {
        "type",
        "format",
        "description",
        "required",
        "properties",
        "items",
        "additionalProperties",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "anyOf",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields",
    }
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_NULL = {"type": "null"}

_API_CONVENTIONS = (
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
)
# The envelope every custom resource shares, spelled as Kubernetes itself documents it. The root
# `metadata` must be a bare object: the apiserver validates ObjectMeta itself and rejects any
# other schema (even a description) there.
TYPE_META_PROPERTIES: JsonSchema = {
    "apiVersion": {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object. Servers should convert recognized schemas to the latest internal value, and "
        f"may reject unrecognized values. More info: {_API_CONVENTIONS}#resources",
    },
    "kind": {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object "
        "represents. Servers may infer this from the endpoint the client submits requests to. "
        f"Cannot be updated. In CamelCase. More info: {_API_CONVENTIONS}#types-kinds",
    },
    "metadata": {"type": "object"},
}


class SchemaError(ValueError):
    """A model uses a construct that has no structural OpenAPI equivalent."""


def resource_schema(model: type[BaseModel]) -> JsonSchema:
    """Return the `openAPIV3Schema` of a custom resource model (apiVersion, kind, metadata, ...).

    The model's `apiVersion`, `kind` and `metadata` fields are replaced by the standard envelope:
    their pydantic forms (a `const`, an ObjectMeta model) are for parsing, not for the CRD.
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    missing = TYPE_META_PROPERTIES.keys() - raw.get("properties", {}).keys()
    if missing:
        raise SchemaError(f"{model.__name__}: not a resource model, lacks {sorted(missing)}")
    raw["properties"] = {**raw["properties"], **TYPE_META_PROPERTIES}
    raw["required"] = [name for name in raw.get("required", []) if name not in TYPE_META_PROPERTIES]
    if not raw["required"]:
        del raw["required"]
    return structural(raw)


def structural(json_schema: JsonSchema) -> JsonSchema:
    """Convert a pydantic JSON schema (with its `$defs`) into a structural schema."""
    definitions = json_schema.get("$defs", {})
    root = {key: value for key, value in json_schema.items() if key != "$defs"}
    try:
        return _convert(root, definitions, "")
    except RecursionError:
        # Inlining a self-referencing model never ends; CRD schemas cannot express recursion.
        raise SchemaError("recursive models cannot be inlined into a CRD schema") from None


def _convert(node: JsonSchema, definitions: JsonSchema, path: str) -> JsonSchema:
    """Convert one schema node; `path` (JSON-pointer-like) only serves error messages."""
    if "$ref" in node:
        return _convert(_inline(node, definitions, path), definitions, path)
    if "anyOf" in node and not _is_int_or_string(node):
        return _convert(_drop_null(node, path), definitions, path)

    out: JsonSchema = {}
    for key, value in node.items():
        out.update(_convert_keyword(key, value, definitions, path))
    return out


def _convert_keyword(key: str, value: Any, definitions: JsonSchema, path: str) -> JsonSchema:
    """Return what keyword `key` with `value` becomes: nothing, itself, or another keyword."""
    match key:
        case "title":
            converted: JsonSchema = {}
        case "default":
            if value is not None:
                raise SchemaError(f"{path or '/'}: default {value!r}; fma's CRDs have no defaults")
            converted = {}
        case "properties":
            converted = {
                key: {
                    name: _convert(sub, definitions, f"{path}/{name}")
                    for name, sub in value.items()
                }
            }
        case "items":
            converted = {key: _convert(value, definitions, f"{path}/items")}
        case "additionalProperties" if isinstance(value, bool):
            # false (a closed model) is what pruning does anyway; true means extra="allow".
            converted = {"x-kubernetes-preserve-unknown-fields": True} if value else {}
        case "additionalProperties":
            converted = {key: _convert(value, definitions, f"{path}/*")}
        case "description":
            converted = {key: _reflow(value)}
        case _ if key in _KEPT:  # includes the int-or-string `anyOf`, checked by the caller
            converted = {key: value}
        case _:
            raise SchemaError(f"{path or '/'}: keyword {key!r} has no structural equivalent")
    return converted


def _inline(node: JsonSchema, definitions: JsonSchema, path: str) -> JsonSchema:
    """Replace a `$ref` by its definition; the referring node's other keys take precedence."""
    ref = node["$ref"]
    name = ref.removeprefix("#/$defs/")
    if name == ref or name not in definitions:
        raise SchemaError(f"{path or '/'}: unresolvable reference {ref!r}")
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return {**definitions[name], **siblings}


def _drop_null(node: JsonSchema, path: str) -> JsonSchema:
    """Turn pydantic's optional `anyOf [X, null]` into `X` (outer keys such as the description
    win)."""
    branches = [branch for branch in node["anyOf"] if branch != _NULL]
    if len(branches) != 1 or len(node["anyOf"]) != 2:
        raise SchemaError(f"{path or '/'}: unions other than `X | None` are not structural")
    outer = {key: value for key, value in node.items() if key != "anyOf"}
    return {**branches[0], **outer}


def _is_int_or_string(node: JsonSchema) -> bool:
    """Whether `node` is the one `anyOf` that structural schemas allow."""
    return bool(node.get("x-kubernetes-int-or-string")) and (
        node.get("anyOf") == _INT_OR_STRING_ANY_OF
    )


def _reflow(text: str) -> str:
    """Join the lines of each paragraph; keep blank-line paragraph breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
