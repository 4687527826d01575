"""The GPU memory gate before a wake or an instance start (reference-differences B1).

The reference budgets GPU memory by counting sleepers; a sleeper may hold far more than
planned, and the wake then fails with CUDA OOM, forever. fma measures instead: the requester
reports used MiB per GPU (`accelerator-memory-usage`); while an assigned GPU is above the
threshold, the least recently used sleeper on it — in any launcher on the node, or a direct
sleeper — is deleted, one at a time, re-measuring after each. With nothing left to evict the
wake goes ahead: if it still fails, the wake-failure handling takes over. So when no sleeper
shares the assigned GPUs there is nothing to measure for, and the gate asks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract import keys
from controller.core import _actions as a
from controller.core._snapshot import ServerSnapshot, admin_port, cuda_devices, ref
from controller.core._views import InstanceView, LauncherView, PodView


def memory_gate(
    snap: ServerSnapshot,
    *,
    gpus: Sequence[str],
    keep_instance: str | None = None,
    gpu_indices: dict[str, int] | None = None,
) -> list[a.Action]:
    """Actions to run before waking or starting a server on `gpus`; empty means go ahead."""
    settings, memory, req = snap.settings, snap.memory, snap.requester
    if not settings.memory_check or req is None or req.ip is None:
        return []
    if not _evictions(snap, set(gpus), keep_instance, gpu_indices):
        return []  # nothing could be evicted, whatever the reading: the wake goes ahead anyway
    usage, taken = memory.memory_usage, memory.memory_usage_at
    stale = (
        usage is None
        or taken is None
        or snap.now - taken > settings.memory_usage_max_age
        or (memory.last_eviction_at is not None and taken <= memory.last_eviction_at)
    )
    if stale:
        return [a.QueryMemoryUsage(ip=req.ip, port=admin_port(req))]
    assert usage is not None
    full = [u for u in gpus if usage.get(u, 0) > settings.memory_threshold_mib]
    if not full:
        return []
    if gpu_indices is not None:
        return _evict_direct(snap, {gpu_indices[u] for u in full if u in gpu_indices})
    return _evict_instance(snap, set(full), keep_instance)


def _evictions(
    snap: ServerSnapshot, gpus: set[str], keep: str | None, gpu_indices: dict[str, int] | None
) -> list[a.Action]:
    """What the gate would evict if every assigned GPU were full (the first candidate)."""
    if gpu_indices is not None:
        return _evict_direct(snap, {gpu_indices[u] for u in gpus if u in gpu_indices})
    return _evict_instance(snap, gpus, keep)


def _sleepers(launcher: LauncherView) -> list[InstanceView]:
    """Instances of a launcher that sleep: all but its bound one, and never a starting one."""
    bound_id = launcher.pod.annotations.get(keys.INSTANCE_ID)
    return [
        inst
        for inst in launcher.instances or ()
        if not inst.stopped
        and inst.id != bound_id
        and (inst.phase == "sleeping" or (inst.phase is None and launcher.pod.bound_to is None))
    ]


def _evict_instance(snap: ServerSnapshot, full: set[str], keep: str | None) -> list[a.Action]:
    candidates: list[tuple[float, str, LauncherView, InstanceView]] = []
    for launcher in snap.launchers:
        if launcher.pod.ip is None or launcher.pod.deleting:
            continue
        for inst in _sleepers(launcher):
            if inst.id != keep and full & set(inst.gpu_uuids):
                used = inst.last_used or inst.created_at or 0.0
                candidates.append((used, inst.id, launcher, inst))
    if not candidates:
        return []
    _, _, launcher, victim = min(candidates, key=lambda c: (c[0], c[1]))
    assert launcher.pod.ip is not None
    return [
        a.DeleteInstance(
            launcher=ref(launcher.pod), ip=launcher.pod.ip, instance_id=victim.id, reason="evict"
        )
    ]


def provider_age(pod: PodView) -> tuple[float, str]:
    """Recency of a direct sleeper: `last-used` annotation, else managedFields, else creation."""
    from controller.core._views import parse_time

    used = parse_time(pod.annotations.get(keys.LAST_USED))
    return (used or pod.managed_at or pod.created_at, pod.name)


def _evict_direct(snap: ServerSnapshot, indices: set[int]) -> list[a.Action]:
    sleepers = [
        p
        for p in snap.direct_providers
        if p.bound_to is None and not p.deleting and indices & set(cuda_devices(p))
    ]
    if not sleepers:
        return []
    victim = min(sleepers, key=provider_age)
    return [a.DeleteProvider(pod=ref(victim), reason="evict")]
