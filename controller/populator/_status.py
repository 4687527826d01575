"""`LC.status` and `LPP.status` (contracts §3, §10): errors and `observedGeneration`.

The status says what the populator made of the object's current generation: for an LC, the
template build error (`errors` absent when the template is fine); for an LPP, its selector
error and each `countForLauncher` entry naming a missing or malformed LC. It is written on the
status subresource, with the resourceVersion the populator read, and only when it differs
(`controller.core.status_patch`), so a steady state costs the apiserver nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from controller.core import lc_status_errors, status_patch
from controller.populator._table import PolicyKeeper
from kube import (
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
    KubeClient,
    Result,
    Store,
    metadata,
    patch_merge,
)

_log = logging.getLogger(__name__)


class Rejections:
    """The apiserver's last refusal (422) of a launcher Pod, per LC, for `LC.status.errors`.

    `notify(lc)` is called whenever an LC's entry changes, so its status gets a pass.
    """

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify
        self._by_lc: dict[str, str] = {}

    def get(self, lc: str) -> str | None:
        return self._by_lc.get(lc)

    def rejected(self, lc: str, message: str) -> None:
        if self._by_lc.get(lc) != message:
            self._by_lc[lc] = message
            self._notify(lc)

    def forget(self, lc: str) -> None:
        """A launcher was accepted, or the template changed: the refusal no longer holds."""
        if self._by_lc.pop(lc, None) is not None:
            self._notify(lc)


class StatusKey(NamedTuple):
    """An LC (`lc`) or LPP (`lpp`) whose status may need a write."""

    kind: Literal["lc", "lpp"]
    name: str


@dataclass(kw_only=True)
class StatusReconciler:
    """`reconcile(key)` for the status work queue."""

    client: KubeClient
    lcs: Store
    lpps: Store
    keeper: PolicyKeeper
    rejections: Rejections
    namespace: str

    async def __call__(self, key: StatusKey) -> Result | None:
        store = self.lcs if key.kind == "lc" else self.lpps
        obj = store.get_by_name(self.namespace, key.name)
        if obj is None:
            return None
        if key.kind == "lc":
            build = self.keeper.build_of(key.name)
            if build is None:
                return None
            errors = lc_status_errors(build, rejection=self.rejections.get(key.name))
        else:
            errors = self.keeper.lpp_errors(key.name)
        meta = metadata(obj)
        patch = status_patch(obj.get("status"), generation=meta.get("generation"), errors=errors)
        if patch is None:
            return None
        kind = LAUNCHER_CONFIGS if key.kind == "lc" else LAUNCHER_POPULATION_POLICIES
        await patch_merge(self.client, kind, obj, {"status": patch}, subresource="status")
        _log.info("%s %s: status %s", kind.kind, key.name, patch)
        return None
