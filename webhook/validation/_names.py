"""Kubernetes name rules, as the apiserver applies them (`k8s.io/apimachinery/.../validation`).

The webhook must reject what the apiserver or the controllers would later choke on, and accept
everything else, so these follow the Go rules closely: same regular expressions, same length
limits, same quirks (annotation keys are checked lower-cased, label keys as written). Each
function returns a list of problems; an empty list means valid, like the Go functions do.
"""

from __future__ import annotations

import json
import re
from typing import Final

DNS1123_LABEL_MAX: Final = 63
DNS1123_SUBDOMAIN_MAX: Final = 253
QUALIFIED_NAME_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63
PORT_NAME_MAX: Final = 15

_DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE: Final = re.compile(rf"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME_RE: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_VAR_NAME_RE: Final = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PORT_NAME_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])*$")
_HAS_LETTER_RE: Final = re.compile(r"[a-z]")

# Prefixes that routing metadata must not use (contracts §3.1): the controllers' own keys, and
# the prefixes Kubernetes reserves for its core components. Exactly these: subdomains such as
# `app.kubernetes.io/` are the recommended labels of the ecosystem, and the reference controller
# accepts them, so denying them would reject ISCs that work elsewhere.
RESERVED_PREFIXES: Final = ("dual-pods.llm-d.ai", "kubernetes.io", "k8s.io")


def dns1123_label(value: str) -> list[str]:
    """Problems of `value` as a DNS-1123 label (container names, for example)."""
    problems = []
    if len(value) > DNS1123_LABEL_MAX:
        problems.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL_RE.match(value):
        problems.append(
            "must consist of lower case alphanumeric characters or '-', and must start and "
            "end with an alphanumeric character"
        )
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Problems of `value` as a DNS-1123 subdomain (object names, key prefixes)."""
    problems = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        problems.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        problems.append(
            "must consist of lower case alphanumeric characters, '-' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return problems


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
    problems = []
    if len(value) > LABEL_VALUE_MAX:
        problems.append(f"must be no more than {LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE_RE.match(value):
        problems.append(
            "must be empty or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )
    return problems


def reserved_prefix(key: str) -> str | None:
    """The reserved prefix `key` uses, or None. Compared lower-cased, as DNS names are."""
    if "/" not in key:
        return None
    prefix = key.split("/", 1)[0].lower()
    return prefix + "/" if prefix in RESERVED_PREFIXES else None


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
