"""Names of in-process apps: the built-in ones and `module:function` references (pure).

A separate module so that the configuration can check a reference without importing the apps.
"""

from __future__ import annotations

import re
from typing import Final

BUILTIN_APPS: Final = {
    "requester": "localcluster.kubelet.apps:requester",
    "vllm-standin": "localcluster.kubelet.apps:vllm_standin",
}
"""fma's light components: the requester stub and the vLLM stand-in."""

_REFERENCE: Final = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def check_app_reference(app: str) -> str | None:
    """None if `app` names an app, else what is wrong with it."""
    if app in BUILTIN_APPS or _REFERENCE.match(app):
        return None
    return (
        f"{app!r} is neither a built-in app ({', '.join(sorted(BUILTIN_APPS))}) nor a "
        "'module:function' reference"
    )


def entry_point(app: str) -> tuple[str, str]:
    """(module, function) of a checked reference."""
    module, _, function = BUILTIN_APPS.get(app, app).partition(":")
    return module, function
