"""A populator wired to the in-memory apiserver, on virtual time: objects, a kubelet stand-in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from controller.core import InstanceView
from controller.observability import ControllerMetrics
from controller.populator import COMPONENT, Populator, Settings
from kube import (
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
    NODES,
    PODS,
    EventRecorder,
    EventSettings,
    Informer,
    InformerSettings,
    JsonObject,
    KubeClient,
    KubeEventSink,
    run_informers,
)
from tests.unit.fake_apiserver import FakeApiserver, rfc3339

NS = "ns"
BASE = 1_700_000_000.0
FMA = "fma.llm-d.ai/v1alpha1"
COMPONENT_LABEL = "app.kubernetes.io/component"
LC_LABEL = "dual-pods.llm-d.ai/launcher-config-name"
NODE_LABEL = "dual-pods.llm-d.ai/node-name"
STUCK = "dual-pods.llm-d.ai/launcher-stuck"
REQUESTER = "dual-pods.llm-d.ai/requester"
TEMPLATE_HASH = "dual-pods.llm-d.ai/launcher-populator-template-hash"


def lc(
    name: str = "lc1", image: str = "launcher:1", container: str = "inference-server"
) -> JsonObject:
    spec = {"containers": [{"name": container, "image": image}]}
    return {
        "apiVersion": FMA,
        "kind": "LauncherConfig",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"maxInstances": 2, "podTemplate": {"spec": spec}},
    }


def lpp(name: str, counts: Mapping[str, int], **match_labels: str) -> JsonObject:
    return {
        "apiVersion": FMA,
        "kind": "LauncherPopulationPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "enhancedNodeSelector": {"labelSelector": {"matchLabels": match_labels}},
            "countForLauncher": [
                {"launcherConfigName": k, "launcherCount": v} for k, v in counts.items()
            ],
        },
    }


def node(name: str, **labels: str) -> JsonObject:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "status": {"allocatable": {"nvidia.com/gpu": "2", "cpu": "8"}},
    }


class FakeInstances:
    """An `InstanceSource` the test fills: Pod UID → instances (None: unknown); default none."""

    def __init__(self) -> None:
        self.by_uid: dict[str, tuple[InstanceView, ...] | None] = {}

    def instances(self, pod_uid: str) -> tuple[InstanceView, ...] | None:
        return self.by_uid.get(pod_uid, ())


class World:
    """The fake apiserver, informers over it, and a populator; `async with world.running()`."""

    def __init__(self, *, auto_ready: bool = True, **settings: Any) -> None:
        self.fake = FakeApiserver(self.wall)
        self.auto_ready = auto_ready
        if auto_ready:
            self.fake.on_create = self._kubelet
        fast = InformerSettings(watch_timeout_s=300)
        kinds = (PODS, NODES, LAUNCHER_CONFIGS, LAUNCHER_POPULATION_POLICIES)
        self.informers = {
            kind.plural: Informer(self.fake.source(kind, NS), settings=fast) for kind in kinds
        }
        self.client = KubeClient(self.fake.client())
        self.metrics = ControllerMetrics(CollectorRegistry())
        self.events = EventRecorder(
            KubeEventSink(self.client), EventSettings(component=COMPONENT, instance="test")
        )
        self.instances = FakeInstances()
        self.settings = Settings(namespace=NS, **settings)
        self.populator = Populator(
            self.client,
            self.informers,
            self.settings,
            self.metrics,
            self.events,
            instances=self.instances,
            wall_clock=self.wall,
        )

    @staticmethod
    def wall() -> float:
        return BASE + asyncio.get_running_loop().time()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[World]:
        tasks = [
            asyncio.create_task(run_informers(self.informers)),
            asyncio.create_task(self.events.run()),
            asyncio.create_task(self.populator.run()),
        ]
        try:
            await asyncio.sleep(0.1)
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()

    # ----- reading the world ---------------------------------------------------------------------

    def launchers(
        self, lc_name: str | None = None, node_name: str | None = None
    ) -> list[JsonObject]:
        return sorted(
            (
                pod
                for pod in self.fake.all("pods")
                if (labels := pod["metadata"].get("labels") or {}).get(COMPONENT_LABEL)
                == "launcher"
                and (lc_name is None or labels.get(LC_LABEL) == lc_name)
                and (node_name is None or labels.get(NODE_LABEL) == node_name)
            ),
            key=lambda pod: pod["metadata"]["name"],
        )

    def names(self, lc_name: str | None = None, node_name: str | None = None) -> list[str]:
        return [pod["metadata"]["name"] for pod in self.launchers(lc_name, node_name)]

    def count(self, lc_name: str, phase: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "fma_launcher_pod_count", {"lcfg_name": lc_name, "phase": phase}
        )

    def status(self, plural: str, name: str) -> JsonObject:
        return dict(self.fake.get(plural, name, NS).get("status") or {})

    def writes(self) -> list[tuple[str, str]]:
        return [
            (m, p)
            for m, p in self.fake.requests
            if m in ("POST", "DELETE", "PATCH") and "/events" not in p
        ]

    # ----- playing the kubelet -------------------------------------------------------------------

    def _kubelet(self, plural: str, obj: JsonObject) -> None:
        if plural == "pods":
            make_ready(obj, self.wall())

    def bind(self, name: str, requester: str = "req-uid req") -> None:
        """Mark a launcher bound (as the dual-pods controller does)."""
        self.fake.update(
            "pods",
            name,
            lambda pod: (
                pod["metadata"].setdefault("annotations", {}).update({REQUESTER: requester})
            ),
            NS,
        )


def make_ready(pod: JsonObject, now: float, *, scheduled: bool = True, ready: bool = True) -> None:
    spec = pod.setdefault("spec", {})
    conditions = []
    if scheduled:
        spec["nodeName"] = spec.get("nodeSelector", {}).get("kubernetes.io/hostname", "")
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(now)}
        )
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    pod["status"] = {"phase": "Running" if scheduled else "Pending", "conditions": conditions}
    if scheduled:
        pod["status"]["podIP"] = "10.0.0.1"


async def settle(seconds: float = 0.5) -> None:
    """Let the virtual clock run `seconds`, with everything due meanwhile handled."""
    await asyncio.sleep(seconds)
