"""The other DPC items of contracts §8.7: an unbound launcher changed; an ISC changed."""

from __future__ import annotations

from collections.abc import Iterable

from contract import keys
from controller.core import _actions as a
from controller.core._hashes import instance_id
from controller.core._snapshot import ref
from controller.core._views import LauncherView
from crds.models import InferenceServerConfig


def decide_unbound_launcher(launcher: LauncherView) -> list[a.Action]:
    """Delete the launcher's stopped instances and let the node's waiting requesters retry."""
    pod = launcher.pod
    actions: list[a.Action] = []
    if pod.ip is not None and not pod.deleting:
        actions += [
            a.DeleteInstance(launcher=ref(pod), ip=pod.ip, instance_id=i.id, reason="stopped")
            for i in launcher.instances or ()
            if i.stopped
        ]
    if pod.node is not None:
        actions.append(a.EnqueueRequesters(node=pod.node))
    return actions


def decide_isc_gc(
    isc_name: str, isc: InferenceServerConfig | None, launchers: Iterable[LauncherView]
) -> list[a.Action]:
    """Delete sleeping instances made from an older version of the ISC (or a deleted ISC).

    Only sleepers are touched: an awake bound instance is handled when it is unbound. An
    instance counts as asleep when the launcher says so, or (for launchers without the phase
    field) when it is not the launcher's bound instance.
    """
    actions: list[a.Action] = []
    for launcher in launchers:
        pod = launcher.pod
        if pod.ip is None or pod.deleting or launcher.instances is None:
            continue
        bound_id = pod.annotations.get(keys.INSTANCE_ID)
        for inst in launcher.instances:
            if inst.isc_name != isc_name or not inst.gpu_uuids or inst.stopped:
                continue
            asleep = inst.phase == "sleeping" or (inst.phase is None and inst.id != bound_id)
            if not asleep:
                continue
            if (
                isc is not None
                and instance_id(isc.spec.model_server_config, inst.gpu_uuids) == inst.id
            ):
                continue
            actions.append(
                a.DeleteInstance(
                    launcher=ref(pod), ip=pod.ip, instance_id=inst.id, reason="obsolete"
                )
            )
    return actions
