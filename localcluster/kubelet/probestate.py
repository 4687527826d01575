"""Probe results as the kubelet's prober worker keeps them (pure: results in, verdicts out).

- A readiness probe starts as Failure (not ready), a liveness probe as Success, a startup probe
  as Unknown (not started).
- A raw result only becomes *the* result after `successThreshold` consecutive successes or
  `failureThreshold` consecutive failures.
- While a startup probe exists and has not succeeded, readiness and liveness probes do not run;
  once it succeeded it stops.
- A liveness or startup Failure puts the worker on hold: the container is killed and restarted,
  and the new container gets fresh trackers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from localcluster.kubelet.podspec import ContainerSpec, ProbeSpec

ProbeKind = Literal["startup", "readiness", "liveness"]


class Result(enum.Enum):
    SUCCESS = "Success"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"


_INITIAL = {"readiness": Result.FAILURE, "liveness": Result.SUCCESS, "startup": Result.UNKNOWN}


@dataclass
class ProbeTracker:
    """The state of one probe of one container instance."""

    kind: ProbeKind
    spec: ProbeSpec
    result: Result = field(init=False)
    on_hold: bool = False
    _last_raw: Result | None = None
    _run: int = 0

    def __post_init__(self) -> None:
        self.result = _INITIAL[self.kind]

    def observe(self, success: bool) -> bool:
        """Feeds one raw probe outcome; returns True when the effective result changed."""
        raw = Result.SUCCESS if success else Result.FAILURE
        if raw == self._last_raw:
            self._run += 1
        else:
            self._last_raw, self._run = raw, 1
        threshold = (
            self.spec.failure_threshold if raw == Result.FAILURE else self.spec.success_threshold
        )
        if self._run < threshold or raw == self.result:
            return False
        self.result = raw
        if raw == Result.FAILURE and self.kind in ("liveness", "startup"):
            self.on_hold = True
            self._run = 0
        return True

    def first_probe_delay(self) -> float:
        return float(self.spec.initial_delay_seconds)


@dataclass
class ContainerProbes:
    """The trackers of one running container instance."""

    startup: ProbeTracker | None = None
    readiness: ProbeTracker | None = None
    liveness: ProbeTracker | None = None

    @classmethod
    def for_container(cls, container: ContainerSpec) -> ContainerProbes:
        def make(kind: ProbeKind, spec: ProbeSpec | None) -> ProbeTracker | None:
            return ProbeTracker(kind, spec) if spec is not None else None

        return cls(
            startup=make("startup", container.startup_probe),
            readiness=make("readiness", container.readiness_probe),
            liveness=make("liveness", container.liveness_probe),
        )

    @property
    def started(self) -> bool:
        """`containerStatuses[].started`: true once the startup probe (if any) has succeeded."""
        return self.startup is None or self.startup.result == Result.SUCCESS

    @property
    def ready(self) -> bool:
        """Ready: started, and the readiness probe (if any) succeeds."""
        if not self.started:
            return False
        return self.readiness is None or self.readiness.result == Result.SUCCESS

    def should_run(self, tracker: ProbeTracker) -> bool:
        """Whether `tracker` probes now (startup gating and hold rules)."""
        if tracker.on_hold:
            return False
        if tracker.kind == "startup":
            return not self.started
        return self.started

    def failed_fatally(self) -> ProbeKind | None:
        """`liveness` or `startup` when that probe failed: the container must be restarted."""
        for tracker in (self.startup, self.liveness):
            if tracker is not None and tracker.result == Result.FAILURE:
                return tracker.kind
        return None
