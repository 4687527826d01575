"""charts/fma against the code it deploys, so the two cannot drift apart.

- The webhook configurations equal what `webhook.registration.build_webhook_configurations`
  builds (the chart adds only what newer Kubernetes versions allow, checked exactly).
- The webhook's and the controller's command lines parse with their own CLIs into the settings
  the chart means; every command the chart runs is a console script of the package.
- The controllers' RBAC is `controller/rbac.yaml`; the webhook's is what the webhook's own
  end-to-end tests grant it; the controllers' ServiceAccount has its contract name.
- files/sync_ca_bundle.py builds the JSON patches it should, and passes the quality gates the
  package's code passes (ruff and mypy skip charts/ by configuration, so this test runs them).
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest
import yaml

import jsonlog
import webhook.cli
from certs.authority import CertificateAuthority
from localcluster.fma.webhook_process import WEBHOOK_RULES
from tests.chart import support
from tests.chart.support import NAMESPACE, VALUE_SETS, render
from webhook.mutation import SYSTEM_NAMESPACES
from webhook.registration import (
    RegistrationSettings,
    ServiceReference,
    build_webhook_configurations,
)
from webhook.settings import WebhookSettings

CONFIGURATION_KINDS: Final = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
NAME_KEY: Final = "kubernetes.io/metadata.name"
CA_PEM: Final = CertificateAuthority.create("chart-test").cert_pem


def _builder_webhooks(namespace: str, name: str, timeout: int) -> dict[str, list[Any]]:
    """What `fma-webhook register --service-name NAME` would register, without the caBundle
    (cert-manager or the certificate Jobs fill it in)."""
    settings = RegistrationSettings(
        ca_bundle=CA_PEM,
        service=ServiceReference(namespace=namespace, name=name),
        configuration_name=name,
        timeout_seconds=timeout,
    )
    built: dict[str, list[Any]] = {}
    for configuration in build_webhook_configurations(settings):
        assert configuration["metadata"]["name"] == name
        webhooks = copy.deepcopy(configuration["webhooks"])
        for entry in webhooks:
            del entry["clientConfig"]["caBundle"]
        built[configuration["kind"]] = webhooks
    return built


def _without_version_additions(
    webhooks: list[Any], *, excluded: set[str], usernames: list[str]
) -> list[Any]:
    """The chart's webhooks minus the 1.21+ name exclusion and the 1.28+ matchConditions,
    after checking that those additions say exactly what they should."""
    webhooks = copy.deepcopy(webhooks)
    for entry in webhooks:
        selector = entry.get("namespaceSelector")
        if selector is not None:
            [by_name] = [e for e in selector["matchExpressions"] if e["key"] == NAME_KEY]
            assert by_name["operator"] == "NotIn"
            assert set(by_name["values"]) == excluded
            selector["matchExpressions"].remove(by_name)
        conditions = entry.pop("matchConditions", None)
        if conditions is not None:
            assert entry["name"] == "pods.fma.llm-d.ai"
            quoted = ",".join(f'"{u}"' for u in usernames)
            assert conditions == [
                {
                    "name": "not-fma-controllers",
                    "expression": f"!(request.userInfo.username in [{quoted}])",
                }
            ]
    return webhooks


@pytest.mark.parametrize(
    ("values", "namespace", "release"),
    [
        ({}, NAMESPACE, "fma"),
        (VALUE_SETS["self-managed"], "ops", "fast"),
        (VALUE_SETS["single-replica"], NAMESPACE, "fma"),
    ],
)
@pytest.mark.parametrize("kube_version", support.KUBE_VERSIONS)
def test_webhook_configurations_are_what_registration_builds(
    values: dict[str, Any], namespace: str, release: str, kube_version: str
) -> None:
    rendered = render(values, kube_version=kube_version, namespace=namespace, release=release)
    name = f"{release}-fma-webhook" if release != "fma" else "fma-webhook"
    timeout = values.get("webhook", {}).get("timeoutSeconds", 5)
    expected = _builder_webhooks(namespace, name, timeout)
    excluded = {namespace, *SYSTEM_NAMESPACES}
    usernames = _webhook_settings(rendered).effective_controller_usernames()
    for kind in CONFIGURATION_KINDS:
        webhooks = rendered.get(kind, name)["webhooks"]
        if kube_version == "v1.20.2":
            assert webhooks == expected[kind]
        else:
            stripped = _without_version_additions(
                webhooks, excluded=excluded, usernames=_ordered(rendered, usernames)
            )
            assert stripped == expected[kind]


def _ordered(rendered: support.Rendered, usernames: frozenset[str]) -> list[str]:
    """The controller usernames in the order the webhook Deployment passes them."""
    args = _webhook_args(rendered)
    ordered = [a.split("=", 1)[1] for a in args if a.startswith("--controller-username=")]
    assert set(ordered) == usernames
    return ordered


def _webhook_args(rendered: support.Rendered) -> list[str]:
    deployment = next(
        d for d in rendered.of_kind("Deployment") if d["metadata"]["name"].endswith("webhook")
    )
    argv = support.argv(support.container(deployment, "webhook"))
    assert argv[0] == "fma-webhook"
    return argv[1:]


def _webhook_settings(rendered: support.Rendered) -> WebhookSettings:
    """The chart's `fma-webhook` command line, parsed by the webhook's own CLI."""
    captured: list[WebhookSettings] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(webhook.cli, "serve", captured.append)
        patch.setattr(jsonlog, "configure", lambda *args, **kwargs: None)
        assert webhook.cli.main(_webhook_args(rendered)) == 0
    return captured[0]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_webhook_command_line_means_what_the_chart_says(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    rendered = render(values)
    settings = _webhook_settings(rendered)
    deployment = rendered.get("Deployment", "fma-webhook")
    container = support.container(deployment, "webhook")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.namespace == NAMESPACE
    assert settings.tls_cert == Path(mounts["tls"]) / "tls.crt"
    assert settings.tls_key == Path(mounts["tls"]) / "tls.key"
    assert settings.kubeconfig is None  # in-cluster
    assert container["ports"] == [
        {"name": "https", "containerPort": settings.port, "protocol": "TCP"}
    ]
    own = f"system:serviceaccount:{NAMESPACE}:fma-fma-controllers"
    extra = values.get("webhook", {}).get("extraControllerUsernames", [])
    assert settings.effective_controller_usernames() == {own, *extra}
    service = rendered.get("Service", "fma-webhook")["spec"]
    assert service["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_controller_command_line_means_what_the_chart_says(value_set: str) -> None:
    controller_cli = pytest.importorskip("controller.cli", reason="fma-controller not there yet")
    values = VALUE_SETS[value_set]
    rendered = render(values)
    deployment = rendered.get("Deployment", "fma-controller")
    container = support.container(deployment, "controller")
    argv = support.argv(container)
    assert argv[0] == "fma-controller"
    config = controller_cli.parse_args(argv[1:])
    chosen = values.get("controller", {})
    served = values.get("servedNamespace", "default")
    assert config.reconciler.namespace == served
    assert config.reconciler.workers == chosen.get("numWorkers", 2)
    assert config.reconciler.core.sleeper_limit == chosen.get("sleeperLimit", 2)
    assert config.reconciler.core.memory_check is chosen.get("memoryCheck", True)
    assert config.connection.kubeconfig is None
    leader_elect = chosen.get("leaderElection", {}).get("enabled", True)
    assert (config.leader is not None) is leader_elect
    if config.leader is not None:  # the Lease lives where the Role grants leases
        assert (
            config.leader.namespace
            == rendered.get("Role", "fma-controller")["metadata"]["namespace"]
        )
    port = container["ports"][0]
    assert port == {"name": "metrics", "containerPort": config.server.port, "protocol": "TCP"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics"


def test_every_command_the_chart_runs_is_a_console_script() -> None:
    scripts = tomllib.loads((support.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    rendered = render(VALUE_SETS["self-managed"])
    commands = {c["command"][0] for o in rendered.objects for c in support.containers(o)}
    assert commands == {"fma-webhook", "fma-controller", "fma-certs", "python"}
    assert commands - {"python"} <= set(scripts)
    assert _webhook_settings(render()).requester_image == "ghcr.io/llm-d/fma:0.1.0"
    assert "fma-requester" in scripts  # what mutated Pods run from that image


def _rules(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in obj["rules"]]


def test_controller_rbac_is_controller_rbac_yaml() -> None:
    reference = {
        doc["kind"]: doc["rules"]
        for doc in yaml.safe_load_all((support.REPO / "controller" / "rbac.yaml").read_text())
    }
    rendered = render(VALUE_SETS["served-namespace"])
    assert rendered.get("Role", "fma-controller")["rules"] == reference["Role"]
    assert rendered.get("ClusterRole", "fma-controller")["rules"] == reference["ClusterRole"]
    account = {"kind": "ServiceAccount", "name": "fma-fma-controllers", "namespace": NAMESPACE}
    assert rendered.names("ServiceAccount") >= {"fma-fma-controllers"}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        binding = rendered.get(kind, "fma-controller")
        assert binding["subjects"] == [account]
        assert binding["roleRef"]["name"] == "fma-controller"
    spec = support.pod_spec(rendered.get("Deployment", "fma-controller"))
    assert spec is not None and spec["serviceAccountName"] == "fma-fma-controllers"


def test_webhook_rbac_is_what_its_end_to_end_tests_grant() -> None:
    rendered = render()
    assert rendered.get("ClusterRole", "fma-webhook")["rules"] == WEBHOOK_RULES
    assert rendered.names("Role") == {"fma-controller"}  # nothing namespaced for the webhook


def test_certificate_rbac_is_limited_to_its_own_objects() -> None:
    rendered = render(VALUE_SETS["self-managed"])
    for name in ("fma-certs", "fma-certs-hook"):
        role = rendered.get("Role", name)["rules"]
        assert role == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [
                    "fma-webhook-tls",
                    "fma-webhook-tls-ca",
                    "fma-control",
                    "fma-control-ca",
                ],
                "verbs": ["get", "update", "patch"],
            },
            {
                "apiGroups": [""],
                "resources": ["services"],
                "resourceNames": ["fma-webhook"],
                "verbs": ["get"],
            },
        ]
        assert rendered.get("ClusterRole", name)["rules"] == [
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": [
                    "mutatingwebhookconfigurations",
                    "validatingwebhookconfigurations",
                ],
                "resourceNames": ["fma-webhook"],
                "verbs": ["get", "patch"],
            }
        ]


# ----- files/sync_ca_bundle.py -------------------------------------------------------------


SYNC_SCRIPT: Final = support.CHART_DIR / "files" / "sync_ca_bundle.py"


@pytest.mark.parametrize(
    "gate",
    [["ruff", "check"], ["ruff", "format", "--check"], ["mypy", "--strict"]],
    ids=" ".join,
)
def test_sync_script_passes_the_quality_gates(gate: list[str]) -> None:
    tool = Path(sys.executable).parent / gate[0]
    result = subprocess.run(
        [str(tool), *gate[1:], str(SYNC_SCRIPT)],
        cwd=support.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _sync_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_ca_bundle", SYNC_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_patch_tests_each_name_and_skips_what_is_current() -> None:
    sync = _sync_module()
    configuration = {
        "webhooks": [
            {"name": "a.fma.llm-d.ai", "clientConfig": {"service": {}}},
            {"name": "b.fma.llm-d.ai", "clientConfig": {"service": {}, "caBundle": "QUJD"}},
            {"name": "c.fma.llm-d.ai", "clientConfig": {"service": {}, "caBundle": "old"}},
        ]
    }
    assert sync.bundle_patch(configuration, "QUJD") == [
        {"op": "test", "path": "/webhooks/0/name", "value": "a.fma.llm-d.ai"},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "QUJD"},
        {"op": "test", "path": "/webhooks/2/name", "value": "c.fma.llm-d.ai"},
        {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "QUJD"},
    ]
    assert sync.bundle_patch({"webhooks": configuration["webhooks"][1:2]}, "QUJD") == []


def test_owner_patch_appends_once_under_a_resource_version_test() -> None:
    sync = _sync_module()
    owner = sync.service_owner({"metadata": {"name": "fma-webhook", "uid": "u-1"}})
    assert owner == {"apiVersion": "v1", "kind": "Service", "name": "fma-webhook", "uid": "u-1"}
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert sync.owner_patch({"resourceVersion": "7"}, owner) == [
        guard,
        {"op": "add", "path": "/metadata/ownerReferences", "value": [owner]},
    ]
    other = {**owner, "uid": "u-0"}
    assert sync.owner_patch({"resourceVersion": "7", "ownerReferences": [other]}, owner) == [
        guard,
        {"op": "add", "path": "/metadata/ownerReferences/-", "value": owner},
    ]
    assert sync.owner_patch({"resourceVersion": "7", "ownerReferences": [owner]}, owner) == []
