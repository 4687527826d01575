"""Kubernetes name rules only the webhook checks: env var names, port names, field paths.

The rules the controllers apply too (qualified names, label values, DNS names, reserved
prefixes) are `contract.rules`, so that admission and the controllers decide alike. These follow
the Go rules (`k8s.io/apimachinery/.../validation`) closely; each function returns a list of
problems, an empty list meaning valid, like the Go functions do.
"""

from __future__ import annotations

import json
import re
from typing import Final

PORT_NAME_MAX: Final = 15

_ENV_VAR_NAME_RE: Final = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PORT_NAME_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])*$")
_HAS_LETTER_RE: Final = re.compile(r"[a-z]")


def env_var_name(name: str) -> list[str]:
    """Problems of `name` as a container environment variable name (Kubernetes rules)."""
    problems = []
    if not _ENV_VAR_NAME_RE.match(name):
        problems.append(
            "must consist of alphabetic characters, digits, '_', '-' or '.', and must not "
            "start with a digit"
        )
    if name in {".", ".."}:
        problems.append(f"must not be {name!r}")
    elif name.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def port_name(name: str) -> list[str]:
    """Problems of `name` as a container port name (an IANA service name)."""
    problems = []
    if len(name) > PORT_NAME_MAX:
        problems.append(f"must be no more than {PORT_NAME_MAX} characters")
    if not _PORT_NAME_RE.match(name):
        problems.append("must contain only lower case alphanumeric characters and '-'")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not _HAS_LETTER_RE.search(name):
        problems.append("must contain at least one letter")
    return problems


def field_key(key: str) -> str:
    """A map key as it appears in a field path: bare when plain, JSON-quoted otherwise."""
    if re.fullmatch(r"[A-Za-z0-9._/-]+", key):
        return f"[{key}]"
    return f"[{json.dumps(key)}]"
