"""Settings from a command line: what fma's entry points do with their parsed flags.

Each process keeps its knobs in one frozen dataclass with the documented defaults, and names
each flag's `dest` after the field it sets, so that turning the flags into settings is this one
function rather than a list of `field=args.field` lines per entry point that can miss a new
flag. It lives beside the logging setup because both are what an entry point needs first and
`jsonlog` is the bottom layer every process package may import (stdlib only).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, ClassVar, Protocol, TypeVar


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


S = TypeVar("S", bound=_Dataclass)

__all__ = ["settings_from"]


def settings_from(cls: type[S], args: argparse.Namespace, **given: Any) -> S:
    """A `cls` from the flags whose `dest` is one of its fields; `given` sets the fields that
    no flag sets as parsed (a converted value, a fallback), and every other field keeps its
    default."""
    parsed = vars(args)
    values = {f.name: parsed[f.name] for f in dataclasses.fields(cls) if f.name in parsed}
    return cls(**(values | given))
