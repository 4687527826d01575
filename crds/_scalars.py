"""Scalar types of the wire format that plain Python types do not express.

Go's `int32`/`int64` and `resource.Quantity` have no exact Python counterpart. Each type here
validates like the Go type decodes and renders in the JSON schema the way the Kubernetes OpenAPI
conventions spell it (`format: int32`, the int-or-string pattern), so the CRD generated from the
models and the models themselves agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# The regular expression Kubernetes publishes for `resource.Quantity` (as controller-gen emits
# it). Valid in Python and in Go's RE2, so the apiserver and the models accept the same strings.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


@dataclass(frozen=True, slots=True)
class IntBits:
    """Marks an `int` as a Go fixed-width integer (`int32` or `int64`).

    The apiserver does not enforce `format: int32` on integers, but Go controllers fail to decode
    an object whose value overflows, so the models reject it too. The range check sits in this
    marker rather than in `Field(ge=..., le=...)` so that the schema carries only the field's own
    bounds (a `launcherCount` has none) and the `format`.

    Put it last in `Annotated[...]`, after any `Field(ge=..., le=...)`: constraints placed after a
    validator cannot be rendered as `minimum`/`maximum` by pydantic.
    """

    bits: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Wrap the integer schema with a range check for this width."""
        low, high = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        name = f"int{self.bits}"

        def check(value: int) -> int:
            if not low <= value <= high:
                raise PydanticCustomError(
                    "int_width",
                    "Input should fit in {name} ({low}..{high})",
                    {"name": name, "low": low, "high": high},
                )
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Add the OpenAPI `format` of this width."""
        json_schema = handler(schema)
        json_schema["format"] = f"int{self.bits}"
        return json_schema


INT32 = IntBits(32)
INT64 = IntBits(64)

Int32 = Annotated[int, INT32]
"""A Go `int32`: any JSON integer in range, no other bounds."""

Int64 = Annotated[int, INT64]
"""A Go `int64`."""

Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes `resource.Quantity` as it travels: a JSON integer or a string such as `"80Gi"`.

The schema is the exact int-or-string form the apiserver accepts as structural; the pattern only
applies to strings, as in Kubernetes.
"""
