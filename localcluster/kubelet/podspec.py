"""A typed, read-only view of the parts of a Pod (JSON as the apiserver sends it) we act on.

The hollow kubelet keeps Pods as the plain dicts it receives (no model round trip, nothing lost);
this module is the one place that knows their field names and defaults, so the decision modules
work on typed values and say what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

GPU_RESOURCE = "nvidia.com/gpu"

ProbeHandler = Literal["httpGet", "tcpSocket", "exec"]
RestartPolicy = Literal["Always", "OnFailure", "Never"]
Json = Mapping[str, Any]


@dataclass(frozen=True)
class ProbeSpec:
    """One probe with the API's defaults filled in."""

    handler: ProbeHandler
    port: int | str | None = None
    path: str = "/"
    host: str | None = None
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ContainerSpec:
    """A container (init or app) of the Pod."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    env: tuple[Json, ...] = ()
    env_from: tuple[Json, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    limits: Mapping[str, str] | None = None
    requests: Mapping[str, str] | None = None
    readiness_probe: ProbeSpec | None = None
    liveness_probe: ProbeSpec | None = None
    startup_probe: ProbeSpec | None = None

    @property
    def gpus(self) -> int:
        """The `nvidia.com/gpu` limit (extended resources are whole numbers)."""
        return int((self.limits or {}).get(GPU_RESOURCE, "0"))


PROBE_PERIOD_SCALE = "hollow-kubelet.fma.llm-d.ai/probe-period-scale"
"""A Pod annotation, for benchmarks: this Pod's probes run every `periodSeconds` times this
factor (Kubernetes' minimum period is 1 s). It overrides the kubelet's `probePeriodScale`."""


@dataclass(frozen=True)
class PodView:
    """What the hollow kubelet reads of a Pod; `raw` keeps the whole object for field refs."""

    uid: str
    name: str
    namespace: str
    node_name: str | None
    restart_policy: RestartPolicy
    containers: tuple[ContainerSpec, ...]
    init_containers: tuple[ContainerSpec, ...]
    termination_grace_seconds: int
    deletion_timestamp: str | None
    deletion_grace_seconds: int | None
    readiness_gates: tuple[str, ...]
    raw: Json

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def status(self) -> Json:
        result: Json = self.raw.get("status") or {}
        return result

    @property
    def phase(self) -> str | None:
        phase = self.status.get("phase")
        return str(phase) if phase else None

    @property
    def probe_period_scale(self) -> float | None:
        """The test knob of annotation `PROBE_PERIOD_SCALE`: probe periods times a factor in
        (0, 1]; None when the annotation is absent or not such a number."""
        annotations = (self.raw.get("metadata") or {}).get("annotations") or {}
        try:
            value = float(annotations.get(PROBE_PERIOD_SCALE, ""))
        except ValueError:
            return None
        return value if 0 < value <= 1 else None

    def container(self, name: str) -> ContainerSpec | None:
        for container in (*self.init_containers, *self.containers):
            if container.name == name:
                return container
        return None


def parse_pod(raw: Json) -> PodView:
    """The typed view of a Pod dict."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    grace = spec.get("terminationGracePeriodSeconds")
    return PodView(
        uid=str(meta.get("uid", "")),
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        node_name=spec.get("nodeName") or None,
        restart_policy=spec.get("restartPolicy") or "Always",
        containers=tuple(_container(c) for c in spec.get("containers") or ()),
        init_containers=tuple(_container(c) for c in spec.get("initContainers") or ()),
        termination_grace_seconds=30 if grace is None else int(grace),
        deletion_timestamp=meta.get("deletionTimestamp"),
        deletion_grace_seconds=meta.get("deletionGracePeriodSeconds"),
        readiness_gates=tuple(
            str(g.get("conditionType")) for g in spec.get("readinessGates") or ()
        ),
        raw=raw,
    )


def _container(raw: Json) -> ContainerSpec:
    resources = raw.get("resources") or {}
    return ContainerSpec(
        name=str(raw["name"]),
        image=str(raw.get("image", "")),
        command=tuple(raw.get("command") or ()),
        args=tuple(raw.get("args") or ()),
        working_dir=raw.get("workingDir") or None,
        env=tuple(raw.get("env") or ()),
        env_from=tuple(raw.get("envFrom") or ()),
        ports=tuple(
            ContainerPort(int(p["containerPort"]), p.get("name"), p.get("protocol") or "TCP")
            for p in raw.get("ports") or ()
        ),
        limits=resources.get("limits"),
        requests=resources.get("requests"),
        readiness_probe=_probe(raw.get("readinessProbe")),
        liveness_probe=_probe(raw.get("livenessProbe")),
        startup_probe=_probe(raw.get("startupProbe")),
    )


def _probe(raw: Json | None) -> ProbeSpec | None:
    if not raw:
        return None
    base = ProbeSpec(
        "exec",
        initial_delay_seconds=int(raw.get("initialDelaySeconds") or 0),
        period_seconds=int(raw.get("periodSeconds") or 10),
        timeout_seconds=int(raw.get("timeoutSeconds") or 1),
        success_threshold=int(raw.get("successThreshold") or 1),
        failure_threshold=int(raw.get("failureThreshold") or 3),
    )
    if http := raw.get("httpGet"):
        headers = tuple((str(h["name"]), str(h["value"])) for h in http.get("httpHeaders") or ())
        return replace(
            base,
            handler="httpGet",
            port=http.get("port"),
            path=http.get("path") or "/",
            host=http.get("host") or None,
            scheme=(http.get("scheme") or "HTTP").upper(),
            headers=headers,
        )
    if tcp := raw.get("tcpSocket"):
        return replace(base, handler="tcpSocket", port=tcp.get("port"), host=tcp.get("host"))
    if exec_ := raw.get("exec"):
        return replace(base, command=tuple(exec_.get("command") or ()))
    return None


def resolve_port(port: int | str | None, ports: Sequence[ContainerPort]) -> int | None:
    """A probe's port: a number, a numeric string, or the name of one of the container's ports."""
    if port is None:
        return None
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for candidate in ports:
        if candidate.name == port:
            return candidate.container_port
    return None
