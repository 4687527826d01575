"""Plain snapshot types the I/O layer fills in: Pods, Nodes, launcher instances.

The decision functions read only these (and the CR models from `crds`), never a client. A view
is built from the Pod JSON the informer holds (`pod_view`), so the I/O layer does not have to
know which fields the decisions need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract import keys, objects
from contract.launcher import Phase


def parse_time(value: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PodView:
    """What the decisions need to know about one Pod."""

    name: str
    uid: str
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    finalizers: tuple[str, ...] = ()
    deleting: bool = False
    node_name: str | None = None
    """`spec.nodeName` (where the scheduler put it)."""
    pinned_node: str | None = None
    """`spec.nodeSelector["kubernetes.io/hostname"]` (how providers are pinned)."""
    ip: str | None = None
    phase: str = "Pending"
    ready: bool = False
    created_at: float = 0.0
    scheduled_at: float | None = None
    server_running: bool = False
    """Container `inference-server` is running."""
    server_ready: bool = False
    server_started_at: float | None = None
    restarts: int = 0
    managed_at: float | None = None
    """Time of the `managedFields` entry of manager `dual-pods-controller`."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def bound_to(self) -> tuple[str, str] | None:
        """(requester UID, requester name) if this provider is bound (§1.3)."""
        value = self.annotations.get(keys.REQUESTER)
        parts = value.split(" ") if value else []
        return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None

    @property
    def node(self) -> str | None:
        """The node a provider is pinned to, else where it is scheduled."""
        return self.pinned_node or self.node_name


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """Build a PodView from a Pod as JSON (as the informer's cache holds it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    server: dict[str, Any] = next(
        (
            s
            for s in status.get("containerStatuses") or []
            if s.get("name") == objects.INFERENCE_SERVER
        ),
        {},
    )
    running = (server.get("state") or {}).get("running")
    managed = [
        parse_time(m.get("time"))
        for m in meta.get("managedFields") or []
        if m.get("manager") == objects.CONTROLLER_NAME
    ]
    scheduled = conditions.get("PodScheduled") or {}
    return PodView(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        finalizers=tuple(meta.get("finalizers") or ()),
        deleting=bool(meta.get("deletionTimestamp")),
        node_name=spec.get("nodeName") or None,
        pinned_node=(spec.get("nodeSelector") or {}).get(keys.HOSTNAME),
        ip=status.get("podIP") or None,
        phase=status.get("phase") or "Pending",
        ready=(conditions.get("Ready") or {}).get("status") == "True",
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        scheduled_at=parse_time(scheduled.get("lastTransitionTime"))
        if scheduled.get("status") == "True"
        else None,
        server_running=running is not None,
        server_ready=bool(server.get("ready")),
        server_started_at=parse_time((running or {}).get("startedAt")),
        restarts=sum(
            int(s.get("restartCount") or 0) for s in status.get("containerStatuses") or []
        ),
        managed_at=max((t for t in managed if t is not None), default=None),
        raw=pod,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """A Node: name, labels, allocatable resources, and whether it takes new Pods."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    allocatable: Mapping[str, str | int] = field(default_factory=dict)
    unschedulable: bool = False
    deleting: bool = False


def node_view(node: Mapping[str, Any]) -> NodeView:
    """Build a NodeView from a Node as JSON."""
    meta = node.get("metadata") or {}
    return NodeView(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        allocatable=dict((node.get("status") or {}).get("allocatable") or {}),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceView:
    """One vLLM instance as the launcher reports it (list or watch stream).

    `phase` is the launcher's readiness field (fma launchers); None for a launcher that only
    reports `status` running/stopped, in which case sleep state comes from `/is_sleeping`.
    """

    id: str
    running: bool = True
    phase: Phase | None = None
    isc_name: str | None = None
    port: int | None = None
    """From the `inference-port` annotation; None if missing or not a number."""
    gpu_uuids: tuple[str, ...] = ()
    created_at: float | None = None
    phase_since: float | None = None
    last_used: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    """Why it stopped or failed, e.g. the tail of its log."""
    swap_key: str | None = None
    """`contract.launcher.swap_key` of the options it was created with: a sleeper whose key is
    the desired one may take the desired weights in place (issue 16)."""

    @property
    def stopped(self) -> bool:
        """The child process is gone (`status: stopped`) or the launcher says it failed."""
        return not self.running or self.phase == "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class LauncherView:
    """A launcher Pod with its instances; `instances` is None until the stream is synced."""

    pod: PodView
    instances: tuple[InstanceView, ...] | None = None

    @property
    def name(self) -> str:
        """The Pod's name."""
        return self.pod.name

    def instance(self, instance_id: str) -> InstanceView | None:
        """The instance with this ID, if listed."""
        return next((i for i in self.instances or () if i.id == instance_id), None)
