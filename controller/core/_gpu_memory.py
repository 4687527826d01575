"""The GPU memory gate before a wake or an instance start (reference-differences B1).

The reference budgets GPU memory by counting sleepers; a sleeper may hold far more than
planned, and the wake then fails with CUDA OOM, forever. fma measures instead. The requester
reports used MiB per GPU (`accelerator-memory-usage`); the node says how much each GPU has (GPU
feature discovery's label `nvidia.com/gpu.memory`). The server needs its footprint free on each
assigned GPU: the rise of used memory measured the last time this instance woke (or started),
kept on its launcher Pod, else what vLLM itself will take, `--gpu-memory-utilization` (default
0.9) of the GPU. While an assigned GPU has less free than that, the least recently used sleeper
on it — in any launcher on the node, or a direct sleeper — is deleted, one per pass, and the GPU
measured again: what deleting a sleeper frees is not on the wire, so the next reading, not a
guess, says whether it now fits. Where a GPU's total is unknown the old rule stays: evict while
used memory is above `memory_threshold_mib`.

With nothing left to evict the wake goes ahead: if it still fails, the wake-failure handling
takes over. So when no sleeper shares the assigned GPUs there is nothing to measure for, and
the gate asks nothing. When the gate did read memory and lets a launcher instance go ahead, it
remembers that reading (`Remember(what="measure-from")`): the rise above it once the instance
serves is its footprint, persisted at unbind (`_unbind`), for the next wake.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from contract import keys
from controller.core import _actions as a
from controller.core._memory import (
    FootprintKind,
    instance_last_used,
    recorded_footprints,
    recorded_last_used,
)
from controller.core._snapshot import ServerSnapshot, admin_port, cuda_devices, ref
from controller.core._views import InstanceView, LauncherView, PodView

GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
"""GPU feature discovery's Node label: memory of one GPU of the node, MiB (not an fma key)."""
UTILIZATION_FLAG = "--gpu-memory-utilization"


@dataclass(frozen=True, slots=True)
class Need:
    """What the waking or starting server needs free on each of its GPUs."""

    recorded_mib: int | None = None
    """Measured when it last woke or started; None: never measured."""
    utilization: float = 0.9
    """Its `--gpu-memory-utilization`: the estimate (times the GPU's total) without a record."""
    kind: FootprintKind | None = None
    """`start` or `wake` for a launcher instance, whose footprint is then measured; None for a
    direct provider (nowhere to keep a measurement across its unbind)."""

    def mib(self, total: int) -> int:
        """MiB needed free on a GPU of `total` MiB."""
        if self.recorded_mib is not None:
            return self.recorded_mib
        return math.ceil(self.utilization * total)


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate's verdict: `wait` (query, evict; decide again) or go ahead after `go`."""

    wait: list[a.Action] = field(default_factory=list)
    go: list[a.Action] = field(default_factory=list)


def instance_need(
    snap: ServerSnapshot, launcher: LauncherView, iid: str, options: str, kind: FootprintKind
) -> Need:
    """The need of instance `iid` of `launcher` for a wake or a start.

    A wake needs what its last wake took (the sleeper already holds its sleeping share); failing
    that, what its start took, which is more than enough. A start needs what the last start of
    this instance ID (same ISC, same GPUs) took. Else the estimate from its options.
    """
    recorded = recorded_footprints(launcher.pod.annotations).get(iid, {})
    mib = recorded.get("wake", recorded.get("start")) if kind == "wake" else recorded.get("start")
    return Need(mib, utilization(options, snap.settings.gpu_memory_utilization), kind)


def utilization(options: str | Sequence[str], default: float) -> float:
    """`--gpu-memory-utilization` from vLLM options (a string or argv), else `default`."""
    if isinstance(options, str):
        try:
            words = shlex.split(options)
        except ValueError:
            words = options.split()
    else:
        words = list(options)
    value: str | None = None
    for i, word in enumerate(words):
        if word == UTILIZATION_FLAG and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith(UTILIZATION_FLAG + "="):
            value = word.partition("=")[2]
    try:
        share = float(value) if value is not None else default
    except ValueError:
        return default
    return share if 0 < share <= 1 else default


def gpu_totals(snap: ServerSnapshot) -> int | None:
    """MiB of one GPU of the requester's node: its label, else the setting, else unknown."""
    label = (snap.node.labels if snap.node is not None else {}).get(GPU_MEMORY_LABEL, "")
    if label.isdigit() and int(label) > 0:
        return int(label)
    return snap.settings.gpu_memory_total_mib


def memory_gate(
    snap: ServerSnapshot,
    *,
    gpus: Sequence[str],
    need: Need | None = None,
    keep_instance: str | None = None,
    gpu_indices: dict[str, int] | None = None,
) -> Gate:
    """What to do before waking or starting a server on `gpus` (see the module docstring)."""
    settings, memory, req = snap.settings, snap.memory, snap.requester
    if not settings.memory_check or req is None or req.ip is None:
        return Gate()
    if not _evictions(snap, set(gpus), keep_instance, gpu_indices):
        return Gate()  # nothing could be evicted, whatever the reading: the wake goes ahead anyway
    usage, taken = memory.memory_usage, memory.memory_usage_at
    stale = (
        usage is None
        or taken is None
        or snap.now - taken > settings.memory_usage_max_age
        or (memory.last_eviction_at is not None and taken <= memory.last_eviction_at)
    )
    if stale:
        return Gate(wait=[a.QueryMemoryUsage(ip=req.ip, port=admin_port(req))])
    assert usage is not None
    short = _short(snap, gpus, usage, need)
    evict: list[a.Action] = []
    if short and gpu_indices is not None:
        evict = _evict_direct(snap, {gpu_indices[u] for u in short if u in gpu_indices})
    elif short:
        evict = _evict_instance(snap, set(short), keep_instance)
    if evict:
        return Gate(wait=evict)
    if need is None or need.kind is None:
        return Gate()
    return Gate(go=[a.Remember(what="measure-from", message=need.kind)])


def _short(
    snap: ServerSnapshot, gpus: Sequence[str], usage: Mapping[str, int], need: Need | None
) -> list[str]:
    """The assigned GPUs where the server does not fit now."""
    total = gpu_totals(snap)
    if need is None or total is None:
        threshold = snap.settings.memory_threshold_mib
        return [u for u in gpus if usage.get(u, 0) > threshold]
    return [u for u in gpus if total - usage.get(u, 0) < need.mib(total)]


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
    """The least recently used sleeper on a `full` GPU, across the node's launchers; equal
    times go by instance ID, so the choice is the same in every run (B2)."""
    candidates: list[tuple[float, str, LauncherView, InstanceView]] = []
    for launcher in snap.launchers:
        if launcher.pod.ip is None or launcher.pod.deleting:
            continue
        recorded = recorded_last_used(launcher.pod.annotations)
        for inst in _sleepers(launcher):
            if inst.id != keep and full & set(inst.gpu_uuids):
                used = instance_last_used(recorded, inst)
                candidates.append((used, inst.id, launcher, inst))
    if not candidates:
        return []
    _, _, launcher, victim = min(candidates, key=lambda c: (c[0], c[1], c[2].name))
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
