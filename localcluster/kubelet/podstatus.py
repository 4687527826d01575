"""A Pod's status computed from its containers' states: phase, conditions, containerStatuses.

Ports of the kubelet's `getPhase`, `GeneratePodInitializedCondition`,
`GenerateContainersReadyCondition` and `GeneratePodReadyCondition` (v1.20), with their reasons
and messages. The result is written as a strategic merge patch of the status subresource: list
items merge by key (conditions by `type`, container statuses by `name`), so conditions owned by
others (PodScheduled, readiness gates) are kept, and an explicit null removes a stale key (a
container's `state.running` when it becomes `state.terminated`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcluster.kubelet.podspec import Json, PodView

OUR_CONDITIONS = ("Initialized", "Ready", "ContainersReady")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str | None = None


@dataclass(frozen=True)
class Running:
    started_at: str


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    finished_at: str
    started_at: str | None = None
    message: str | None = None
    container_id: str | None = None
    signal: int | None = None


State = Waiting | Running | Terminated


@dataclass
class ContainerStatus:
    """One container's status as the runtime sees it; mutated by its supervisor."""

    name: str
    image: str
    init: bool = False
    image_id: str = ""
    container_id: str | None = None
    state: State = field(default_factory=lambda: Waiting("ContainerCreating"))
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False

    def to_api(self) -> dict[str, Any]:
        """The JSON of `containerStatuses[]`, with nulls for the state kinds not in use."""
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "containerID": self.container_id,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "state": _state_json(self.state),
            "lastState": _state_json(self.last_state),
        }
        if not self.init:
            status["started"] = self.started
        return status


def _state_json(state: State | None) -> dict[str, Any]:
    out: dict[str, Any] = {"waiting": None, "running": None, "terminated": None}
    if isinstance(state, Waiting):
        out["waiting"] = {"reason": state.reason, "message": state.message}
    elif isinstance(state, Running):
        out["running"] = {"startedAt": state.started_at}
    elif isinstance(state, Terminated):
        out["terminated"] = {
            "exitCode": state.exit_code,
            "signal": state.signal,
            "reason": state.reason,
            "message": state.message,
            "startedAt": state.started_at,
            "finishedAt": state.finished_at,
            "containerID": state.container_id,
        }
    return out


def _init_counts(pod: PodView, init: Sequence[ContainerStatus]) -> tuple[int, int]:
    """(pending, failed) init containers, as getPhase counts them."""
    pending = failed = 0
    for status in init:
        if isinstance(status.state, Terminated):
            failed += status.state.exit_code != 0
        elif isinstance(status.state, Waiting) and status.last_state is not None:
            failed += status.last_state.exit_code != 0
        else:
            pending += 1
    return pending + len(pod.init_containers) - len(init), failed


@dataclass
class _AppCounts:
    running: int = 0
    waiting: int = 0
    stopped: int = 0
    succeeded: int = 0
    unknown: int = 0


def _app_counts(pod: PodView, apps: Sequence[ContainerStatus]) -> _AppCounts:
    counts = _AppCounts(unknown=len(pod.containers) - len(apps))
    for status in apps:
        if isinstance(status.state, Running):
            counts.running += 1
        elif isinstance(status.state, Terminated):
            counts.stopped += 1
            counts.succeeded += status.state.exit_code == 0
        elif status.last_state is not None:
            counts.stopped += 1
        else:
            counts.waiting += 1
    return counts


def compute_phase(
    pod: PodView, init: Sequence[ContainerStatus], apps: Sequence[ContainerStatus]
) -> str:
    """The kubelet's getPhase."""
    pending_init, failed_init = _init_counts(pod, init)
    counts = _app_counts(pod, apps)
    if failed_init and pod.restart_policy == "Never":
        return "Failed"
    if pending_init or counts.waiting:
        return "Pending"
    if counts.running and not counts.unknown:
        return "Running"
    if counts.running or not counts.stopped or counts.unknown:
        return "Pending"
    return _all_stopped_phase(pod, counts)


def _all_stopped_phase(pod: PodView, counts: _AppCounts) -> str:
    """Every container has stopped: Always restarts them all; otherwise success decides."""
    if pod.restart_policy == "Always":
        return "Running"
    if counts.stopped == counts.succeeded:
        return "Succeeded"
    return "Failed" if pod.restart_policy == "Never" else "Running"


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _readiness(
    names: Sequence[str], statuses: Sequence[ContainerStatus], phase: str, unready_text: str
) -> tuple[bool, str | None, str | None]:
    """(ok, reason, message) shared by the Initialized and ContainersReady conditions."""
    by_name = {s.name: s for s in statuses}
    unknown = [n for n in names if n not in by_name]
    unready = [n for n in names if n in by_name and not by_name[n].ready]
    if phase == "Succeeded" and not unknown:
        return False, "PodCompleted", None
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with {unready_text} status: {_go_list(unready)}")
    if messages:
        return False, None, ", ".join(messages)
    return True, None, None


def compute_conditions(
    pod: PodView,
    init: Sequence[ContainerStatus],
    apps: Sequence[ContainerStatus],
    phase: str,
) -> dict[str, tuple[bool, str | None, str | None]]:
    """Our three conditions as (status, reason, message), by type."""
    if pod.init_containers:
        ok, reason, message = _readiness(
            [c.name for c in pod.init_containers], init, phase, "incomplete"
        )
        initialized = (
            (True, "PodCompleted", None)
            if reason == "PodCompleted"
            else (ok, None if ok else "ContainersNotInitialized", message)
        )
    else:
        initialized = (True, None, None)
    ok, reason, message = _readiness([c.name for c in pod.containers], apps, phase, "unready")
    containers_ready = (ok, None if ok else reason or "ContainersNotReady", message)
    return {
        "Initialized": initialized,
        "ContainersReady": containers_ready,
        "Ready": containers_ready if not ok else _gates(pod),
    }


def _gates(pod: PodView) -> tuple[bool, str | None, str | None]:
    conditions = {c.get("type"): c for c in pod.status.get("conditions") or ()}
    messages = []
    for gate in pod.readiness_gates:
        condition = conditions.get(gate)
        if condition is None:
            messages.append(
                f'corresponding condition of pod readiness gate "{gate}" does not exist.'
            )
        elif condition.get("status") != "True":
            messages.append(
                f'the status of pod readiness gate "{gate}" is not "True", '
                f"but {condition.get('status')}"
            )
    if messages:
        return False, "ReadinessGatesNotReady", ", ".join(messages)
    return True, None, None


@dataclass(frozen=True)
class PodFacts:
    """What the kubelet adds besides container states."""

    host_ip: str
    pod_ip: str | None
    start_time: str
    now: str
    admission_failure: tuple[str, str] | None = None  # (reason, message): phase Failed


def compute_status(
    pod: PodView,
    init: Sequence[ContainerStatus],
    apps: Sequence[ContainerStatus],
    facts: PodFacts,
) -> dict[str, Any]:
    """The status to write (nulls included for SMP), keeping transition times that still hold."""
    phase = compute_phase(pod, init, apps)
    reason = message = None
    if facts.admission_failure is not None:
        phase, (reason, message) = "Failed", facts.admission_failure
    elif pod.phase in ("Succeeded", "Failed"):
        phase = pod.phase  # terminal phases are final
    previous = {c.get("type"): c for c in pod.status.get("conditions") or ()}
    conditions = []
    for kind, (ok, cond_reason, cond_message) in compute_conditions(pod, init, apps, phase).items():
        value = "True" if ok else "False"
        old = previous.get(kind) or {}
        same = old.get("status") == value
        conditions.append(
            {
                "type": kind,
                "status": value,
                "reason": cond_reason,
                "message": cond_message,
                "lastProbeTime": None,
                "lastTransitionTime": old.get("lastTransitionTime") if same else facts.now,
            }
        )
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "hostIP": facts.host_ip,
        "startTime": facts.start_time,
        "conditions": conditions,
        "containerStatuses": [s.to_api() for s in apps],
    }
    if facts.pod_ip:
        status["podIP"] = facts.pod_ip
        status["podIPs"] = [{"ip": facts.pod_ip}]
    if pod.init_containers:
        status["initContainerStatuses"] = [s.to_api() for s in init]
    return status


def strip_nulls(value: Any) -> Any:
    """`value` without null map entries: what the apiserver stores after a merge patch."""
    if isinstance(value, Mapping):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def status_changed(desired: Mapping[str, Any], current: Json) -> bool:
    """Whether writing `desired` would change `current` (the Pod's status as last seen)."""
    for key, value in desired.items():
        if key == "conditions":
            ours = {c["type"]: strip_nulls(c) for c in value}
            theirs = {
                c.get("type"): strip_nulls(c)
                for c in current.get("conditions") or ()
                if c.get("type") in ours
            }
            if ours != theirs:
                return True
        elif strip_nulls(current.get(key)) != strip_nulls(value):
            return True
    return False
