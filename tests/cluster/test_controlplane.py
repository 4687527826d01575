"""The local control plane behaves like a real one where our controllers depend on it."""

from __future__ import annotations

import time

import kubernetes.client
import pytest
from kubernetes.client.rest import ApiException

from localcluster.controlplane import LocalCluster
from tests.waiting import eventually


def _deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }


def test_rbac_decides_for_certificate_identities(
    cluster: LocalCluster, namespace: str, api_client: kubernetes.client.ApiClient
) -> None:
    alice = kubernetes.config.new_client_from_config(
        config_file=str(cluster.kubeconfig_for("alice"))
    )
    with alice:
        with pytest.raises(ApiException) as denied:
            kubernetes.client.CoreV1Api(alice).list_namespaced_pod(namespace)
        assert denied.value.status == 403
        kubernetes.client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "alice-view"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
                ],
            },
        )
        pods = kubernetes.client.CoreV1Api(alice).list_namespaced_pod(namespace)
        assert pods.items == []


def test_stale_resource_version_is_a_conflict(
    core_v1: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    created = core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm"}, "data": {"k": "1"}}
    )
    stale = created.metadata.resource_version
    core_v1.patch_namespaced_config_map("cm", namespace, {"data": {"k": "2"}})
    with pytest.raises(ApiException) as conflict:
        core_v1.replace_namespaced_config_map(
            "cm",
            namespace,
            {"metadata": {"name": "cm", "resourceVersion": stale}, "data": {"k": "3"}},
        )
    assert conflict.value.status == 409


def test_deployment_makes_pods_and_garbage_collection_removes_them(
    api_client: kubernetes.client.ApiClient, core_v1: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", 2))
    eventually(
        "the ReplicaSet controller to create 2 Pods",
        lambda: len(core_v1.list_namespaced_pod(namespace).items) == 2,
    )
    apps.delete_namespaced_deployment("web", namespace, body={"propagationPolicy": "Background"})
    eventually(
        "the garbage collector to delete the ReplicaSet and its Pods",
        lambda: (
            not core_v1.list_namespaced_pod(namespace).items
            and not apps.list_namespaced_replica_set(namespace).items
        ),
    )


def test_deleted_namespace_is_fully_gone(
    api_client: kubernetes.client.ApiClient, core_v1: kubernetes.client.CoreV1Api
) -> None:
    name = f"doomed-{int(time.time() * 1000) % 100000}"
    core_v1.create_namespace({"metadata": {"name": name}})
    eventually(
        "the default ServiceAccount",
        lambda: bool(core_v1.list_namespaced_service_account(name).items),
    )
    kubernetes.client.AppsV1Api(api_client).create_namespaced_deployment(
        name, _deployment("web", 1)
    )
    core_v1.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    eventually("a Pod", lambda: bool(core_v1.list_namespaced_pod(name).items))

    core_v1.delete_namespace(name)

    def gone() -> bool:
        try:
            core_v1.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    eventually(f"namespace {name} to be deleted with everything in it", gone)
