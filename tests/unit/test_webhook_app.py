"""The FastAPI app over a preloaded cache: routes, answers, metrics and failure handling.

The decisions themselves are tested with the pure functions (golden files, fuzzing); here we
check the shell around them: what reaches `mutate_pod`/the validators, what comes back on the
wire, what is counted, and what happens when something breaks.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from webhook import handlers as handlers_module
from webhook.app import create_app
from webhook.cache import WebhookCache
from webhook.handlers import Handlers, controller_of
from webhook.metrics import WebhookMetrics
from webhook.mutation import MutationSettings
from webhook.validation import ValidationSettings

CONTROLLER = "system:serviceaccount:fma-system:fma-fma-controllers"
OPTED_IN = {"fma.llm-d.ai/inject": "enabled"}


def vllm_pod(*, labels: dict[str, str] | None = None, owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": "chat-", "labels": labels or {"app": "chat"}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": "rs-uid",
                "controller": True,
            }
        ]
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.10.0",
        "command": ["vllm", "serve", "/models/tiny", "--port", "8000"],
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [container]},
    }


def isc(name: str, options: str, namespace: str = "team") -> dict[str, Any]:
    return {
        "apiVersion": "fma.llm-d.ai/v1alpha1",
        "kind": "InferenceServerConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "launcherConfigName": "lc",
            "modelServerConfig": {"port": 8000, "options": options},
        },
    }


def namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def review(
    obj: dict[str, Any] | None,
    *,
    ns: str = "team",
    operation: str = "CREATE",
    kind: tuple[str, str, str] = ("", "v1", "Pod"),
    resource: str = "pods",
    user: str = "alice",
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    group, version, kind_name = kind
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind_name},
        "resource": {"group": group, "version": version, "resource": resource},
        "namespace": ns,
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def make_handlers(cache: WebhookCache, metrics: WebhookMetrics | None = None) -> Handlers:
    return Handlers(
        cache=cache,
        mutation_settings=MutationSettings(requester_image="fma:test"),
        validation_settings=ValidationSettings(controller_usernames=frozenset({CONTROLLER})),
        metrics=metrics or WebhookMetrics(),
        owner_wait_s=2.0,
    )


@pytest.fixture
def cache() -> WebhookCache:
    return WebhookCache.from_objects(
        [
            namespace("team", OPTED_IN),
            namespace("plain", {}),
            isc("tiny", "--model /models/tiny"),
            {"kind": "LauncherConfig", "metadata": {"name": "lc", "namespace": "team"}},
        ]
    )


@pytest.fixture
def metrics() -> WebhookMetrics:
    return WebhookMetrics()


@pytest.fixture
def client(cache: WebhookCache, metrics: WebhookMetrics) -> Iterator[TestClient]:
    with TestClient(create_app(make_handlers(cache, metrics))) as test_client:
        yield test_client


def response_of(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["server-timing"].startswith("app;dur=")
    wire = answer.json()
    assert wire["apiVersion"] == "admission.k8s.io/v1"
    assert wire["kind"] == "AdmissionReview"
    assert wire["response"]["uid"] == body["request"]["uid"]
    response: dict[str, Any] = wire["response"]
    return response


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return ops


def annotations_of(ops: list[dict[str, Any]]) -> dict[str, str]:
    (op,) = [op for op in ops if op["path"] == "/metadata/annotations"]
    value: dict[str, str] = op["value"]
    return value


def sample(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_not_ready_until_the_caches_synced() -> None:
    with TestClient(create_app(make_handlers(WebhookCache()))) as unsynced:
        assert unsynced.get("/readyz").status_code == 503
        assert unsynced.get("/healthz").status_code == 200


def test_launcher_mode_when_an_equivalent_isc_exists(
    client: TestClient, metrics: WebhookMetrics
) -> None:
    pod = vllm_pod()
    pod["spec"]["containers"][0]["command"] = ["vllm", "serve", "/models/tiny"]
    response = response_of(client, "/mutate-pods", review(pod))
    assert response["allowed"] is True
    annotations = annotations_of(patch_of(response))
    assert annotations["dual-pods.llm-d.ai/inference-server-config"] == "tiny"
    assert sample(metrics, "fma_webhook_mutations_total", mode="launcher") == 1
    assert sample(metrics, "fma_webhook_requests_total", webhook="mutate-pods", operation="CREATE")
    assert sample(metrics, "fma_webhook_request_duration_seconds_count", webhook="mutate-pods")


def test_direct_mode_otherwise(client: TestClient, metrics: WebhookMetrics) -> None:
    pod = vllm_pod()
    pod["spec"]["containers"][0]["command"] += ["--max-model-len", "512"]
    response = response_of(client, "/mutate-pods", review(pod))
    annotations = annotations_of(patch_of(response))
    assert "dual-pods.llm-d.ai/server-patch" in annotations
    assert sample(metrics, "fma_webhook_mutations_total", mode="direct") == 1


def test_namespace_without_opt_in_is_left_alone(
    client: TestClient, metrics: WebhookMetrics
) -> None:
    response = response_of(client, "/mutate-pods", review(vllm_pod(), ns="plain"))
    assert response["allowed"] is True
    assert "patch" not in response
    assert sample(metrics, "fma_webhook_skips_total", reason="not_opted_in") == 1


def test_only_creates_are_mutated(client: TestClient) -> None:
    response = response_of(client, "/mutate-pods", review(vllm_pod(), operation="UPDATE"))
    assert response == {"uid": response["uid"], "allowed": True}


def test_owner_selector_arriving_late_is_waited_for(cache: WebhookCache) -> None:
    """The ReplicaSet's watch event may trail its first Pod's admission by a moment."""
    pod = vllm_pod(labels={"app": "chat", "team": "a"}, owner="chat-rs")
    pod["spec"]["containers"][0]["command"] += ["--max-model-len", "512"]
    rs = {
        "kind": "ReplicaSet",
        "metadata": {"name": "chat-rs", "namespace": "team", "uid": "rs-uid"},
        "spec": {"selector": {"matchLabels": {"app": "chat"}}},
    }
    timer = threading.Timer(0.1, cache.owners["ReplicaSet"].upsert, args=(rs,))
    with TestClient(create_app(make_handlers(cache))) as client:
        timer.start()
        response = response_of(client, "/mutate-pods", review(pod))
    patch = annotations_of(patch_of(response))["dual-pods.llm-d.ai/server-patch"]
    assert "app: null" in patch
    assert "team: null" not in patch, "only the selector's labels are dropped"


def test_owner_never_seen_drops_all_labels(cache: WebhookCache) -> None:
    pod = vllm_pod(labels={"app": "chat", "team": "a"}, owner="ghost")
    pod["spec"]["containers"][0]["command"] += ["--max-model-len", "512"]
    handlers = dataclasses.replace(make_handlers(cache), owner_wait_s=0.05)
    with TestClient(create_app(handlers)) as client:
        response = response_of(client, "/mutate-pods", review(pod))
    patch = annotations_of(patch_of(response))["dual-pods.llm-d.ai/server-patch"]
    assert "app: null" in patch
    assert "team: null" in patch


def test_owners_of_unwatched_kinds_are_not_waited_for(cache: WebhookCache) -> None:
    pod = vllm_pod(labels={"app": "chat"}, owner="job")
    pod["metadata"]["ownerReferences"][0]["kind"] = "Job"
    pod["spec"]["containers"][0]["command"] += ["--max-model-len", "512"]
    with TestClient(create_app(make_handlers(cache))) as client:
        started = time.monotonic()
        response = response_of(client, "/mutate-pods", review(pod))
        assert time.monotonic() - started < 1.0, "owner_wait_s is 2 s in these tests"
    assert "app: null" in annotations_of(patch_of(response))["dual-pods.llm-d.ai/server-patch"]


def test_invalid_isc_is_denied_naming_the_field(
    client: TestClient, metrics: WebhookMetrics
) -> None:
    bad = isc("bad", "--model /m --port 9000")
    body = review(
        bad,
        kind=("fma.llm-d.ai", "v1alpha1", "InferenceServerConfig"),
        resource="inferenceserverconfigs",
    )
    response = response_of(client, "/validate-fma", body)
    assert response["allowed"] is False
    assert "spec.modelServerConfig.options" in response["status"]["message"]
    assert (
        sample(
            metrics,
            "fma_webhook_denials_total",
            webhook="validate-fma",
            resource="inferenceserverconfigs",
        )
        == 1
    )


def test_forged_controller_annotation_denied_for_users_allowed_for_controllers(
    client: TestClient,
) -> None:
    pod = vllm_pod()
    pod["metadata"]["annotations"] = {"dual-pods.llm-d.ai/requester": "uid name"}
    denied = response_of(client, "/validate-pods", review(pod, user="alice"))
    assert denied["allowed"] is False
    assert "dual-pods.llm-d.ai/requester" in denied["status"]["message"]
    allowed = response_of(client, "/validate-pods", review(pod, user=CONTROLLER))
    assert allowed["allowed"] is True


def test_a_body_that_is_no_review_gets_400(client: TestClient, metrics: WebhookMetrics) -> None:
    answer = client.post("/mutate-pods", content=b'{"kind": "Pod"}')
    assert answer.status_code == 400
    assert "AdmissionReview" in answer.json()["error"]
    assert sample(metrics, "fma_webhook_errors_total", webhook="mutate-pods", stage="decode") == 1


def test_a_crashing_mutation_admits_the_pod_unchanged(
    client: TestClient, metrics: WebhookMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(handlers_module, "mutate_pod", boom)
    response = response_of(client, "/mutate-pods", review(vllm_pod()))
    assert response["allowed"] is True
    assert "patch" not in response
    assert "internal error" in response["warnings"][0]
    assert sample(metrics, "fma_webhook_errors_total", webhook="mutate-pods", stage="handler") == 1


def test_a_crashing_validation_denies(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(handlers_module, "validate_pod", boom)
    response = response_of(client, "/validate-pods", review(vllm_pod()))
    assert response["allowed"] is False
    assert response["status"]["code"] == 500


def test_metrics_are_exported(client: TestClient) -> None:
    response_of(client, "/mutate-pods", review(vllm_pod()))
    text = client.get("/metrics").text
    for name in (
        "fma_webhook_requests_total",
        "fma_webhook_mutations_total",
        "fma_webhook_request_duration_seconds_bucket",
    ):
        assert name in text


def test_controller_of_reads_the_controlling_reference() -> None:
    assert controller_of(vllm_pod(owner="rs")) is not None
    assert controller_of(vllm_pod()) is None
    assert controller_of({"metadata": {"ownerReferences": "junk"}}) is None
