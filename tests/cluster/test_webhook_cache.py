"""The watch caches against the real apiserver: list, watch events, prompt stop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import kubernetes.client
import pytest

from localcluster.controlplane import LocalCluster
from tests.waiting import eventually
from webhook.cache import WebhookCache, start_cache

pytestmark = pytest.mark.usefixtures("crds_installed")


@pytest.fixture
def cache(cluster: LocalCluster) -> Iterator[WebhookCache]:
    api = cluster.api_client()
    running = start_cache(api, watch_timeout_s=300)
    try:
        assert running.wait_synced(30), "the caches never listed"
        yield running
    finally:
        running.stop(timeout=5)
        api.close()


def test_cache_follows_namespaces_sets_and_iscs(
    cache: WebhookCache, cluster: LocalCluster, namespace: str
) -> None:
    eventually("the namespace in the cache", lambda: cache.namespace_labels(namespace) is not None)
    cluster.kubectl("label", "namespace", namespace, "fma.llm-d.ai/inject=enabled")
    eventually(
        "the opt-in label in the cache",
        lambda: (cache.namespace_labels(namespace) or {}).get("fma.llm-d.ai/inject") == "enabled",
    )
    cluster.kubectl(
        "create", "deployment", "chat", "-n", namespace, "--image=vllm/vllm-openai:v0.10.0"
    )
    eventually(
        "the Deployment's ReplicaSet",
        lambda: bool(cache.owners["ReplicaSet"].in_namespace(namespace)),
    )
    (owner,) = cache.owners["ReplicaSet"].in_namespace(namespace).values()
    assert owner.selector["matchLabels"]["app"] == "chat"
    assert owner.uid
    isc = (
        "apiVersion: fma.llm-d.ai/v1alpha1\nkind: InferenceServerConfig\nmetadata: {name: tiny}\n"
        "spec: {launcherConfigName: lc, modelServerConfig: {port: 8000, options: --model /m}}\n"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=isc)
    eventually(
        "the ISC in the cache", lambda: [i.metadata.name for i in cache.iscs(namespace)] == ["tiny"]
    )
    cluster.kubectl("delete", "-n", namespace, "isc", "tiny")
    eventually("the ISC gone from the cache", lambda: not cache.iscs(namespace))


def test_stop_ends_quiet_watches_promptly(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    running = start_cache(api, watch_timeout_s=300)
    try:
        assert running.wait_synced(30)
        started = time.monotonic()
        running.stop(timeout=5)
        assert time.monotonic() - started < 2, "a parked watch read did not end on stop"
        core = kubernetes.client.CoreV1Api(api)
        assert core.list_namespace(limit=1).items, "the client still works after stop"
    finally:
        api.close()
