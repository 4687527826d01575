"""One pass over one inference server (contracts §8.2): which branch applies, in order.

`decide_server` reads a `ServerSnapshot` and returns the actions of this pass; see `_actions`
for how the I/O layer runs them. The branches live in `_choose` (launcher mode, unbound),
`_direct` (direct mode, unbound), `_bound` (bound path) and `_unbind`.
"""

from __future__ import annotations

from contract import keys
from contract.requester import ACCELERATORS_PATH
from controller.core import _actions as a
from controller.core._bound import decide_bound_direct, decide_bound_launcher
from controller.core._choose import decide_unbound_launcher_mode
from controller.core._direct import decide_unbound_direct
from controller.core._snapshot import (
    ServerSnapshot,
    admin_port,
    is_launcher_mode,
    ref,
    status_only,
    wants_requester_finalizer,
)
from controller.core._unbind import decide_unbind
from controller.core._views import PodView


def decide_server(snap: ServerSnapshot) -> list[a.Action]:  # noqa: PLR0911 - §8.2 order
    """The actions of one pass for the server of `snap.requester_uid`."""
    req = snap.requester
    if len(snap.providers) > 1:
        names = ", ".join(sorted(p.name for p in snap.providers))
        return status_only(snap, [f"more than one server-providing Pod is bound: {names}"])
    provider = snap.providers[0] if snap.providers else None
    if req is None and provider is None:
        return [a.ForgetServer()]
    if (
        req is not None
        and keys.REQUESTER_FINALIZER in req.finalizers
        and not wants_requester_finalizer(provider)
    ):
        patch = a.PodPatch(remove_finalizers=(keys.REQUESTER_FINALIZER,))
        return [a.UpdateRequester(pod=ref(req), patch=patch)]
    if provider is not None and provider.deleting:
        return _provider_deleted(snap, provider)
    if provider is not None and (req is None or req.deleting):
        return decide_unbind(snap, provider)
    assert req is not None
    if req.deleting:
        return []
    return _active(snap, req, provider)


def _active(  # noqa: PLR0911 - the steps of §8.2, each may end the pass
    snap: ServerSnapshot, req: PodView, provider: PodView | None
) -> list[a.Action]:
    """Steps 7-14 for a requester that is not being deleted."""
    if snap.node is None or snap.node.deleting:
        return []
    if req.node_name is None or req.ip is None:
        return _starting(snap, req, provider)
    gpus = snap.memory.gpu_uuids
    if gpus is None:
        poll = _poll(snap, req)
        query = a.QueryAccelerators(ip=req.ip, port=admin_port(req), poll_after=poll)
        if snap.memory.gpu_error is None or poll is not None:  # a starting stub: no status yet
            return [query]
        url = f"http://{req.ip}:{admin_port(req)}{ACCELERATORS_PATH}"
        error = f'GET "{url}" fails: {snap.memory.gpu_error}'
        return [*status_only(snap, [error], provider=provider), query]
    if not gpus:
        return status_only(snap, ["the assigned set of GPUs is empty"], provider=provider)
    launcher_mode = is_launcher_mode(req)
    if provider is not None:
        if launcher_mode:
            return decide_bound_launcher(snap, provider)
        return decide_bound_direct(snap, provider)
    if snap.node.unschedulable:
        return [
            a.DeleteRequester(
                pod=a.PodRef(name=req.name, uid=req.uid),
                preconditions=False,
                reason=f"node {snap.node.name} is cordoned",
            )
        ]
    if launcher_mode:
        return decide_unbound_launcher_mode(snap, gpus)
    if not req.annotations.get(keys.SERVER_PATCH):
        return status_only(snap, [f"the {keys.SERVER_PATCH} annotation is missing"])
    return decide_unbound_direct(snap, gpus)


def _starting(snap: ServerSnapshot, req: PodView, provider: PodView | None) -> list[a.Action]:
    """Not scheduled or no IP yet: reported once it lasts (`Settings.starting_status_after`).

    fma's change: the reference writes this status at once, and clears it a moment later when
    the Pod runs; on a burst of actuations those two writes per requester queue in front of the
    work that makes the servers ready.
    """
    why = "not scheduled yet" if req.node_name is None else "no IP assigned yet"
    remaining = req.created_at + snap.settings.starting_status_after - snap.now
    if remaining > 0 and provider is None:
        return [a.Requeue(after=remaining, reason=why)]
    return status_only(snap, [why], provider=provider)


def _provider_deleted(snap: ServerSnapshot, provider: PodView) -> list[a.Action]:
    """§8.2 step 4: a bound provider is being deleted from outside → replace the requester."""
    req = snap.requester
    actions: list[a.Action] = []
    if req is not None and not req.deleting:
        if keys.REQUESTER_FINALIZER not in req.finalizers:
            patch = a.PodPatch(add_finalizers=(keys.REQUESTER_FINALIZER,))
            actions.append(a.UpdateRequester(pod=ref(req), patch=patch))
        message = f'server-providing Pod "{provider.name}" is being deleted'
        actions += [
            a.EmitEvent(pod=ref(req), type="Warning", reason="ProviderDeleted", message=message),
            a.DeleteRequester(pod=ref(req), reason=message),
        ]
    if keys.PROVIDER_FINALIZER in provider.finalizers:
        patch = a.PodPatch(remove_finalizers=(keys.PROVIDER_FINALIZER,))
        actions.append(a.UpdatePod(pod=ref(provider), patch=patch))
    return actions


def _poll(snap: ServerSnapshot, req: PodView) -> float | None:
    """The GPU query's retry interval while the stub may still be starting (else None)."""
    started = req.server_started_at
    settings = snap.settings
    if started is None or snap.now - started > settings.stub_start_window:
        return None
    return settings.stub_poll_interval
