"""The populator's work keys and how launcher Pods map to them (contracts §10).

A key is one (node, LauncherConfig) pair. A launcher Pod belongs to the key named by its labels
`dual-pods.llm-d.ai/node-name` and `dual-pods.llm-d.ai/launcher-config-name` (with
`app.kubernetes.io/component=launcher`), whoever created it: the populator, or the dual-pods
controller on its cold path. The Pod informer gets two indexes so that a key's Pods, and all
Pods of one LC, are found without a scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple

from contract import keys
from kube import JsonObject, metadata

KEY_INDEX: Final = "launcher-populator/key"
"""Pod index: `<node>/<lc>` of each launcher Pod."""
LC_INDEX: Final = "launcher-populator/lc"
"""Pod index: the LC name of each launcher Pod."""
UID_INDEX: Final = "launcher-populator/uid"
"""Pod index: the UID of each launcher Pod (instance streams name launchers by UID)."""


class LauncherKey(NamedTuple):
    """One (node, LC) entry of the policy table; the unit of the populator's work."""

    node: str
    lc: str

    @property
    def index_value(self) -> str:
        return f"{self.node}/{self.lc}"

    @property
    def label_selector(self) -> str:
        """The LIST selector of this key's Pods (used when expectations time out)."""
        component = f"{keys.COMPONENT}={keys.COMPONENT_LAUNCHER}"
        return f"{component},{keys.LC_NAME}={self.lc},{keys.NODE_NAME}={self.node}"

    def __str__(self) -> str:
        return f"{self.lc}@{self.node}"


def key_of(pod: JsonObject) -> LauncherKey | None:
    """The key of a launcher Pod, None for any other Pod."""
    labels = metadata(pod).get("labels") or {}
    node, lc = labels.get(keys.NODE_NAME), labels.get(keys.LC_NAME)
    if labels.get(keys.COMPONENT) != keys.COMPONENT_LAUNCHER or not node or not lc:
        return None
    return LauncherKey(node, lc)


def key_index(pod: JsonObject) -> Iterable[str]:
    key = key_of(pod)
    return (key.index_value,) if key is not None else ()


def lc_index(pod: JsonObject) -> Iterable[str]:
    key = key_of(pod)
    return (key.lc,) if key is not None else ()


def uid_index(pod: JsonObject) -> Iterable[str]:
    uid = metadata(pod).get("uid")
    return (str(uid),) if uid and key_of(pod) is not None else ()
