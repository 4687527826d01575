"""Kubernetes' `$(VAR)` expansion, exactly as the kubelet applies it to command, args and env.

A port of k8s.io/kubernetes/third_party/forked/golang/expansion: `$(NAME)` is replaced when NAME
is defined and left verbatim otherwise; `$$` is an escaped `$`; a `$` followed by anything else
is kept; an unclosed `$(` is kept. Shell syntax such as `${VAR}` or `$VAR` is NOT expanded:
Kubernetes leaves it to the container's shell, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"

Mapping_ = Callable[[str], str]


def mapping_for(*contexts: Mapping[str, str]) -> Mapping_:
    """A lookup in `contexts` in order; undefined names expand to themselves, `$(NAME)`."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"{_OPERATOR}{_OPENER}{name}{_CLOSER}"

    return lookup


def expand(text: str, mapping: Mapping_) -> str:
    """Expands every `$(NAME)` of `text` through `mapping` (see the module docstring)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_variable_name(text[cursor + 1 :])
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_variable_name(rest: str) -> tuple[str, bool, int]:
    """(what to emit or look up, whether it is a name, how many characters were consumed)."""
    first = rest[0]
    if first == _OPERATOR:
        return first, False, 1
    if first == _OPENER:
        closing = rest.find(_CLOSER, 1)
        if closing != -1:
            return rest[1:closing], True, closing + 1
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + first, False, 1
