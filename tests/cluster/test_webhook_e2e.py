"""Issue 4's acceptance on the real control plane: the webhook server runs as its own process
over TLS, registered by `fma-webhook register`, and `kubectl` meets it as a user would.

One server serves the whole module (see `webhook_server.Webhook`); each test works in
namespaces of its own. The test that stops the server restarts it before it returns.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.rest import ApiException

from localcluster.controlplane import LocalCluster
from localcluster.fma.webhook_process import Webhook, apply_json, kubectl_as
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("crds_installed")

INJECT = "fma.llm-d.ai/inject"
SERVED = "fma.llm-d.ai/served"
MUTATED = "fma.llm-d.ai/mutated"
ISC_ANNOTATION = "dual-pods.llm-d.ai/inference-server-config"
SERVER_PATCH = "dual-pods.llm-d.ai/server-patch"
REQUESTER = "dual-pods.llm-d.ai/requester"
DUAL = "dual-pods.llm-d.ai/dual"
LC_NAME = "dual-pods.llm-d.ai/launcher-config-name"
FMA = "fma.llm-d.ai/v1alpha1"


@pytest.fixture(scope="module")
def webhook(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    running = Webhook(cluster, tmp_path_factory.mktemp("webhook"))
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
def admin(cluster: LocalCluster) -> Path:
    return cluster.kubeconfig


def label(cluster: LocalCluster, namespace: str, *labels: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "--overwrite", *labels)


def vllm_pod(name: str, *extra_args: str) -> dict[str, Any]:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.10.0",
        "command": ["vllm", "serve", "/models/tiny", "--port", "8000", *extra_args],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def plain_pod(
    name: str, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": annotations or {}, "labels": labels or {}}
    container = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [container]},
    }


def isc(name: str, options: str) -> dict[str, Any]:
    return {
        "apiVersion": FMA,
        "kind": "InferenceServerConfig",
        "metadata": {"name": name},
        "spec": {
            "launcherConfigName": "launchers",
            "modelServerConfig": {"port": 8000, "options": options},
        },
    }


def created(kubeconfig: Path, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    result = apply_json(kubeconfig, namespace, obj, "create")
    assert result.returncode == 0, result.stderr
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


def refused(kubeconfig: Path, namespace: str, obj: dict[str, Any], *verb: str) -> str:
    result = apply_json(kubeconfig, namespace, obj, *(verb or ("create",)))
    assert result.returncode != 0, f"expected a refusal, got {result.stdout[:500]}"
    return result.stderr


def wait_for_mode(admin: Path, namespace: str, pod: dict[str, Any], annotation: str) -> None:
    """Until a server-side dry run shows the mutation we expect.

    The webhook learns namespace labels and ISCs from its watches, a moment after they are
    written; a dry run goes through the same admission chain and stores nothing.
    """

    def mutated_as_expected() -> bool:
        result = apply_json(admin, namespace, pod, "create", "--dry-run=server")
        annotations = json.loads(result.stdout or "{}").get("metadata", {}).get("annotations")
        return result.returncode == 0 and annotation in (annotations or {})

    eventually(f"the webhook to add {annotation} (dry run)", mutated_as_expected, timeout=30)


def test_opted_in_pod_becomes_a_launcher_mode_requester(
    webhook: Webhook, cluster: LocalCluster, admin: Path, namespace: str
) -> None:
    label(cluster, namespace, f"{INJECT}=enabled")
    created(admin, namespace, isc("tiny", "--model /models/tiny"))
    pod = vllm_pod("chat")
    wait_for_mode(admin, namespace, pod, ISC_ANNOTATION)
    stored = created(admin, namespace, pod)
    annotations = stored["metadata"]["annotations"]
    assert annotations[MUTATED] == "v1"
    assert annotations[ISC_ANNOTATION] == "tiny"
    assert SERVER_PATCH not in annotations
    assert json.loads(annotations["fma.llm-d.ai/original-container"])["name"] == "vllm"
    (container,) = stored["spec"]["containers"]
    assert container["name"] == "inference-server"
    assert container["image"] == "ghcr.io/llm-d/fma:e2e"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert webhook.metric("fma_webhook_mutations_total", mode="launcher") >= 1


def test_opted_in_pod_without_matching_isc_becomes_a_direct_mode_requester(
    webhook: Webhook, cluster: LocalCluster, admin: Path, namespace: str
) -> None:
    label(cluster, namespace, f"{INJECT}=enabled")
    pod = vllm_pod("chat", "--max-model-len", "2048")
    wait_for_mode(admin, namespace, pod, SERVER_PATCH)
    stored = created(admin, namespace, pod)
    annotations = stored["metadata"]["annotations"]
    assert ISC_ANNOTATION not in annotations
    assert "--enable-sleep-mode" in annotations[SERVER_PATCH]
    assert "VLLM_SERVER_DEV_MODE" in annotations[SERVER_PATCH]
    assert stored["spec"]["containers"][0]["name"] == "inference-server"


def test_pod_in_a_namespace_without_opt_in_is_stored_unchanged(
    webhook: Webhook, admin: Path, namespace: str
) -> None:
    pod = vllm_pod("chat")
    stored = created(admin, namespace, pod)
    assert MUTATED not in (stored["metadata"].get("annotations") or {})
    (container,) = stored["spec"]["containers"]
    assert container["name"] == "vllm"
    assert container["command"] == pod["spec"]["containers"][0]["command"]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (isc("bad", "--model /models/tiny --port 9000"), "spec.modelServerConfig.options"),
        (
            {
                "apiVersion": FMA,
                "kind": "LauncherConfig",
                "metadata": {"name": "bad"},
                "spec": {
                    "maxInstances": 2,
                    "podTemplate": {
                        "spec": {"containers": [{"name": "other", "image": "fma:latest"}]}
                    },
                },
            },
            "spec.podTemplate.spec.containers",
        ),
        (
            {
                "apiVersion": FMA,
                "kind": "LauncherPopulationPolicy",
                "metadata": {"name": "bad"},
                "spec": {
                    "enhancedNodeSelector": {
                        "labelSelector": {
                            "matchExpressions": [{"key": "gpu", "operator": "In", "values": []}]
                        }
                    },
                    "countForLauncher": [{"launcherConfigName": "lc", "launcherCount": 1}],
                },
            },
            "spec.enhancedNodeSelector.labelSelector.matchExpressions[0].values",
        ),
    ],
    ids=["isc", "lc", "lpp"],
)
def test_invalid_custom_resources_are_rejected_naming_the_field(
    webhook: Webhook,
    api_client: Any,
    cluster: LocalCluster,
    namespace: str,
    obj: dict[str, Any],
    field: str,
) -> None:
    plural = {
        "InferenceServerConfig": "inferenceserverconfigs",
        "LauncherConfig": "launcherconfigs",
        "LauncherPopulationPolicy": "launcherpopulationpolicies",
    }
    api = kubernetes.client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as denied:
        api.create_namespaced_custom_object(
            "fma.llm-d.ai", "v1alpha1", namespace, plural[obj["kind"]], obj
        )
    message = json.loads(denied.value.body)["message"]
    assert "denied the request" in message
    assert field in message
    # kubectl prints a 422 only through `details.causes`; the user must see the field there too.
    with pytest.raises(subprocess.CalledProcessError) as refused:
        cluster.kubectl("create", "-n", namespace, "-f", "-", input_text=json.dumps(obj))
    assert field in refused.value.stderr


def grant_edit(cluster: LocalCluster, namespace: str, webhook: Webhook) -> tuple[Path, Path]:
    """Kubeconfigs for alice (edit rights in `namespace`) and the controllers (the same)."""
    cluster.kubectl(
        "create", "rolebinding", "alice-edit", "-n", namespace, "--clusterrole=edit", "--user=alice"
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "controllers-edit",
        "-n",
        namespace,
        "--clusterrole=edit",
        f"--serviceaccount={webhook.namespace}:fma-fma-controllers",
    )
    return cluster.kubeconfig_for("alice"), webhook.controller_kubeconfig()


@pytest.fixture
def guarded(cluster: LocalCluster, namespace: str, webhook: Webhook) -> tuple[Path, Path]:
    """A namespace fma serves; kubeconfigs for alice (edit rights) and the controllers."""
    label(cluster, namespace, f"{SERVED}=true")
    return grant_edit(cluster, namespace, webhook)


def test_forging_controller_annotations_is_denied_to_users_allowed_to_controllers(
    guarded: tuple[Path, Path], namespace: str
) -> None:
    alice, controllers = guarded
    forged = {REQUESTER: "0f7c2a3e-0000-4000-8000-000000000000 chat"}
    message = refused(alice, namespace, plain_pod("forged", forged))
    assert "denied the request" in message
    assert REQUESTER in message
    created(alice, namespace, plain_pod("ordinary"))
    update = kubectl_as(
        alice, "annotate", "pod", "ordinary", "-n", namespace, f"{REQUESTER}=uid ordinary"
    )
    assert update.returncode != 0
    assert "denied the request" in update.stderr
    # The controllers may do both.
    stored = created(controllers, namespace, plain_pod("bound", forged))
    assert stored["metadata"]["annotations"][REQUESTER] == forged[REQUESTER]
    update = kubectl_as(
        controllers, "annotate", "pod", "ordinary", "-n", namespace, f"{REQUESTER}=uid ordinary"
    )
    assert update.returncode == 0, update.stderr


def test_fma_pods_are_guarded_outside_served_namespaces_and_ordinary_pods_skip_the_webhook(
    webhook: Webhook, cluster: LocalCluster, namespace: str
) -> None:
    """Issue 13: no `served` label here, yet a bound requester and a launcher keep their
    controller-owned keys; ordinary Pods never reach the webhook (it is down: still written)."""
    alice, controllers = grant_edit(cluster, namespace, webhook)
    bound = plain_pod("bound", {ISC_ANNOTATION: "tiny"}, {DUAL: "launcher-x"})
    created(controllers, namespace, bound)  # the controllers bind it
    for change in (
        ("annotate", "--overwrite", "pod", "bound", f"{ISC_ANNOTATION}=other"),
        ("label", "pod", "bound", f"{DUAL}-"),
        ("annotate", "pod", "bound", f"{REQUESTER}=uid other"),
    ):
        denied = kubectl_as(alice, *change, "-n", namespace)
        assert denied.returncode != 0, change
        assert "denied the request" in denied.stderr
    # Posing as a launcher or a bound Pod from birth is denied too.
    message = refused(alice, namespace, plain_pod("fake-launcher", labels={LC_NAME: "lc"}))
    assert "denied the request" in message
    assert LC_NAME in message
    # Unrelated edits of the bound Pod pass the guard; the controllers may change their keys.
    allowed = kubectl_as(alice, "label", "pod", "bound", "-n", namespace, "team=ml")
    assert allowed.returncode == 0, allowed.stderr
    allowed = kubectl_as(
        controllers, "label", "--overwrite", "pod", "bound", "-n", namespace, f"{DUAL}=launcher-y"
    )
    assert allowed.returncode == 0, allowed.stderr
    created(alice, namespace, plain_pod("ordinary"))
    with webhook.stopped():
        # Ordinary Pods: created and updated without the webhook...
        created(alice, namespace, plain_pod("ordinary-2"))
        update = kubectl_as(alice, "label", "pod", "ordinary", "-n", namespace, "team=ml")
        assert update.returncode == 0, update.stderr
        # ...while fma's labelled Pods fail closed.
        update = kubectl_as(alice, "label", "pod", "bound", "-n", namespace, "tier=gold")
        assert update.returncode != 0
        assert "failed calling webhook" in update.stderr


def test_with_the_webhook_down_pods_are_created_and_cr_writes_refused(
    webhook: Webhook, cluster: LocalCluster, admin: Path, namespace: str
) -> None:
    label(cluster, namespace, f"{INJECT}=enabled")
    wait_for_mode(admin, namespace, vllm_pod("probe"), SERVER_PATCH)
    with webhook.stopped():
        stored = created(admin, namespace, vllm_pod("chat"))
        assert MUTATED not in (stored["metadata"].get("annotations") or {})
        assert stored["spec"]["containers"][0]["name"] == "vllm"
        message = refused(admin, namespace, isc(f"down-{secrets.token_hex(2)}", "--model /m"))
        assert "InternalError" in message
        assert "failed calling webhook" in message
    # Back up: the same write goes through.
    created(admin, namespace, isc("up", "--model /m"))


def test_the_webhook_reads_only_what_its_rbac_allows(webhook: Webhook, api_client: Any) -> None:
    """Its watches run as a user holding list/watch on five resources, nothing else; the
    caches synced (it is ready), so that RBAC is enough."""
    assert webhook.ready()
    assert webhook.metric("fma_webhook_cache_synced") == 1
    core = kubernetes.client.CoreV1Api(api_client)
    assert (
        core.read_namespace(webhook.namespace).metadata.labels.get("fma.llm-d.ai/webhook-namespace")
        == "true"
    )
