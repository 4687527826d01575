"""Unbind (contracts §8.6): routing labels off, sleep (or delete), then one unbinding Update.

fma's changes: an instance that is obsolete, failed, stopped or still starting is deleted
rather than slept (a half-started instance would make the requester wait for its start); a
server that cannot be slept within `sleep_deadline` of the unbind's start is deleted instead —
the instance in launcher mode, the provider in direct mode (reference-differences A3). A direct
provider gets the `last-used` annotation on unbind (B2). A launcher gets, in the same unbinding
Update (so an actuation costs no extra write), the time its instance went to sleep and the
footprint measured while it served (B1, B2), merged into its records, which keep only the
instances it still holds: a restarted controller evicts in the same order and sizes wakes the
same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contract import keys
from controller.core import _actions as a
from controller.core._direct_pod import ProviderBuildError, vllm_port
from controller.core._hashes import instance_id
from controller.core._memory import merged_records
from controller.core._routing import parse_committed
from controller.core._snapshot import ServerSnapshot, container, ref
from controller.core._views import InstanceView, PodView


def decide_unbind(snap: ServerSnapshot, provider: PodView) -> list[a.Action]:
    """Requester gone or being deleted while the provider is bound."""
    memory, settings = snap.memory, snap.settings
    if provider.restarts > 0 and not provider.ready:
        return [a.DeleteProvider(pod=ref(provider), reason="in trouble: restarted and not Ready")]
    if memory.unbind_started_at is None:
        return [a.Remember(what="unbind-started")]
    wedged = snap.now - memory.unbind_started_at >= settings.sleep_deadline
    if keys.LC_NAME in provider.labels:
        first = _launcher_sleep(snap, provider, wedged=wedged)
    else:
        first = _direct_sleep(snap, provider, wedged=wedged)
    if first is None:
        return [
            a.Requeue(after=settings.retry_after, reason="waiting for the launcher's instances")
        ]
    if any(isinstance(action, a.DeleteProvider) for action in first):
        return first
    update = _unbind_update(snap, provider, _records(snap, provider, first))
    return [*first, update, *_release_requester(snap)]


def _records(
    snap: ServerSnapshot, provider: PodView, first: list[a.Action]
) -> dict[str, str | None]:
    """A launcher's recency and footprint records after this unbind (patch entries)."""
    if keys.LC_NAME not in provider.labels:
        return {}
    iid = provider.annotations.get(keys.INSTANCE_ID)
    launcher = snap.launcher(provider)
    deleted = {x.instance_id for x in first if isinstance(x, a.DeleteInstance)}
    keep = None
    if launcher.instances is not None:
        keep = {i.id for i in launcher.instances if not i.stopped} - deleted
    kept = iid is not None and launcher.instance(iid) is not None and iid not in deleted
    footprint = snap.memory.footprint
    return merged_records(
        provider.annotations,
        keep=keep,
        used=(iid, snap.now) if kept and iid is not None else None,
        footprint=(iid, *footprint) if kept and iid is not None and footprint else None,
    )


def _launcher_sleep(
    snap: ServerSnapshot, provider: PodView, *, wedged: bool
) -> list[a.Action] | None:
    """Routing labels off, then sleep or delete the bound instance; None = wait for the list."""
    actions: list[a.Action] = []
    routing = parse_committed(provider.annotations.get(keys.ROUTING_METADATA))
    present = [k for k in (routing.labels if routing else {}) if k in provider.labels]
    if present:
        patch = a.PodPatch(labels=dict.fromkeys(present))
        actions.append(a.UpdateProvider(pod=ref(provider), patch=patch))
    iid = provider.annotations.get(keys.INSTANCE_ID)
    if provider.ip is None or iid is None:
        return actions
    launcher = snap.launcher(provider)
    if launcher.instances is None:
        return None
    inst = launcher.instance(iid)
    if inst is None:
        return actions
    reason = _delete_reason(snap, inst, iid, wedged=wedged)
    if reason is not None:
        actions.append(
            a.DeleteInstance(launcher=ref(provider), ip=provider.ip, instance_id=iid, reason=reason)
        )
    elif not _asleep(snap, inst):
        port = inst.port or int(provider.annotations.get(keys.SERVER_PORT, "0") or 0)
        actions.append(a.Sleep(ip=provider.ip, port=port))
    return actions


def _delete_reason(
    snap: ServerSnapshot, inst: InstanceView, iid: str, *, wedged: bool
) -> a.DeleteReason | None:
    if inst.stopped or inst.phase == "starting" or snap.memory.failure is not None:
        return "failed"
    isc = snap.iscs.get(inst.isc_name or "")
    if isc is None or (
        inst.gpu_uuids and instance_id(isc.spec.model_server_config, inst.gpu_uuids) != iid
    ):
        return "obsolete"
    if wedged and not _asleep(snap, inst):
        return "wedged"
    return None


def _asleep(snap: ServerSnapshot, inst: InstanceView) -> bool:
    if inst.phase is not None:
        return inst.phase == "sleeping"
    return snap.memory.sleeping is True


def _direct_sleep(snap: ServerSnapshot, provider: PodView, *, wedged: bool) -> list[a.Action]:
    if snap.memory.failure is not None:
        return [a.DeleteProvider(pod=ref(provider), reason="failed")]
    if provider.ip is None:
        # fma's change: the reference unbinds it as it is, and the vLLM it then starts serves
        # awake without a requester. A provider that never started holds nothing to keep.
        return [a.DeleteProvider(pod=ref(provider), reason="never started: nothing to keep")]
    if snap.memory.sleeping is True:
        return []
    if wedged:
        return [a.DeleteProvider(pod=ref(provider), reason="wedged: could not be put to sleep")]
    try:
        port = vllm_port(container(provider.raw))
    except ProviderBuildError:
        return [a.DeleteProvider(pod=ref(provider), reason="no vLLM port to put to sleep")]
    return [a.Sleep(ip=provider.ip, port=port)]


def _unbind_update(
    snap: ServerSnapshot, provider: PodView, records: dict[str, str | None]
) -> a.UnbindProvider:
    routing = parse_committed(provider.annotations.get(keys.ROUTING_METADATA))
    labels: dict[str, str | None] = {keys.SLEEPING: "true", keys.DUAL: None}
    annotations: dict[str, str | None] = {keys.REQUESTER: None}
    if routing is not None:
        labels.update(dict.fromkeys(routing.labels))
        annotations.update(dict.fromkeys(routing.annotations))
    annotations.update(dict.fromkeys(keys.BIND_ANNOTATIONS))
    if keys.NOMINAL in provider.annotations:
        stamp = datetime.fromtimestamp(snap.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations[keys.LAST_USED] = stamp
    annotations.update(records)
    patch = a.PodPatch(
        labels=labels, annotations=annotations, remove_finalizers=(keys.PROVIDER_FINALIZER,)
    )
    return a.UnbindProvider(pod=ref(provider), patch=patch)


def _release_requester(snap: ServerSnapshot) -> list[a.Action]:
    """Once unbound, the requester (if still there) loses its finalizer and binding labels."""
    req = snap.requester
    if req is None:
        return []
    labels = {k: None for k in (keys.DUAL, keys.INSTANCE_LABEL) if k in req.labels}
    has = keys.REQUESTER_FINALIZER in req.finalizers
    patch = a.PodPatch(labels=labels, remove_finalizers=(keys.REQUESTER_FINALIZER,) if has else ())
    return [a.UpdateRequester(pod=ref(req), patch=patch)] if patch else []
