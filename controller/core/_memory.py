"""Per-server memory: what the controller learned by acting, kept between decisions.

Everything here can be lost (controller restart) without harm: GPUs are re-queried, readiness
is compared with the requester container before any relay, timers restart. The I/O layer keeps
one `ServerMemory` per requester UID and updates it only through `record_success` and
`record_failure`, so what a result means stays in the pure core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from controller.core import _actions as a


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
            return replace(memory, memory_usage=usage, memory_usage_at=now)
        case a.QuerySleeping():
            return replace(memory, sleeping=bool(result))
        case a.CreateLauncher() | a.CreateDirectProvider():
            return replace(memory, path="cold", instance_created_at=now)
        case a.CreateInstance():
            path = memory.path if memory.path == "cold" else "warm"
            return replace(
                memory,
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
            return replace(memory, sleeping=False, wake_failures=0, last_wake_error=None)
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
            # Not reported (an older requester stub, no nvidia-smi): decide without it.
            return replace(memory, memory_usage={}, memory_usage_at=now)
        case a.Wake():
            return replace(memory, wake_failures=memory.wake_failures + 1, last_wake_error=error)
        case a.Sleep():
            return replace(memory, sleep_failures=memory.sleep_failures + 1)
        case a.QueryLogTail():
            return replace(memory, log_tail="")
        case a.ConfigureProxy():
            return replace(memory, proxied=None)
    return memory


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
    """Used memory per assigned GPU above which sleepers there are evicted before a wake."""
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
    instance_list_grace: float = 10.0
    """After a successful PUT, how long an instance may still be missing from the launcher's
    list before it counts as lost (the stream may lag the PUT's reply)."""
    starting_status_after: float = 5.0
    """A requester still unscheduled or without an IP this long after its creation gets that
    in its status; sooner is the normal course of a start and not worth two Pod writes."""
