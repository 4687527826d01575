"""The actions a decision returns; the I/O layer performs them in order.

Contract with the executor: run the actions of one decision in order and stop at the first
failure (then requeue the item with backoff); report each success or failure to
`record_success`/`record_failure` (module `_memory`), which is how results such as the GPU list
or the last relayed readiness reach the next decision. Kubernetes writes carry preconditions
(UID and resourceVersion of `PodRef`); a conflict is a failure like any other, and the next
decision starts from fresh caches. When one decision writes the same Pod more than once, each
later write's resourceVersion precondition is the version the previous write returned (the
executor carries it forward). A 404 on `DeleteInstance` counts as success.

The executor runs the next decision for an item only once its caches reflect its own writes
(the created Pod is in the informer, the launcher's stream shows a created instance): a
decision made on a cache older than its own last write could create a second provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Path = Literal["hot", "warm", "cold", "swap"]
DeleteReason = Literal["stopped", "invalid", "reclaim", "evict", "obsolete", "failed", "wedged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PodRef:
    """A Pod and the preconditions of a write: UID always, resourceVersion when not empty."""

    name: str
    uid: str
    resource_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PodPatch:
    """Metadata changes of one Update: a value None removes a label or annotation."""

    labels: Mapping[str, str | None] = field(default_factory=dict)
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    add_finalizers: tuple[str, ...] = ()
    remove_finalizers: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.labels or self.annotations or self.add_finalizers or self.remove_finalizers
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """Base of all actions."""


# --- Kubernetes writes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePod(Action):
    """One Update of a Pod's metadata with preconditions."""

    pod: PodRef
    patch: PodPatch
    versioned: ClassVar[bool] = True
    """Conditional on the resourceVersion the decision saw (a provider's bind, unbind and
    labels: a claim must fail when anything changed). False: on the UID only, each change
    applied by key (labels, annotations, finalizers one by one), so writes of other fields in
    between (the kubelet's) do not make it fail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindProvider(UpdatePod):
    """Bind a provider: `requester` annotation, provider finalizer, `dual` label (+ §4.4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindProvider(UpdatePod):
    """Unbind a provider whose server sleeps (or is gone): §8.6 step 4."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateProvider(UpdatePod):
    """Routing labels/annotations and the `sleeping` label of a bound provider."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateRequester(UpdatePod):
    """Status annotation, `accelerators`, `dual`/`instance` labels and the requester finalizer.

    Not versioned: only this controller writes these keys, one pass per server at a time, while
    the kubelet writes the requester's status throughout; a terminating requester's status
    changed under about half the unbinds' finalizer removals (a 409 and a retry pass each)."""

    versioned: ClassVar[bool] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletePod(Action):
    """Delete a Pod; with `preconditions` the UID and resourceVersion must still match."""

    pod: PodRef
    preconditions: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRequester(DeletePod):
    """Delete the requester; its set makes a new one (and a new pairing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteProvider(DeletePod):
    """Delete a provider (direct sleeper over budget, provider in trouble, wedged)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatePod(Action):
    """Create a Pod (already bound when it is a provider)."""

    pod: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateLauncher(CreatePod):
    """Cold path: create a bound launcher from an LC."""

    lc_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateDirectProvider(CreatePod):
    """Direct mode: create the nominal provider, bound."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitEvent(Action):
    """A Kubernetes Event on a Pod."""

    pod: PodRef
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateInstance(Action):
    """`PUT http://<ip>:8001/v2/vllm/instances/<id>` with the committed VllmConfig."""

    launcher: PodRef
    ip: str
    instance_id: str
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapInstance(CreateInstance):
    """`POST http://<ip>:8001/v2/vllm/instances/<source_id>/swap` (issue 16): the sleeping
    `source_id` becomes `instance_id` with the config's weights; result `"swap"`.

    A `CreateInstance` by inheritance, because that is what it does for the requester: the
    bound instance exists and is awake afterwards, and the memory records it the same way. If
    the launcher refuses (not swap-compatible, a reference launcher without the path) or the
    swap fails (the launcher then deleted the sleeper), the executor falls back to warm within
    the same action: it deletes `source_id` if still there (it holds the desired port, so the
    warm path would delete it too) and PUTs the config; result `"warm"`, the cause in a
    Warning Event on the requester.
    """

    source_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteInstance(Action):
    """`DELETE http://<ip>:8001/v2/vllm/instances/<id>` (404 counts as success)."""

    launcher: PodRef
    ip: str
    instance_id: str
    reason: DeleteReason


@dataclass(frozen=True, slots=True, kw_only=True)
class Wake(Action):
    """`POST http://<ip>:<port>/wake_up` (instance or direct provider)."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep(Action):
    """`POST http://<ip>:<port>/sleep` (level 1)."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryAccelerators(Action):
    """`GET http://<requester ip>:<admin port>/v1/dual-pods/accelerators`; result: UUIDs.

    `poll_after`: the stub has only just started and may not listen yet, so a failed query is
    asked again after this many seconds instead of on the queue's backoff (0.2 s doubling:
    a stub up after 0.7 s would be asked at 1.4 s, most of a hot actuation).
    """

    ip: str
    port: int
    poll_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryMemoryUsage(Action):
    """`GET .../v1/dual-pods/accelerator-memory-usage`; result: {uuid: MiB}."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySleeping(Action):
    """`GET http://<ip>:<port>/is_sleeping`; result: bool (connection refused = failure)."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SpiWrite(Action):
    """A mutating call to the requester's SPI: it carries a control token for the Pod's UID."""

    ip: str
    port: int
    uid: str
    """The requester Pod's UID, the audience of the call's control token (contracts §14)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayReadiness(SpiWrite):
    """POST `/v1/become-ready` or `/v1/become-unready` to the requester's SPI."""

    ready: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayReady(RelayReadiness):
    """`POST /v1/become-ready`."""

    ready: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayUnready(RelayReadiness):
    """`POST /v1/become-unready`."""

    ready: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureProxy(SpiWrite):
    """`PUT /v1/proxy/config` on the requester's SPI: its serving ports forward to the server.

    Sent before every ready relay that the requester has not seen with this target (a new
    binding, or a stub that restarted and lost its configuration), so a Service never routes to
    a requester whose ports lead nowhere. The same target twice is answered 200 (idempotent).
    """

    address: str
    target_port: int
    restarts: int = 0
    """The requester's container restarts this is for: a restarted stub lost its config."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryLogTail(Action):
    """`GET .../instances/<id>/log` with a range over its end; result: the last lines as text.

    Taken once when a launcher instance fails, so that the failure's cause (vLLM's last lines)
    stays on the requester after the instance, and its log file, are deleted.
    """

    ip: str
    instance_id: str


# --- bookkeeping ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ObserveActuation(Action):
    """Observe `fma_actuation_seconds{path, instancesDeleted, isc_name}`.

    `seconds` runs from the requester container's start (`started_at`) to the decision; the
    executor measures to the reply of the ready relay instead when it knows that moment
    (`ServerMemory.relayed_at`), which is what the contract asks for (§8.5 step 10).
    """

    path: Path
    instances_deleted: int
    seconds: float
    isc_name: str
    started_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Remember(Action):
    """Record an observation in the server's memory (no I/O): see `_memory.record_success`."""

    what: Literal["failure", "unbind-started", "relayed", "instance-seen", "measure-from"]
    message: str = ""
    """`failure`: the message; `measure-from`: `start` or `wake`, what the footprint is of."""
    ready: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Requeue(Action):
    """Run the item again after `after` seconds (unless an event comes first)."""

    after: float
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetServer(Action):
    """Both Pods are gone: drop the server's memory and its `fma_duality` series."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueRequesters(Action):
    """Re-run the unbound requesters of a node (an unbound launcher changed)."""

    node: str
