"""The built webhook configurations: the exact selectors, policies and client configs; and
the writes that register them (through `kube`, on `httpx.MockTransport`)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from certs.authority import CertificateAuthority
from kube import KubeClient
from webhook.registration import (
    FIELD_MANAGER,
    RegistrationSettings,
    ServiceReference,
    apply_webhook_configurations,
    build_webhook_configurations,
    namespace_labels,
)

CA = CertificateAuthority.create("test-ca").cert_pem
SERVICE = RegistrationSettings(
    ca_bundle=CA, service=ServiceReference(namespace="fma-system", name="fma-webhook")
)
LOCAL = RegistrationSettings(ca_bundle=CA, url="https://127.0.0.1:9443/")
NOT_OWN_NAMESPACE = {
    "key": "fma.llm-d.ai/webhook-namespace",
    "operator": "NotIn",
    "values": ["true"],
}
COMMON = {
    "sideEffects": "None",
    "admissionReviewVersions": ["v1"],
    "timeoutSeconds": 5,
    "matchPolicy": "Equivalent",
}


def pod_rule(*operations: str) -> dict[str, Any]:
    return {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
        "operations": list(operations),
        "scope": "Namespaced",
    }


def service(path: str) -> dict[str, Any]:
    return {
        "service": {"namespace": "fma-system", "name": "fma-webhook", "path": path, "port": 443},
        "caBundle": base64.b64encode(CA).decode(),
    }


def test_mutating_configuration() -> None:
    mutating, _ = build_webhook_configurations(SERVICE)
    assert mutating == {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "fma-webhook", "labels": {"app.kubernetes.io/managed-by": "fma"}},
        "webhooks": [
            {
                "name": "inject-namespace.fma.llm-d.ai",
                "clientConfig": service("/mutate-pods"),
                "rules": [pod_rule("CREATE")],
                **COMMON,
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "fma.llm-d.ai/inject", "operator": "In", "values": ["enabled"]},
                        NOT_OWN_NAMESPACE,
                    ]
                },
                "objectSelector": {
                    "matchExpressions": [
                        {"key": "fma.llm-d.ai/inject", "operator": "NotIn", "values": ["false"]}
                    ]
                },
                "failurePolicy": "Ignore",
                "reinvocationPolicy": "Never",
            },
            {
                "name": "inject-pod.fma.llm-d.ai",
                "clientConfig": service("/mutate-pods"),
                "rules": [pod_rule("CREATE")],
                **COMMON,
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "fma.llm-d.ai/inject", "operator": "NotIn", "values": ["enabled"]},
                        NOT_OWN_NAMESPACE,
                    ]
                },
                "objectSelector": {"matchLabels": {"fma.llm-d.ai/inject": "true"}},
                "failurePolicy": "Ignore",
                "reinvocationPolicy": "Never",
            },
        ],
    }


def test_validating_configuration() -> None:
    _, validating = build_webhook_configurations(SERVICE)
    assert validating == {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "fma-webhook", "labels": {"app.kubernetes.io/managed-by": "fma"}},
        "webhooks": [
            {
                "name": "custom-resources.fma.llm-d.ai",
                "clientConfig": service("/validate-fma"),
                "rules": [
                    {
                        "apiGroups": ["fma.llm-d.ai"],
                        "apiVersions": ["v1alpha1"],
                        "resources": [
                            "inferenceserverconfigs",
                            "launcherconfigs",
                            "launcherpopulationpolicies",
                        ],
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                ],
                **COMMON,
                "failurePolicy": "Fail",
            },
            {
                "name": "pods.fma.llm-d.ai",
                "clientConfig": service("/validate-pods"),
                "rules": [pod_rule("CREATE", "UPDATE")],
                **COMMON,
                "failurePolicy": "Fail",
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "fma.llm-d.ai/served", "operator": "In", "values": ["true"]},
                        NOT_OWN_NAMESPACE,
                    ]
                },
            },
            *(labelled_guard(name, expressions) for name, expressions in LABELLED_GUARDS),
        ],
    }


LABELLED_GUARDS = (
    ("pods-bound.fma.llm-d.ai", [{"key": "dual-pods.llm-d.ai/dual", "operator": "Exists"}]),
    (
        "pods-launchers.fma.llm-d.ai",
        [
            {"key": "dual-pods.llm-d.ai/launcher-config-name", "operator": "Exists"},
            {"key": "dual-pods.llm-d.ai/dual", "operator": "DoesNotExist"},
        ],
    ),
)


def labelled_guard(name: str, expressions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": service("/validate-pods"),
        "rules": [pod_rule("CREATE", "UPDATE")],
        **COMMON,
        "failurePolicy": "Fail",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "fma.llm-d.ai/served", "operator": "NotIn", "values": ["true"]},
                NOT_OWN_NAMESPACE,
            ]
        },
        "objectSelector": {"matchExpressions": expressions},
    }


DUAL = {"dual-pods.llm-d.ai/dual": "x"}
LAUNCHER = {"dual-pods.llm-d.ai/launcher-config-name": "lc"}


@pytest.mark.parametrize(
    ("namespace", "pod", "guarded_by"),
    [
        ({"fma.llm-d.ai/served": "true"}, {}, ["pods.fma.llm-d.ai"]),
        ({"fma.llm-d.ai/served": "true"}, DUAL, ["pods.fma.llm-d.ai"]),
        ({}, {}, []),
        ({}, {"app": "web"}, []),
        ({}, DUAL, ["pods-bound.fma.llm-d.ai"]),
        ({}, LAUNCHER, ["pods-launchers.fma.llm-d.ai"]),
        ({}, LAUNCHER | DUAL, ["pods-bound.fma.llm-d.ai"]),
        ({"fma.llm-d.ai/webhook-namespace": "true"}, DUAL, []),
    ],
)
def test_each_guarded_pod_is_checked_once_and_ordinary_pods_never(
    namespace: dict[str, str], pod: dict[str, str], guarded_by: list[str]
) -> None:
    _, validating = build_webhook_configurations(SERVICE)
    matched = [
        hook["name"]
        for hook in validating["webhooks"]
        if hook["rules"][0]["resources"] == ["pods"]
        and selector_matches(hook["namespaceSelector"], namespace)
        and selector_matches(hook.get("objectSelector", {}), pod)
    ]
    assert matched == guarded_by


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics, enough for the selectors built here."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present, value = expression["key"] in labels, labels.get(expression["key"])
        if expression["operator"] == "In" and (not present or value not in expression["values"]):
            return False
        if expression["operator"] == "NotIn" and present and value in expression["values"]:
            return False
        if expression["operator"] == "Exists" and not present:
            return False
        if expression["operator"] == "DoesNotExist" and present:
            return False
    return True


@pytest.mark.parametrize(
    ("namespace", "pod", "mutated_by"),
    [
        ({"fma.llm-d.ai/inject": "enabled"}, {}, ["inject-namespace.fma.llm-d.ai"]),
        (
            {"fma.llm-d.ai/inject": "enabled"},
            {"fma.llm-d.ai/inject": "true"},
            ["inject-namespace.fma.llm-d.ai"],
        ),
        ({"fma.llm-d.ai/inject": "enabled"}, {"fma.llm-d.ai/inject": "false"}, []),
        ({}, {"fma.llm-d.ai/inject": "true"}, ["inject-pod.fma.llm-d.ai"]),
        (
            {"fma.llm-d.ai/inject": "disabled"},
            {"fma.llm-d.ai/inject": "true"},
            ["inject-pod.fma.llm-d.ai"],
        ),
        ({}, {}, []),
        ({}, {"fma.llm-d.ai/inject": "yes"}, []),
        ({"fma.llm-d.ai/inject": "enabled", "fma.llm-d.ai/webhook-namespace": "true"}, {}, []),
        ({"fma.llm-d.ai/webhook-namespace": "true"}, {"fma.llm-d.ai/inject": "true"}, []),
    ],
)
def test_each_opted_in_pod_is_mutated_exactly_once(
    namespace: dict[str, str], pod: dict[str, str], mutated_by: list[str]
) -> None:
    mutating, _ = build_webhook_configurations(SERVICE)
    matched = [
        hook["name"]
        for hook in mutating["webhooks"]
        if selector_matches(hook["namespaceSelector"], namespace)
        and selector_matches(hook["objectSelector"], pod)
    ]
    assert matched == mutated_by


def test_local_url_mode() -> None:
    mutating, validating = build_webhook_configurations(LOCAL)
    urls = [h["clientConfig"]["url"] for h in mutating["webhooks"] + validating["webhooks"]]
    assert urls == [
        "https://127.0.0.1:9443/mutate-pods",
        "https://127.0.0.1:9443/mutate-pods",
        "https://127.0.0.1:9443/validate-fma",
        "https://127.0.0.1:9443/validate-pods",
        "https://127.0.0.1:9443/validate-pods",
        "https://127.0.0.1:9443/validate-pods",
    ]
    assert all("service" not in h["clientConfig"] for h in mutating["webhooks"])


def test_names_and_timeouts_are_settings() -> None:
    settings = RegistrationSettings(
        ca_bundle=CA, url="https://127.0.0.1:1", configuration_name="rel-fma", timeout_seconds=2
    )
    mutating, validating = build_webhook_configurations(settings)
    assert mutating["metadata"]["name"] == validating["metadata"]["name"] == "rel-fma"
    assert {h["timeoutSeconds"] for h in mutating["webhooks"] + validating["webhooks"]} == {2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of service and url"),
        (
            {"url": "https://a", "service": ServiceReference(namespace="n", name="s")},
            "exactly one",
        ),
        ({"url": "http://127.0.0.1:9443"}, "must be https"),
        ({"url": "https://a", "timeout_seconds": 31}, "timeout_seconds"),
        ({"url": "https://a", "ca_bundle": b"not pem"}, "PEM"),
    ],
)
def test_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"ca_bundle": CA, **kwargs}
    with pytest.raises(ValueError, match=message):
        RegistrationSettings(**values)


def test_webhook_namespace_cannot_be_served() -> None:
    with pytest.raises(ValueError, match="cannot be both"):
        namespace_labels(webhook_namespace="fma", served_namespaces=["fma"])


def test_namespace_labels() -> None:
    assert namespace_labels(webhook_namespace="fma", served_namespaces=["a", "b"]) == {
        "a": {"fma.llm-d.ai/served": "true"},
        "b": {"fma.llm-d.ai/served": "true"},
        "fma": {"fma.llm-d.ai/webhook-namespace": "true"},
    }
    assert namespace_labels(webhook_namespace=None) == {}


def test_apply_labels_namespaces_then_creates_or_replaces_at_the_read_version() -> None:
    """The mutating configuration is new (create); the validating one exists at version 7 and
    its first replace loses a race (409), so it is read and replaced again."""
    mutating, validating = build_webhook_configurations(LOCAL)
    calls: list[tuple[str, str, Any]] = []
    lost_race = [True]
    admission = "/apis/admissionregistration.k8s.io/v1"

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.path, body))
        if request.method != "GET":
            assert request.url.params.get("fieldManager") == FIELD_MANAGER
        if request.method == "PATCH":
            assert request.headers["content-type"] == "application/merge-patch+json"
        if request.method == "GET" and "mutating" in request.url.path:
            return httpx.Response(404, json={"reason": "NotFound", "message": "not found"})
        if request.method == "GET":
            return httpx.Response(200, json={"metadata": {"resourceVersion": "7"}})
        if request.method == "PUT" and lost_race:
            lost_race.clear()
            return httpx.Response(409, json={"reason": "Conflict", "message": "modified"})
        return httpx.Response(200, json=body)

    async def main() -> None:
        http = httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(handler)
        )
        client = KubeClient(http, field_manager=FIELD_MANAGER)
        await apply_webhook_configurations(
            client, mutating, validating, webhook_namespace="fma", served_namespaces=["team"]
        )
        await client.aclose()

    asyncio.run(main())
    assert [(method, path) for method, path, _ in calls] == [
        ("PATCH", "/api/v1/namespaces/team"),
        ("PATCH", "/api/v1/namespaces/fma"),
        ("GET", f"{admission}/mutatingwebhookconfigurations/fma-webhook"),
        ("POST", f"{admission}/mutatingwebhookconfigurations"),
        ("GET", f"{admission}/validatingwebhookconfigurations/fma-webhook"),
        ("PUT", f"{admission}/validatingwebhookconfigurations/fma-webhook"),
        ("GET", f"{admission}/validatingwebhookconfigurations/fma-webhook"),
        ("PUT", f"{admission}/validatingwebhookconfigurations/fma-webhook"),
    ]
    assert calls[0][2] == {"metadata": {"labels": {"fma.llm-d.ai/served": "true"}}}
    assert calls[1][2] == {"metadata": {"labels": {"fma.llm-d.ai/webhook-namespace": "true"}}}
    assert calls[3][2] == mutating
    replaced = calls[-1][2]
    assert replaced["metadata"]["resourceVersion"] == "7"
    assert replaced["webhooks"] == validating["webhooks"]
