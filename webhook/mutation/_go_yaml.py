"""YAML that Go reads back exactly, inside a Go `text/template`.

The server patch is rendered by a Go `text/template` and then read by `sigs.k8s.io/yaml`
(yaml.v2 rules, YAML 1.1). Two traps follow:

- yaml.v2 resolves more plain scalars than PyYAML quotes: `y`, `n`, `0o17`, `1e3` would come
  back as a bool or a number and fail to decode into a string field (an env value, an argument).
  So only strings that cannot be anything but a string stay plain; all others are
  double-quoted, in keys too (a label key `on` would become `true`).
- `{{` starts a template action. Every `{{` of the data is written as the action `{{"{{"}}`,
  which renders back to `{{`, so the rendered YAML is exactly what was dumped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import yaml

_PLAIN = re.compile(r"(-{1,2}[A-Za-z]|[A-Za-z_/])[A-Za-z0-9_./:=@+-]*")
_YAML11_WORDS: Final = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})
TEMPLATE_OPEN_ESCAPED: Final = '{{"{{"}}'


class _GoSafeDumper(yaml.CSafeDumper):
    """Safe dumper (libyaml) that double-quotes every string Go might not read as a string."""


def _represent_str(dumper: _GoSafeDumper, value: str) -> yaml.Node:
    plain = _PLAIN.fullmatch(value) is not None and value.lower() not in _YAML11_WORDS
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else '"')


_GoSafeDumper.add_representer(str, _represent_str)


def escape_template(text: str) -> str:
    """Make `text` render to itself under Go `text/template`."""
    return text.replace("{{", TEMPLATE_OPEN_ESCAPED)


def go_template_yaml(document: Any, *, comments: Iterable[str] = ()) -> str:
    """Block-style YAML of `document`, `# ` comment lines first, escaped for `text/template`.

    Lines are never folded (a folded double-quoted string is valid YAML but needlessly hard to
    read), and key order is kept so the patch reads like the container it restores.
    """
    body = yaml.dump(
        document,
        Dumper=_GoSafeDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000_000,
    )
    header = "".join(f"# {line}\n" for line in comments)
    return escape_template(header + body)
