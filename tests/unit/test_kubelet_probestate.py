"""Probe results: thresholds, initial values, startup gating."""

from __future__ import annotations

from localcluster.kubelet.podspec import ContainerSpec, ProbeSpec
from localcluster.kubelet.probestate import ContainerProbes, ProbeTracker, Result


def result(tracker: ProbeTracker) -> Result:
    """The effective result (a call, so that mypy does not narrow it between observations)."""
    return tracker.result


def test_initial_results() -> None:
    spec = ProbeSpec("httpGet")
    assert ProbeTracker("readiness", spec).result == Result.FAILURE
    assert ProbeTracker("liveness", spec).result == Result.SUCCESS
    assert ProbeTracker("startup", spec).result == Result.UNKNOWN


def test_thresholds_need_consecutive_results() -> None:
    tracker = ProbeTracker(
        "readiness", ProbeSpec("httpGet", success_threshold=2, failure_threshold=3)
    )
    assert not tracker.observe(True)
    assert tracker.observe(True)
    assert result(tracker) == Result.SUCCESS
    assert not tracker.observe(False)
    assert not tracker.observe(False)
    assert not tracker.observe(True)  # the run of failures is broken
    assert not tracker.observe(False)
    assert not tracker.observe(False)
    assert tracker.observe(False)
    assert result(tracker) == Result.FAILURE
    assert not tracker.on_hold  # readiness failures never stop probing


def test_liveness_failure_puts_the_probe_on_hold() -> None:
    tracker = ProbeTracker("liveness", ProbeSpec("tcpSocket", failure_threshold=1))
    assert tracker.observe(False)
    assert tracker.on_hold


def started(probes: ContainerProbes) -> bool:
    return probes.started


def ready(probes: ContainerProbes) -> bool:
    return probes.ready


def test_startup_probe_gates_the_others() -> None:
    spec = ProbeSpec("exec", failure_threshold=2)
    container = ContainerSpec(
        "c", "i", startup_probe=spec, readiness_probe=spec, liveness_probe=spec
    )
    probes = ContainerProbes.for_container(container)
    assert probes.startup is not None and probes.readiness is not None
    assert probes.liveness is not None
    assert not started(probes) and not probes.ready
    assert probes.should_run(probes.startup)
    assert not probes.should_run(probes.readiness)
    probes.startup.observe(True)
    assert started(probes) and not ready(probes)
    assert not probes.should_run(probes.startup)
    assert probes.should_run(probes.readiness) and probes.should_run(probes.liveness)
    probes.readiness.observe(True)
    assert ready(probes)
    probes.liveness.observe(False)
    assert probes.failed_fatally() is None
    probes.liveness.observe(False)
    assert probes.failed_fatally() == "liveness"


def test_without_probes_a_running_container_is_started_and_ready() -> None:
    probes = ContainerProbes.for_container(ContainerSpec("c", "i"))
    assert probes.started and probes.ready and probes.failed_fatally() is None
