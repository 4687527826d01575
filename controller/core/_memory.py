"""Per-server memory: what the controller learned by acting, kept between decisions.

Everything here can be lost (controller restart) without harm: GPUs are re-queried, readiness
is compared with the requester container before any relay, timers restart. The I/O layer keeps
one `ServerMemory` per requester UID and updates it only through `record_success` and
`record_failure`, so what a result means stays in the pure core.

Two things must not be lost, so they are kept on the launcher Pod instead (written in the
unbinding Update, which happens anyway, so no actuation costs an extra write): when each
instance was last used (reference-differences B2: eviction order must not change with a
restart) and how much GPU memory each instance took when it last started or woke (B1: the
memory gate sizes the next wake by it). `recorded_last_used`, `recorded_footprints` and
`merged_records` read and write them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from contract import keys
from controller.core import _actions as a
from controller.core._views import InstanceView

FootprintKind = Literal["start", "wake"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerMemory:
    """What one inference server's decisions remember."""

    gpu_uuids: tuple[str, ...] | None = None
    gpu_error: str | None = None
    path: a.Path | None = None
    """`cold` once a launcher/provider was created, `warm` once an instance was created."""
    instances_deleted: int = 0
    instance_known: bool = False
    """The bound instance was created or seen, so its absence means the launcher lost it."""
    instance_created_at: float | None = None
    sleeping: bool | None = None
    """Known sleep state of the bound server (from `/is_sleeping`, wake, sleep)."""
    memory_usage: Mapping[str, int] | None = None
    memory_usage_at: float | None = None
    last_eviction_at: float | None = None
    wake_failures: int = 0
    last_wake_error: str | None = None
    relayed_ready: bool | None = None
    relayed_at: float | None = None
    """When our `POST /v1/become-ready` was answered (not set by a mere `Remember`)."""
    actuation_observed: bool = False
    failure: str | None = None
    failed_at: float | None = None
    unbind_started_at: float | None = None
    sleep_failures: int = 0
    proxied: tuple[str, int, int] | None = None
    """(address, port, requester restart count) of the last proxy configuration answered: a
    different target or a restarted stub container needs a new `ConfigureProxy`."""
    log_tail: str | None = None
    """The failed instance's last log lines ("" when they could not be read)."""
    refusal: str | None = None
    """Why the launcher refused to create the bound instance (a GPU UUID it does not know, options
    it cannot use): repeating the PUT cannot help, so the next decision reports it as the
    server's failure."""
    footprint_base: Mapping[str, int] | None = None
    """The memory reading the gate went ahead on, right before a wake or an instance start: the
    footprint is the rise above it once the server serves (B1)."""
    footprint_kind: FootprintKind | None = None
    footprint_since: float | None = None
    """When that wake or start succeeded: a reading taken after it closes the measurement."""
    footprint: tuple[FootprintKind, int] | None = None
    """The bound instance's measured footprint (MiB per GPU), persisted at unbind."""


def record_success(  # noqa: PLR0911, PLR0912 - one case per action type
    memory: ServerMemory, action: a.Action, *, now: float, result: object = None
) -> ServerMemory:
    """The memory after `action` succeeded (`result` is a query's answer)."""
    replace = dataclasses.replace
    match action:
        case a.QueryAccelerators():
            uuids = tuple(str(u) for u in result) if isinstance(result, list | tuple) else ()
            return replace(memory, gpu_uuids=uuids, gpu_error=None)
        case a.QueryMemoryUsage():
            usage = _usage(result)
            return _measured(replace(memory, memory_usage=usage, memory_usage_at=now), now)
        case a.QuerySleeping():
            return replace(memory, sleeping=bool(result))
        case a.CreateLauncher() | a.CreateDirectProvider():
            return replace(memory, path="cold", instance_created_at=now)
        case a.CreateInstance():
            path: a.Path = memory.path if memory.path == "cold" else "warm"
            if isinstance(action, a.SwapInstance) and result == "swap":
                path = "swap"
            return replace(
                memory,
                footprint_since=now if memory.footprint_base is not None else None,
                path=path,
                instance_known=True,
                instance_created_at=now,
                sleeping=False,
                failure=None,
                failed_at=None,
                log_tail=None,
                refusal=None,
            )
        case a.DeleteInstance(reason="reclaim"):
            return replace(memory, instances_deleted=memory.instances_deleted + 1)
        case a.DeleteInstance(reason="evict"):
            return replace(
                memory, instances_deleted=memory.instances_deleted + 1, last_eviction_at=now
            )
        case a.DeleteInstance(reason="failed" | "wedged" | "obsolete"):
            return replace(memory, instance_known=False, sleeping=None)
        case a.DeleteProvider(reason="evict"):
            return replace(memory, last_eviction_at=now)
        case a.Wake():
            since = now if memory.footprint_base is not None else None
            return replace(
                memory, sleeping=False, wake_failures=0, last_wake_error=None, footprint_since=since
            )
        case a.Sleep():
            return replace(memory, sleeping=True, sleep_failures=0)
        case a.ConfigureProxy(address=address, target_port=port, restarts=restarts):
            return replace(memory, proxied=(address, port, restarts))
        case a.QueryLogTail():
            return replace(memory, log_tail=result if isinstance(result, str) else "")
        case a.RelayReadiness(ready=ready):
            return replace(memory, relayed_ready=ready, relayed_at=now if ready else None)
        case a.ObserveActuation():
            return replace(memory, actuation_observed=True)
        case a.Remember(what="failure", message=message):
            return replace(memory, failure=message, failed_at=memory.failed_at or now)
        case a.Remember(what="unbind-started"):
            return replace(memory, unbind_started_at=memory.unbind_started_at or now)
        case a.Remember(what="instance-seen"):
            return replace(memory, instance_known=True)
        case a.Remember(what="measure-from", message="start" | "wake" as kind):
            return replace(
                memory,
                footprint_base=memory.memory_usage,
                footprint_kind=kind,
                footprint_since=None,
            )
        case a.Remember(what="relayed", ready=ready):
            return replace(memory, relayed_ready=ready)
    return memory


def record_failure(  # noqa: PLR0911 - one case per action type
    memory: ServerMemory, action: a.Action, *, now: float, error: str, refused: bool = False
) -> ServerMemory:
    """The memory after `action` failed with `error`.

    `refused`: the peer answered that the request cannot work as written, so a retry of the
    same call cannot succeed (otherwise a failure is taken as transient and the pass retried).
    """
    replace = dataclasses.replace
    match action:
        case a.CreateInstance() if refused:
            return replace(memory, refusal=error)
        case a.QueryAccelerators():
            return replace(memory, gpu_error=error)
        case a.QueryMemoryUsage():
            # Not reported (an older requester stub, no nvidia-smi): decide without it, and
            # give up a footprint measurement that needed it.
            return replace(
                memory,
                memory_usage={},
                memory_usage_at=now,
                footprint_base=None,
                footprint_kind=None,
                footprint_since=None,
            )
        case a.Wake():
            return replace(memory, wake_failures=memory.wake_failures + 1, last_wake_error=error)
        case a.Sleep():
            return replace(memory, sleep_failures=memory.sleep_failures + 1)
        case a.QueryLogTail():
            return replace(memory, log_tail="")
        case a.ConfigureProxy():
            return replace(memory, proxied=None)
    return memory


def _measured(memory: ServerMemory, now: float) -> ServerMemory:
    """A reading after a measured wake or start: the footprint is its largest per-GPU rise.

    vLLM sizes an instance per GPU (its weights shard and KV cache are alike on each), so one
    number per instance is kept: the largest rise over its GPUs, never below 0.
    """
    base, kind, since = memory.footprint_base, memory.footprint_kind, memory.footprint_since
    if base is None or kind is None or since is None or now <= since:
        return memory
    after = memory.memory_usage or {}
    rises = [after[u] - used for u, used in base.items() if u in after]
    done = dataclasses.replace(
        memory, footprint_base=None, footprint_kind=None, footprint_since=None
    )
    if not rises:
        return done
    return dataclasses.replace(done, footprint=(kind, max(*rises, 0)))


def _usage(result: object) -> dict[str, int]:
    if not isinstance(result, Mapping):
        return {}
    return {str(k): int(v) for k, v in result.items() if isinstance(v, int | float)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Tunables of the decisions (seconds, MiB). Defaults are documented, not guessed at runtime."""

    sleeper_limit: int = 2
    """Direct mode: sleeping providers kept per GPU (reference chart default 2)."""
    memory_check: bool = True
    """Measure GPU memory through the requester before a wake or create (reference-differences
    B1)."""
    memory_threshold_mib: int = 8192
    """Only where a GPU's total memory is unknown (no node label `nvidia.com/gpu.memory`, no
    `gpu_memory_total_mib`): used memory per assigned GPU above which sleepers there are evicted
    before a wake. Otherwise the gate compares the instance's footprint with free memory."""
    gpu_memory_total_mib: int | None = None
    """Memory of one GPU where the node does not say (GPU feature discovery's label
    `nvidia.com/gpu.memory` wins)."""
    gpu_memory_utilization: float = 0.9
    """vLLM's default `--gpu-memory-utilization`: an instance never measured and whose options do
    not set it is expected to take this share of each of its GPUs."""
    memory_usage_max_age: float = 2.0
    """A memory reading older than this is re-taken before acting on it."""
    instance_start_timeout: float = 600.0
    """An instance or direct provider not ready this long after creation has failed (A1)."""
    launcher_start_timeout: float = 900.0
    """A bound launcher not Ready this long after creation has failed (A1)."""
    failed_requester_delete_after: float = 30.0
    """After a failure is reported in the status, the requester is deleted this much later."""
    sleep_deadline: float = 60.0
    """Unbind: a server that cannot be put to sleep this long is deleted instead (A3)."""
    max_wake_failures: int = 3
    """A sleeper whose wake failed this often is deleted; a fresh instance is made (B1)."""
    stuck_launcher_after: float = 450.0
    """A not-Ready launcher older than this is not waited for when choosing (A5)."""
    retry_after: float = 5.0
    """Fixed re-check delay for polls such as `/is_sleeping` of a starting direct provider."""
    stub_poll_interval: float = 0.1
    """How often the requester stub's GPU query is retried while the stub may still be
    starting (a refused connection costs the stub nothing)."""
    stub_start_window: float = 20.0
    """How long after the requester container's start it counts as starting; later, a failing
    GPU query retries on the backoff."""
    instance_list_grace: float = 10.0
    """After a successful PUT, how long an instance may still be missing from the launcher's
    list before it counts as lost (the stream may lag the PUT's reply)."""
    starting_status_after: float = 5.0
    """A requester still unscheduled or without an IP this long after its creation gets that
    in its status; sooner is the normal course of a start and not worth two Pod writes."""


# --- Records kept on launcher Pods (B1, B2) ----------------------------------------------------


def _json_object(text: str | None) -> dict[str, object]:
    """The annotation's JSON object, or {} when absent or unreadable (a hand edit must not stop
    the controller: the records only order evictions and size the memory gate)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def recorded_last_used(annotations: Mapping[str, str]) -> dict[str, float]:
    """Instance ID → when it was last unbound (unix seconds), from a launcher's annotation."""
    raw = _json_object(annotations.get(keys.INSTANCES_LAST_USED))
    return {
        k: float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def recorded_footprints(annotations: Mapping[str, str]) -> dict[str, dict[FootprintKind, int]]:
    """Instance ID → {`start`/`wake`: MiB per GPU}, from a launcher's annotation."""
    out: dict[str, dict[FootprintKind, int]] = {}
    for iid, entry in _json_object(annotations.get(keys.INSTANCE_FOOTPRINTS)).items():
        if not isinstance(entry, dict):
            continue
        kinds: dict[FootprintKind, int] = {}
        for kind in ("start", "wake"):
            value = entry.get(kind)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                kinds[kind] = value
        if kinds:
            out[iid] = kinds
    return out


def merged_records(
    annotations: Mapping[str, str],
    *,
    keep: Collection[str] | None,
    used: tuple[str, float] | None = None,
    footprint: tuple[str, FootprintKind, int] | None = None,
) -> dict[str, str | None]:
    """The record annotations after one unbind, as patch entries (only those that change).

    `keep`: the instance IDs the launcher still holds (None: unknown, keep every entry), so the
    records never outgrow `maxInstances`; `used`: (instance ID, unix seconds) of the instance
    just put to sleep; `footprint`: (instance ID, kind, MiB) measured while it served. Seconds
    are whole: sub-second order is not worth the bytes, and equal times fall back to the ID.
    """
    last = recorded_last_used(annotations)
    feet = recorded_footprints(annotations)
    if keep is not None:
        last = {k: v for k, v in last.items() if k in keep}
        feet = {k: v for k, v in feet.items() if k in keep}
    if used is not None:
        last[used[0]] = float(math.floor(used[1]))
    if footprint is not None:
        iid, kind, mib = footprint
        feet[iid] = {**feet.get(iid, {}), kind: mib}
    wanted = {
        keys.INSTANCES_LAST_USED: _compact({k: int(v) for k, v in sorted(last.items())}),
        keys.INSTANCE_FOOTPRINTS: _compact(
            {k: dict(sorted(v.items())) for k, v in sorted(feet.items())}
        ),
    }
    return {k: v for k, v in wanted.items() if annotations.get(k) != v}


def _compact(data: Mapping[str, object]) -> str | None:
    return json.dumps(data, separators=(",", ":")) if data else None


def instance_last_used(recorded: Mapping[str, float], inst: InstanceView) -> float:
    """An instance's recency for eviction: the launcher's record (it survives a restart, B2),
    else what this controller saw (its last sleep, else when it first saw it)."""
    return recorded.get(inst.id) or inst.last_used or inst.created_at or 0.0
