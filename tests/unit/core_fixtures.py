"""Plain-object builders for the decision-core tests: requesters, launchers, snapshots."""

from __future__ import annotations

from typing import Any

from controller.core import (
    Action,
    InstanceView,
    LauncherView,
    NodeView,
    PodView,
    ServerMemory,
    ServerSnapshot,
    Settings,
    build_launcher_template,
    decide_server,
    instance_id,
    vllm_config,
)
from crds.models import InferenceServerConfig, LauncherConfig, ModelServerConfig

NOW = 1_000_000.0
NODE = "n1"
GPUS = ("GPU-0",)
ISC_NAME = "isc1"
LC_NAME = "lc1"
MSC = ModelServerConfig(port=8005, options="--model m --enable-sleep-mode", labels={"route": "yes"})
ISC = InferenceServerConfig.model_validate(
    {
        "metadata": {"name": ISC_NAME},
        "spec": {"modelServerConfig": MSC.to_wire(), "launcherConfigName": LC_NAME},
    }
)
LC = LauncherConfig.model_validate(
    {
        "metadata": {"name": LC_NAME, "namespace": "ns", "uid": "lc-uid"},
        "spec": {
            "maxInstances": 2,
            "podTemplate": {
                "spec": {"containers": [{"name": "inference-server", "image": "launcher"}]}
            },
        },
    }
)
TEMPLATE = build_launcher_template(LC)
CONFIG_HASH = TEMPLATE.config_hash(NODE)
IID = instance_id(MSC, GPUS)
VCFG = vllm_config(ISC_NAME, MSC, GPUS)


def requester(**overrides: Any) -> PodView:
    values: dict[str, Any] = {
        "name": "req",
        "uid": "req-uid",
        "resource_version": "10",
        "annotations": {"dual-pods.llm-d.ai/inference-server-config": ISC_NAME},
        "node_name": NODE,
        "ip": "10.0.0.1",
        "phase": "Running",
        "created_at": NOW - 100,
        "server_running": True,
        "server_started_at": NOW - 30,
    }
    values.update(overrides)
    return PodView(**values)


def launcher_pod(name: str = "launcher-a", **overrides: Any) -> PodView:
    values: dict[str, Any] = {
        "name": name,
        "uid": f"{name}-uid",
        "resource_version": "5",
        "labels": {"dual-pods.llm-d.ai/launcher-config-name": LC_NAME},
        "annotations": {"dual-pods.llm-d.ai/launcher-config-hash": CONFIG_HASH},
        "node_name": NODE,
        "pinned_node": NODE,
        "ip": "10.0.1.1",
        "phase": "Running",
        "ready": True,
        "created_at": NOW - 1000,
        "server_running": True,
    }
    values.update(overrides)
    return PodView(**values)


def bound_launcher_pod(name: str = "launcher-a", **overrides: Any) -> PodView:
    from controller.core._choose import Desired
    from controller.core._routing import RoutingMetadata

    want = Desired(ISC_NAME, IID, 8005, VCFG, RoutingMetadata({"route": "yes"}, {}))
    annotations = {
        "dual-pods.llm-d.ai/launcher-config-hash": CONFIG_HASH,
        "dual-pods.llm-d.ai/requester": "req-uid req",
        **want.bind_annotations(),
    }
    values: dict[str, Any] = {
        "annotations": annotations,
        "labels": {
            "dual-pods.llm-d.ai/launcher-config-name": LC_NAME,
            "dual-pods.llm-d.ai/dual": "req",
        },
        "finalizers": ("dual-pods.llm-d.ai/provider",),
    }
    values.update(overrides)
    return launcher_pod(name, **values)


def instance(iid: str = IID, **overrides: Any) -> InstanceView:
    values: dict[str, Any] = {
        "id": iid,
        "phase": "sleeping",
        "isc_name": ISC_NAME,
        "port": 8005,
        "gpu_uuids": GPUS,
        "created_at": NOW - 500,
        "last_used": NOW - 400,
    }
    values.update(overrides)
    return InstanceView(**values)


def snapshot(**overrides: Any) -> ServerSnapshot:
    values: dict[str, Any] = {
        "now": NOW,
        "requester_uid": "req-uid",
        "requester": requester(),
        "node": NodeView(name=NODE),
        "memory": ServerMemory(gpu_uuids=GPUS),
        "settings": Settings(memory_check=False),
        "isc": ISC,
        "lc": LC,
        "iscs": {ISC_NAME: ISC},
    }
    values.update(overrides)
    return ServerSnapshot(**values)


def with_launchers(*launchers: LauncherView, **overrides: Any) -> ServerSnapshot:
    return snapshot(launchers=launchers, **overrides)


def lv(pod: PodView, *instances: InstanceView) -> LauncherView:
    return LauncherView(pod=pod, instances=tuple(instances))


SERVING_LABELS = {
    "dual-pods.llm-d.ai/launcher-config-name": LC_NAME,
    "dual-pods.llm-d.ai/sleeping": "false",
    "route": "yes",
}
"""A bound launcher whose instance serves, routing labels applied."""


def serving(memory: ServerMemory, **req: Any) -> list[Action]:
    """The decision for a requester bound to a launcher whose instance is ready."""
    provider = bound_launcher_pod(labels=SERVING_LABELS)
    values: dict[str, Any] = {
        "finalizers": ("dual-pods.llm-d.ai/requester",),
        "labels": {"dual-pods.llm-d.ai/dual": "launcher-a"},
    }
    values.update(req)
    snap = with_launchers(
        lv(provider, instance(phase="ready")),
        providers=(provider,),
        requester=requester(**values),
        memory=memory,
    )
    return list(decide_server(snap))
