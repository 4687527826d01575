"""Gathering one inference server's `ServerSnapshot` from the controller's caches (§8.2 inputs)."""

from __future__ import annotations

from contract import keys
from controller.core import PodView, ServerMemory, ServerSnapshot, Settings
from controller.reconciler import _pods as p
from controller.reconciler._keys import ServerKey
from controller.reconciler._state import ClusterState


def server_snapshot(
    state: ClusterState,
    key: ServerKey,
    *,
    memory: ServerMemory,
    settings: Settings,
    now: float,
) -> ServerSnapshot:
    """Everything `decide_server` may look at for the requester `key` names."""
    raw = state.pod(key.name)
    requester = state.view(raw) if raw is not None and p.uid(raw) == key.uid else None
    providers = tuple(state.view(pod) for pod in state.pods_by(p.BOUND_TO, key.uid))
    node_name = _node_of(requester, providers)
    isc, isc_error, lc, lc_error = None, None, None, None
    if requester is not None and requester.annotations.get(keys.ISC_ANNOTATION):
        isc, isc_error = state.isc(requester.annotations[keys.ISC_ANNOTATION])
        if isc is not None:
            lc, lc_error = state.lc(isc.spec.launcher_config_name)
    return ServerSnapshot(
        now=now,
        requester_uid=key.uid,
        requester=requester,
        providers=providers,
        node=state.node(node_name),
        memory=memory,
        settings=settings,
        isc=isc,
        isc_error=isc_error,
        lc=lc,
        lc_error=lc_error,
        iscs=state.all_iscs() if providers else {},
        launchers=state.launchers_on(node_name, now),
        direct_providers=state.direct_providers_on(node_name),
        gpu_map=state.gpu_map(),
    )


def _node_of(requester: PodView | None, providers: tuple[PodView, ...]) -> str | None:
    if requester is not None and requester.node_name:
        return requester.node_name
    return next((pv.node for pv in providers if pv.node), None)
