"""The watch caches against the real apiserver: list, watch events, prompt stop.

Each test runs its own event loop (the webhook runs the caches on uvicorn's); the cluster is
changed with `kubectl` from a worker thread, so the informers keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kube import ConnectionSettings
from localcluster.controlplane import LocalCluster
from webhook.cache import WebhookCache, cluster_cache

pytestmark = pytest.mark.usefixtures("crds_installed")


@asynccontextmanager
async def synced_cache(cluster: LocalCluster) -> AsyncIterator[WebhookCache]:
    cache = cluster_cache(ConnectionSettings(kubeconfig=cluster.kubeconfig), watch_timeout_s=300)
    async with cache.running():
        assert await cache.wait_synced(30), "the caches never listed"
        yield cache


async def eventually(what: str, check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_cache_follows_namespaces_sets_and_iscs(cluster: LocalCluster, namespace: str) -> None:
    async def kubectl(*args: str, **kwargs: Any) -> None:
        await asyncio.to_thread(cluster.kubectl, *args, **kwargs)

    async def main() -> None:
        async with synced_cache(cluster) as cache:
            await eventually(
                "the namespace in the cache", lambda: cache.namespace_labels(namespace) is not None
            )
            await kubectl("label", "namespace", namespace, "fma.llm-d.ai/inject=enabled")
            await eventually(
                "the opt-in label in the cache",
                lambda: (
                    (cache.namespace_labels(namespace) or {}).get("fma.llm-d.ai/inject")
                    == "enabled"
                ),
            )
            await kubectl(
                "create", "deployment", "chat", "-n", namespace, "--image=vllm/vllm-openai:v0.10.0"
            )
            await eventually(
                "the Deployment's ReplicaSet",
                lambda: bool(cache.owners["ReplicaSet"].in_namespace(namespace)),
            )
            (owner,) = cache.owners["ReplicaSet"].in_namespace(namespace).values()
            assert owner.selector["matchLabels"]["app"] == "chat"
            assert owner.uid
            (name,) = cache.owners["ReplicaSet"].in_namespace(namespace)
            stored = cache.informers["ReplicaSet"].store.get(f"{namespace}/{name}")
            assert stored is not None and set(stored) == {"metadata", "spec"}
            assert "template" not in stored["spec"], "the informer keeps only the selector"
            isc = (
                "apiVersion: fma.llm-d.ai/v1alpha1\nkind: InferenceServerConfig\n"
                "metadata: {name: tiny}\n"
                "spec: {launcherConfigName: lc,\n"
                "       modelServerConfig: {port: 8000, options: --model /m}}\n"
            )
            await kubectl("apply", "-n", namespace, "-f", "-", input_text=isc)
            await eventually(
                "the ISC in the cache",
                lambda: [i.metadata.name for i in cache.iscs(namespace)] == ["tiny"],
            )
            await kubectl("delete", "-n", namespace, "isc", "tiny")
            await eventually("the ISC gone from the cache", lambda: not cache.iscs(namespace))

    asyncio.run(main())


def test_stop_ends_quiet_watches_promptly(cluster: LocalCluster) -> None:
    async def main() -> None:
        cache = cluster_cache(
            ConnectionSettings(kubeconfig=cluster.kubeconfig), watch_timeout_s=300
        )
        running = cache.running()
        await running.__aenter__()
        assert await cache.wait_synced(30)
        await asyncio.sleep(0.5)  # every watch open and quiet
        started = time.monotonic()
        await running.__aexit__(None, None, None)
        assert time.monotonic() - started < 2, "a parked watch did not end on stop"
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"tasks left behind: {others}"

    asyncio.run(main())
