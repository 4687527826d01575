"""What the populator knows of each launcher's instances: only to pick which excess to delete.

Deleting excess launchers emptiest first (reference-differences E2) needs each launcher's instance
list. Inside `fma-controller` the dual-pods reconciler already follows every launcher's watch
stream, so it hands the populator an `InstanceSource` over those streams. Standalone
(`python -m controller.populator`), `WatchedInstances` follows the streams itself. Without a
source every launcher's instances count as unknown, and the decision treats unknown as busy
(deleted last), which is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from contract.launcher import InstanceState
from controller.core import InstanceView, pod_view
from controller.launcherapi import InstanceEvent, LauncherWatches, LauncherWatchSettings
from controller.launcherapi import LauncherView as StreamView
from controller.populator._keys import key_of
from kube import Handlers, Informer, JsonObject, metadata


class InstanceSource(Protocol):
    """The instances of a launcher Pod, by Pod UID; None while unknown."""

    def instances(self, pod_uid: str) -> tuple[InstanceView, ...] | None: ...


class NoInstances:
    """An `InstanceSource` that knows nothing (every launcher counts as possibly busy)."""

    def instances(self, pod_uid: str) -> tuple[InstanceView, ...] | None:
        return None


def instance_view(raw: Mapping[str, Any]) -> InstanceView:
    """An InstanceView from one InstanceState of the launcher API (contracts §5.1, C3)."""
    state = InstanceState.from_wire(raw)
    return InstanceView(
        id=state.instance_id,
        running=state.running,
        phase=state.phase,
        isc_name=state.isc_name,
        port=state.port,
        gpu_uuids=tuple(state.gpu_uuids or ()),
        exit_code=state.exit_code,
        reason=state.reason or None,
    )


def instance_views(view: StreamView | None) -> tuple[InstanceView, ...] | None:
    if view is None:
        return None
    return tuple(instance_view(state) for _id, state in sorted(view.instances.items()))


class WatchedInstances:
    """An `InstanceSource` that follows the stream of every Ready launcher Pod.

    A launcher is Ready when its API answers (its readiness probe lists the instances), so
    the stream connects at once; while a launcher is not Ready its instances are unknown.
    Whenever a stream lists or reports a change, `on_change` gets the launcher Pod's UID, so
    that its key is decided again with what is now known (`Populator.launcher_changed`).
    """

    def __init__(self, http: httpx.AsyncClient, settings: LauncherWatchSettings | None = None):
        self._watches = LauncherWatches(http, self, settings)
        self._on_change: Callable[[str], None] = lambda _uid: None

    def attach(self, pods: Informer, on_change: Callable[[str], None]) -> None:
        """Start and stop streams as launcher Pods come, become Ready, and go."""
        self._on_change = on_change
        pods.add_handlers(
            Handlers(
                on_add=self._follow,
                on_update=lambda _old, new: self._follow(new),
                on_delete=lambda pod: self._watches.discard(_uid(pod)),
            )
        )

    def instances(self, pod_uid: str) -> tuple[InstanceView, ...] | None:
        return instance_views(self._watches.view(pod_uid))

    async def aclose(self) -> None:
        await self._watches.aclose()

    # ----- the streams' listener ---------------------------------------------------------------

    def on_relist(self, launcher: str, view: StreamView) -> None:
        self._on_change(launcher)

    def on_event(self, launcher: str, event: InstanceEvent, view: StreamView) -> None:
        self._on_change(launcher)

    # ----- plumbing ----------------------------------------------------------------------------

    def _follow(self, pod: JsonObject) -> None:
        if key_of(pod) is None:
            return
        view = pod_view(pod)
        if view.ip and not view.deleting and view.ready:
            self._watches.ensure(view.uid, view.ip)
        else:
            self._watches.discard(view.uid)


def _uid(pod: JsonObject) -> str:
    return str(metadata(pod).get("uid") or "")
