"""The server-patch template (contracts §1.4): Go `text/template` limited to what it needs.

The reference renders the `server-patch` annotation with Go's `text/template` (option
`missingkey=error`) and the data `{NodeName, LocalVolume}`. fma supports the actions a patch
uses: `{{ .NodeName }}`, `{{ .LocalVolume }}`, string constants such as `{{"{{"}}` (how fma's
webhook escapes a literal `{{`), and the `{{-`/`-}}` trim markers. Anything else (pipelines,
functions, `if`, `range`, comments) is reported as an error naming the action, instead of
rendering something the reference would render differently.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Final

_ACTION: Final = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.DOTALL)
_FIELD: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_DOUBLE_QUOTED: Final = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_RAW: Final = re.compile(r"`[^`]*`")


class TemplateError(ValueError):
    """The template cannot be rendered; the message names the action."""


def render(template: str, data: Mapping[str, str]) -> str:
    """Render `template` with `data`, as Go's text/template with missingkey=error would."""
    out: list[str] = []
    position = 0
    for match in _ACTION.finditer(template):
        text = template[position : match.start()]
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        out.append(text)
        out.append(_evaluate(match.group(2).strip(), data))
        position = match.end()
        if match.group(3):
            while position < len(template) and template[position] in " \t\r\n":
                position += 1
    rest = template[position:]
    if "{{" in rest:
        raise TemplateError(f"unclosed action in {rest[rest.index('{{') :][:40]!r}")
    out.append(rest)
    return "".join(out)


def _evaluate(action: str, data: Mapping[str, str]) -> str:
    if field := _FIELD.fullmatch(action):
        name = field.group(1)
        if name not in data:
            raise TemplateError(f'map has no entry for key "{name}" (in {{{{ {action} }}}})')
        return data[name]
    if _DOUBLE_QUOTED.fullmatch(action):
        value = ast.literal_eval(action)
        assert isinstance(value, str)
        return value
    if _RAW.fullmatch(action):
        return action[1:-1]
    raise TemplateError(
        f"unsupported template action {{{{ {action} }}}}: only {{{{ .NodeName }}}}, "
        f'{{{{ .LocalVolume }}}} and string constants such as {{{{"{{{{"}}}}}} are supported'
    )
