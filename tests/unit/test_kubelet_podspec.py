"""The typed Pod view: defaults and probe parsing."""

from __future__ import annotations

import pytest

from localcluster.kubelet.podspec import PROBE_PERIOD_SCALE, ContainerPort, parse_pod, resolve_port


def test_defaults() -> None:
    pod = parse_pod(
        {
            "metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }
    )
    assert pod.restart_policy == "Always"
    assert pod.termination_grace_seconds == 30
    assert pod.node_name is None and pod.deletion_timestamp is None
    assert pod.containers[0].gpus == 0
    assert pod.key == "n/p" and pod.phase is None


def test_probes_and_resources() -> None:
    container = {
        "name": "c",
        "image": "i",
        "resources": {"limits": {"nvidia.com/gpu": "2"}},
        "ports": [{"containerPort": 8000, "name": "http"}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "https"},
            "periodSeconds": 1,
        },
        "livenessProbe": {"tcpSocket": {"port": 8000}, "failureThreshold": 1},
        "startupProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 2},
    }
    pod = parse_pod(
        {
            "metadata": {"name": "p"},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]},
        }
    )
    spec = pod.containers[0]
    assert spec.gpus == 2
    assert pod.termination_grace_seconds == 0
    assert spec.readiness_probe is not None and spec.readiness_probe.handler == "httpGet"
    assert (
        spec.readiness_probe.path,
        spec.readiness_probe.scheme,
        spec.readiness_probe.period_seconds,
    ) == ("/ready", "HTTPS", 1)
    assert spec.liveness_probe is not None and spec.liveness_probe.handler == "tcpSocket"
    assert spec.liveness_probe.failure_threshold == 1 and spec.liveness_probe.timeout_seconds == 1
    assert spec.startup_probe is not None and spec.startup_probe.command == ("true",)
    assert spec.startup_probe.initial_delay_seconds == 2
    assert pod.container("c") is spec and pod.container("x") is None


def test_named_ports() -> None:
    ports = [ContainerPort(8000, "http"), ContainerPort(9000, "metrics")]
    assert resolve_port("metrics", ports) == 9000
    assert resolve_port("8080", ports) == 8080
    assert resolve_port(7, ports) == 7
    assert resolve_port("nope", ports) is None
    assert resolve_port(None, ports) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0.05", 0.05), ("1", 1.0), ("0", None), ("2", None), ("fast", None)],
)
def test_probe_period_scale_annotation(value: str | None, expected: float | None) -> None:
    annotations = {} if value is None else {PROBE_PERIOD_SCALE: value}
    pod = parse_pod({"metadata": {"name": "p", "uid": "u", "annotations": annotations}, "spec": {}})
    assert pod.probe_period_scale == expected
