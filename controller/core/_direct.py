"""Direct mode without a provider (contracts §8.4): reuse a sleeper or create a provider.

fma's changes: terminating sleepers are neither reused nor counted against the per-GPU budget
(a new provider waits until they are gone, so their memory is free), and sleeper age prefers
the `last-used` annotation written at unbind (reference-differences B2, F).
"""

from __future__ import annotations

from collections.abc import Mapping

from contract import keys
from controller.core import _actions as a
from controller.core._direct_pod import ProviderBuildError, build_direct_provider
from controller.core._gpu_memory import provider_age
from controller.core._snapshot import (
    ServerSnapshot,
    cuda_devices,
    ref,
    status_only,
)


def gpu_indices(
    gpu_map: Mapping[str, Mapping[str, int]] | None, node: str, gpus: tuple[str, ...]
) -> list[int] | str:
    """GPU indices for the requester's UUIDs from `gpu-map`, or the status error."""
    if gpu_map is None:
        return "GPU map ConfigMap gpu-map is not available"
    entry = gpu_map.get(node, {})
    indices = []
    for uuid in gpus:
        if uuid in entry:
            indices.append(entry[uuid])
            continue
        other = next((name for name, m in sorted(gpu_map.items()) if uuid in m), None)
        return (
            f"UUID {uuid} is on Node {other}, not {node}" if other else f"UUID {uuid} is not known"
        )
    return indices


def decide_unbound_direct(snap: ServerSnapshot, gpus: tuple[str, ...]) -> list[a.Action]:
    """Bind the sleeper with the same nominal hash, or make room and create a provider."""
    req = snap.requester
    assert req is not None and req.node_name is not None
    node = req.node_name
    indices = gpu_indices(snap.gpu_map, node, gpus)
    if isinstance(indices, str):
        return status_only(snap, [indices])
    try:
        built = build_direct_provider(req.raw, node=node, gpu_uuids=gpus, gpu_indices=indices)
    except ProviderBuildError as error:
        return status_only(snap, [str(error)])
    sleepers = [
        p
        for p in snap.direct_providers
        if p.annotations.get(keys.NOMINAL) == built.nominal
        and p.bound_to is None
        and not p.deleting
    ]
    if sleepers:
        chosen = max(sleepers, key=provider_age)  # the freshest of identical sleepers
        # `sleeping: "false"` with the bind, as on a provider created bound (§4.1): in direct
        # mode the label says the provider is bound to serve, so the wake that follows needs
        # no second write of the provider.
        patch = a.PodPatch(
            labels={keys.DUAL: req.name, keys.SLEEPING: "false"},
            annotations={
                keys.REQUESTER: f"{req.uid} {req.name}",
                keys.ACCELERATORS: ",".join(gpus),
            },
            add_finalizers=(keys.PROVIDER_FINALIZER,),
        )
        # The requester's side is written by the bound path, in one Update (as in `_choose`).
        return [a.BindProvider(pod=ref(chosen), patch=patch)]
    if room := _make_room(snap, node, indices):
        return room
    # The requester is written once, by the next pass's bound path, when the provider's name
    # (generated) is known: status, accelerators, `dual` label and finalizer in one Update.
    return [a.CreateDirectProvider(pod=built.pod)]


def _make_room(snap: ServerSnapshot, node: str, indices: list[int]) -> list[a.Action]:
    """Delete the oldest sleepers beyond the per-GPU limit; wait for terminating ones."""
    deletes: dict[str, a.Action] = {}
    waiting = False
    for index in indices:
        on_gpu = [
            p
            for p in snap.direct_providers
            if p.bound_to is None and p.node == node and index in cuda_devices(p)
        ]
        waiting |= any(p.deleting for p in on_gpu)
        live = sorted((p for p in on_gpu if not p.deleting), key=provider_age)
        for victim in live[: max(len(live) - snap.settings.sleeper_limit, 0)]:
            reason = f"sleeper limit {snap.settings.sleeper_limit} on GPU {index} of {node}"
            deletes[victim.uid] = a.DeleteProvider(pod=ref(victim), reason=reason)
    if deletes:
        return list(deletes.values())
    if waiting:
        return [a.Requeue(after=snap.settings.retry_after, reason="sleepers terminating")]
    return []
