"""charts/fma's NetworkPolicies (issue 13): the launcher API and the requester stub's SPI accept
connections only from the controller Pods; every other port stays open to everyone.

The policies are evaluated here with NetworkPolicy's semantics (a Pod selected by a policy
accepts a connection iff some selecting policy's rule allows it), against Pods as fma makes
them: a launcher built by the controller from a LauncherConfig, a requester built by the mutating
webhook from a vLLM Pod (its SPI on the default port and moved), the controller Pods as the
chart's Deployment labels them. Ports and label keys come from contract/, never copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from contract import keys
from contract.launcher import LAUNCHER_PORT
from contract.requester import PROBES_PORT, PROXY_PORT, SPI_PORT, SPI_PORT_ENV
from controller.core._launcher_pod import build_launcher_template
from crds.models import LauncherConfig
from tests.chart import support
from tests.chart.support import NAMESPACE, VALUE_SETS, render
from tests.unit.mutation_support import apply, mutate, pod, vllm_container
from webhook.mutation._ports import FALLBACK_PORTS

SERVED: Final = "llm"
CERTIFICATE_MODES: Final = ("cert-manager", "self-managed")
NEW_ENOUGH: Final = ("v1.29.0", "v1.33.0")
"""Versions with `endPort` (the policies need it; from 1.22 on)."""


@dataclass(frozen=True)
class Peer:
    """Who connects: its namespace's labels and its Pod's labels (None: not a Pod, e.g. a node)."""

    namespace_labels: Mapping[str, str]
    pod_labels: Mapping[str, str] | None
    namespace: str


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        present = key in labels
        values = expression.get("values") or []
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
    return True


def _peer_matches(rule_peer: Mapping[str, Any], peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        return False  # the peers here are Pods; no ipBlock in the chart's defaults
    if peer.pod_labels is None:
        return False
    if "namespaceSelector" in rule_peer:
        if not _matches(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return "podSelector" not in rule_peer or _matches(rule_peer["podSelector"], peer.pod_labels)


def _port_matches(rule_port: Mapping[str, Any], port: int, protocol: str) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    first = rule_port["port"]
    assert isinstance(first, int), "named ports are not used by the chart"
    last = rule_port.get("endPort", first)
    assert isinstance(last, int)
    return first <= port <= last


def allowed(
    policies: list[dict[str, Any]],
    pod_labels: Mapping[str, str],
    port: int,
    peer: Peer,
    protocol: str = "TCP",
) -> bool:
    """Whether `peer` may connect to `port` of a Pod of the served namespace."""
    selecting = [p for p in policies if _matches(p["spec"]["podSelector"], pod_labels)]
    if not selecting:
        return True
    for policy in selecting:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"].get("ingress") or []:
            sources = rule.get("from")
            ports = rule.get("ports")
            namespace = policy["metadata"]["namespace"]
            if sources is not None and not any(_peer_matches(s, peer, namespace) for s in sources):
                continue
            if ports is not None and not any(_port_matches(p, port, protocol) for p in ports):
                continue
            return True
    return False


def _policies(values: Mapping[str, Any], kube_version: str = "v1.29.0") -> list[dict[str, Any]]:
    merged = {"servedNamespace": SERVED, **values}
    return render(merged, kube_version=kube_version).of_kind("NetworkPolicy")


def _controller_peer(values: Mapping[str, Any] | None = None) -> Peer:
    """A controller Pod as the chart's Deployment labels it, in the release namespace."""
    rendered = render({"servedNamespace": SERVED, **(values or {})})
    deployment = rendered.get("Deployment", "fma-controller")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return Peer({"kubernetes.io/metadata.name": NAMESPACE}, labels, NAMESPACE)


STRANGER: Final = Peer({"kubernetes.io/metadata.name": SERVED}, {"app": "curl"}, SERVED)
"""Any other Pod, here in the served namespace itself."""
OUTSIDER: Final = Peer({"kubernetes.io/metadata.name": "gateway"}, {"app": "envoy"}, "gateway")
"""An inference client in another namespace (a gateway)."""
IMPOSTOR: Final = Peer(
    {"kubernetes.io/metadata.name": SERVED},
    {"app.kubernetes.io/name": "fma", "app.kubernetes.io/component": "controller"},
    SERVED,
)
"""A Pod in the served namespace wearing the controller's labels (wrong namespace)."""


def _launcher_labels() -> dict[str, str]:
    """The labels of a launcher Pod exactly as the controller builds it."""
    config = LauncherConfig.model_validate(
        {
            "apiVersion": "fma.llm-d.ai/v1alpha1",
            "kind": "LauncherConfig",
            "metadata": {"name": "vllm", "namespace": SERVED, "uid": "u-1"},
            "spec": {
                "maxInstances": 2,
                "podTemplate": {
                    "metadata": {"labels": {"app": "launchers"}},
                    "spec": {"containers": [{"name": "inference-server", "image": "fma:vllm"}]},
                },
            },
        }
    )
    labels: dict[str, str] = build_launcher_template(config).for_node("gpu-1")["metadata"]["labels"]
    assert labels[keys.LC_NAME] == "vllm"
    return labels


def _requester(*ports: int, labels: dict[str, str] | None = None) -> tuple[dict[str, str], int]:
    """The labels and the SPI port of a requester made by the webhook from a vLLM Pod whose
    container declares `ports` (a declared 8081 moves the SPI)."""
    container = vllm_container(
        ports=[{"containerPort": p, "protocol": "TCP"} for p in ports],
        args=["--port", str(ports[0] if ports else 8000)],
    )
    original = pod(container, labels=labels or {"app": "chat"})
    stored = apply(original, mutate(original))
    assert keys.MUTATED_ANNOTATION in stored["metadata"]["annotations"]
    (stub,) = stored["spec"]["containers"]
    spi = int(next(e["value"] for e in stub["env"] if e["name"] == SPI_PORT_ENV))
    return dict(stored["metadata"].get("labels") or {}), spi


@pytest.mark.parametrize("kube_version", NEW_ENOUGH)
@pytest.mark.parametrize("mode", CERTIFICATE_MODES)
def test_both_policies_render_in_the_served_namespace_and_validate(
    mode: str, kube_version: str
) -> None:
    rendered = render(
        {"servedNamespace": SERVED, "certificates": {"mode": mode}}, kube_version=kube_version
    )
    policies = rendered.of_kind("NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {"fma-launchers", "fma-requesters"}
    for policy in policies:
        assert policy["metadata"]["namespace"] == SERVED
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        kubernetes_validate.validate(policy, kube_version.lstrip("v"), strict=True)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_on_by_default_in_every_value_set(value_set: str) -> None:
    assert len(render(VALUE_SETS[value_set]).of_kind("NetworkPolicy")) == 2


@pytest.mark.parametrize("mode", CERTIFICATE_MODES)
def test_switched_off_renders_none(mode: str) -> None:
    values = {"networkPolicy": {"enabled": False}, "certificates": {"mode": mode}}
    assert _policies(values) == []


@pytest.mark.parametrize("kube_version", ["v1.20.2", "v1.21.0"])
def test_none_without_port_ranges(kube_version: str) -> None:
    """Below 1.22 no policy could leave the serving ports open (no `endPort`)."""
    assert _policies({}, kube_version) == []


def test_launcher_api_only_from_the_controllers_instances_from_anywhere() -> None:
    policies = _policies({})
    launcher = _launcher_labels()
    controller = _controller_peer()
    assert allowed(policies, launcher, LAUNCHER_PORT, controller)
    for peer in (STRANGER, OUTSIDER, IMPOSTOR):
        assert not allowed(policies, launcher, LAUNCHER_PORT, peer)
        for port in (1, 8000, LAUNCHER_PORT - 1, LAUNCHER_PORT + 1, 8005, SPI_PORT, 65535):
            assert allowed(policies, launcher, port, peer), port
        assert allowed(policies, launcher, LAUNCHER_PORT, peer, protocol="UDP")


@pytest.mark.parametrize(
    ("declared", "moved"),
    [((), False), ((8000,), False), ((8000, SPI_PORT), True), ((PROBES_PORT, SPI_PORT), True)],
    ids=["default", "declared-8000", "spi-taken", "probes-and-spi-taken"],
)
def test_requester_spi_only_from_the_controllers_serving_ports_from_anywhere(
    declared: tuple[int, ...], moved: bool
) -> None:
    policies = _policies({})
    labels, spi = _requester(*declared)
    assert (spi != SPI_PORT) is moved
    assert spi == SPI_PORT or spi in FALLBACK_PORTS
    controller = _controller_peer()
    assert allowed(policies, labels, spi, controller)
    serving = {*declared} | {8000}
    guarded = {SPI_PORT, *FALLBACK_PORTS}
    for peer in (STRANGER, OUTSIDER, IMPOSTOR):
        assert not allowed(policies, labels, spi, peer)
        for port in serving - {spi}:
            # A server on a port the SPI may take stays closed too (documented limitation:
            # a policy cannot follow where the webhook put one Pod's SPI).
            assert allowed(policies, labels, port, peer) is (port not in guarded), port
    # the stub's own proxy at its default port stays open (the reference's inference path)
    if not moved:
        assert allowed(policies, labels, PROXY_PORT, STRANGER)
        assert allowed(policies, labels, PROBES_PORT, STRANGER)


def test_every_spi_port_the_webhook_may_choose_is_closed_and_nothing_else() -> None:
    policies = _policies({})
    labels, _ = _requester()
    guarded = {SPI_PORT, *FALLBACK_PORTS}
    for port in range(1, 65536):
        assert allowed(policies, labels, port, STRANGER) is (port not in guarded), port
        assert allowed(policies, labels, port, STRANGER, protocol="UDP")
    for port in guarded:
        assert allowed(policies, labels, port, _controller_peer())


def test_a_launcher_is_selected_by_one_policy_only() -> None:
    """A second selecting policy would open what the first one keeps closed."""
    policies = _policies({})
    launcher = [p for p in policies if _matches(p["spec"]["podSelector"], _launcher_labels())]
    assert [p["metadata"]["name"] for p in launcher] == ["fma-launchers"]
    labels, _ = _requester()
    requester = [p for p in policies if _matches(p["spec"]["podSelector"], labels)]
    assert [p["metadata"]["name"] for p in requester] == ["fma-requesters"]


def test_controller_peer_follows_release_and_namespace() -> None:
    rendered = render({"servedNamespace": SERVED}, namespace="ops", release="fast")
    deployment = rendered.get("Deployment", "fast-fma-controller")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    controller = Peer({"kubernetes.io/metadata.name": "ops"}, labels, "ops")
    policies = rendered.of_kind("NetworkPolicy")
    assert allowed(policies, _launcher_labels(), LAUNCHER_PORT, controller)
    other_release = _controller_peer()  # release fma in fma-system
    assert not allowed(policies, _launcher_labels(), LAUNCHER_PORT, other_release)


def test_extra_peers_and_requester_labels() -> None:
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}},
    }
    values = {
        "networkPolicy": {
            "enabled": True,
            "extraLauncherPeers": [prometheus],
            "requesterPodLabels": {"app": "chat"},
        }
    }
    policies = _policies(values)
    scraper = Peer({"kubernetes.io/metadata.name": "monitoring"}, {"app": "prometheus"}, "x")
    assert allowed(policies, _launcher_labels(), LAUNCHER_PORT, scraper)
    labels, spi = _requester(labels={"app": "chat"})
    assert not allowed(policies, labels, spi, scraper)
    other, spi = _requester(labels={"app": "batch"})
    assert allowed(policies, other, spi, STRANGER)  # not selected: untouched
    for policy in policies:
        kubernetes_validate.validate(policy, "1.29.0", strict=True)


@pytest.mark.parametrize(
    "values",
    [
        {"networkPolicy": {"enabled": "yes"}},
        {"networkPolicy": {"enabled": True, "extraLauncherPeers": [{"pods": {}}]}},
        {"networkPolicy": {"enabled": True, "requesterPodLabels": {"app": 1}}},
        {"networkPolicy": {"enabled": True, "unknown": 1}},
    ],
)
def test_values_schema_refuses(values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="networkPolicy"):
        support.validate_values(values)
