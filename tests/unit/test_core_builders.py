"""Launcher Pod (§4.2), direct provider (§4.1), views, and the §8.7 items."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import core
from controller.core import (
    DeleteInstance,
    EnqueueRequesters,
    LauncherTemplateError,
    ProviderBuildError,
    build_direct_provider,
    build_launcher_template,
    decide_isc_gc,
    decide_unbound_launcher,
    encode_pod,
    pod_view,
)
from crds.models import LauncherConfig
from tests.unit.core_fixtures import ISC, ISC_NAME, instance, launcher_pod, lv


def lc(spec: dict[str, object], **meta: object) -> LauncherConfig:
    return LauncherConfig.model_validate(
        {
            "metadata": {"name": "lc1", "namespace": "ns", "uid": "u1", **meta},
            "spec": {
                "maxInstances": 1,
                "podTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": spec},
            },
        }
    )


SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "inference-server",
            "image": "img",
            "imagePullPolicy": "Always",
            "env": [{"name": "PYTHONPATH", "value": "/x"}, {"name": "KEEP", "value": "1"}],
            "resources": {"limits": {"nvidia.com/gpu": 2}, "requests": {"nvidia.com/gpu": 2}},
            "ports": [{"containerPort": 9, "name": "b"}, {"containerPort": 8, "name": "a"}],
            "volumeMounts": [
                {"name": "z", "mountPath": "/z"},
                {"name": "kube-api-access-q", "mountPath": "/t"},
            ],
        },
    ],
    "volumes": [{"name": "z", "emptyDir": {}}, {"name": "kube-api-access-q", "projected": {}}],
    "tolerations": [{"key": "b"}, {"key": "a"}],
    "overhead": {"nvidia.com/gpu": 1, "cpu": "1"},
    "ephemeralContainers": [{"name": "debug"}],
}


def test_launcher_template_build() -> None:
    template = build_launcher_template(lc(SPEC))
    pod = template.pod
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["generateName"] == "launcher-lc1-"
    assert meta["labels"] == {
        "team": "a",
        "app.kubernetes.io/component": "launcher",
        "dual-pods.llm-d.ai/launcher-config-name": "lc1",
        "dual-pods.llm-d.ai/sleeping": "true",
    }
    assert meta["ownerReferences"][0]["uid"] == "u1"
    assert [v["name"] for v in spec["volumes"]] == ["z"]
    assert [t["key"] for t in spec["tolerations"]] == ["a", "b"]
    assert "ephemeralContainers" not in spec
    server = spec["containers"][0]
    assert [p["name"] for p in server["ports"]] == ["a", "b"]
    assert [m["name"] for m in server["volumeMounts"]] == ["z"]
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env == {
        "PYTHONPATH": "/app",
        "KEEP": "1",
        "NVIDIA_VISIBLE_DEVICES": "all",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "VLLM_SERVER_DEV_MODE": "1",
    }
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/vllm/instances"
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "0"
    assert spec["overhead"] == {"cpu": "1"}
    assert len(spec["containers"]) == 1  # no sidecar by default (reference-differences C1)
    assert (
        meta["annotations"]["dual-pods.llm-d.ai/launcher-populator-template-hash"]
        == template.template_hash
    )
    encode_pod(pod)  # still a valid Pod


def test_template_hash_is_stable_under_list_order_and_changes_with_lc() -> None:
    reordered = dict(
        SPEC, tolerations=[{"key": "a"}, {"key": "b"}], volumes=list(reversed(SPEC["volumes"]))
    )
    assert (
        build_launcher_template(lc(reordered)).template_hash
        == build_launcher_template(lc(SPEC)).template_hash
    )
    assert (
        build_launcher_template(lc(SPEC, uid="u2")).template_hash
        != build_launcher_template(lc(SPEC)).template_hash
    )


def test_node_specialization_and_optional_sidecar() -> None:
    template = build_launcher_template(lc(SPEC), with_reflector=True)
    pod = template.for_node("n1")
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "n1"}
    assert pod["metadata"]["labels"]["dual-pods.llm-d.ai/node-name"] == "n1"
    assert pod["metadata"]["annotations"][
        "dual-pods.llm-d.ai/launcher-config-hash"
    ] == template.config_hash("n1")
    assert template.config_hash("n1") != template.config_hash("n2")
    sidecar = pod["spec"]["containers"][-1]
    assert sidecar["name"] == "state-change-reflector" and sidecar["image"] == "img"
    assert template.template_hash == build_launcher_template(lc(SPEC)).template_hash
    assert "nodeSelector" not in template.pod["spec"]


def test_malformed_templates() -> None:
    with pytest.raises(LauncherTemplateError, match='container "inference-server" not found'):
        build_launcher_template(lc({"containers": [{"name": "other"}]}))
    with pytest.raises(LauncherTemplateError, match="containerPort"):
        build_launcher_template(
            lc({"containers": [{"name": "inference-server", "ports": [{"containerPort": "x"}]}]})
        )


REQUESTER = {
    "metadata": {
        "name": "r1",
        "uid": "u1",
        "namespace": "ns",
        "labels": {"app": "x"},
        "annotations": {
            "dual-pods.llm-d.ai/server-patch": (
                "metadata:\n  labels:\n    app: null\nspec:\n  containers:\n"
                "  - name: inference-server\n    image: vllm\n    env:\n"
                "    - name: CUDA_VISIBLE_DEVICES\n      value: old\n"
                "    readinessProbe:\n      httpGet:\n        port: 8000\n"
                "  volumes:\n  - name: c\n    persistentVolumeClaim:\n"
                "      claimName: vcp-{{ .NodeName }}\n"
            )
        },
    },
    "spec": {
        "containers": [
            {
                "name": "inference-server",
                "image": "stub",
                "volumeMounts": [{"name": "kube-api-access-a", "mountPath": "/t"}],
            }
        ],
        "volumes": [{"name": "kube-api-access-a", "projected": {}}],
    },
}


def test_direct_provider_build_and_nominal() -> None:
    built = build_direct_provider(
        REQUESTER, node="n1", gpu_uuids=["GPU-1", "GPU-0"], gpu_indices=[1, 0]
    )
    pod = built.pod
    server = pod["spec"]["containers"][0]
    assert built.port == 8000
    assert {"name": "CUDA_VISIBLE_DEVICES", "value": "1,0"} in server["env"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "0"
    assert pod["spec"]["volumes"] == [
        {"name": "c", "persistentVolumeClaim": {"claimName": "vcp-n1"}}
    ]
    assert pod["metadata"]["labels"] == {
        "dual-pods.llm-d.ai/dual": "r1",
        "dual-pods.llm-d.ai/sleeping": "false",
    }
    assert pod["metadata"]["annotations"]["dual-pods.llm-d.ai/nominal"] == built.nominal
    assert pod["metadata"]["generateName"] == "r1-dual-"
    other = build_direct_provider(
        REQUESTER, node="n2", gpu_uuids=["GPU-1", "GPU-0"], gpu_indices=[1, 0]
    )
    assert other.nominal != built.nominal


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ("", "annotation is missing"),
        ("{{ .Nope }}", "no entry"),
        ("spec: [", "not valid YAML"),
        ("spec:\n  bogus: 1\n", "unknown field"),
        ("metadata: {}\n", 'no container "inference-server"'),
        ("spec:\n  containers:\n  - name: inference-server\n", "readinessProbe.httpGet"),
        (
            "spec:\n  containers:\n  - name: inference-server\n    readinessProbe:\n"
            "      httpGet:\n        port: web\n",
            "must be a number",
        ),
    ],
)
def test_direct_provider_errors(patch: str, error: str) -> None:
    requester = json.loads(json.dumps(REQUESTER))
    requester["metadata"]["annotations"]["dual-pods.llm-d.ai/server-patch"] = patch
    requester["spec"]["containers"][0]["name"] = (
        "stub" if 'inference-server"' in error else "inference-server"
    )
    with pytest.raises(ProviderBuildError, match=error):
        build_direct_provider(requester, node="n1", gpu_uuids=["GPU-0"], gpu_indices=[0])


def test_pod_view_reads_the_informer_object() -> None:
    view = pod_view(
        {
            "metadata": {
                "name": "p",
                "uid": "u",
                "resourceVersion": "3",
                "deletionTimestamp": "2024-01-01T00:00:00Z",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "annotations": {"dual-pods.llm-d.ai/requester": "u2 r2"},
                "managedFields": [
                    {"manager": "dual-pods-controller", "time": "2024-01-02T00:00:00Z"}
                ],
            },
            "spec": {"nodeName": "n1", "nodeSelector": {"kubernetes.io/hostname": "n1"}},
            "status": {
                "podIP": "1.2.3.4",
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {
                        "type": "PodScheduled",
                        "status": "True",
                        "lastTransitionTime": "2024-01-01T00:00:01Z",
                    },
                ],
                "containerStatuses": [
                    {
                        "name": "inference-server",
                        "ready": True,
                        "restartCount": 2,
                        "state": {"running": {"startedAt": "2024-01-01T00:00:05Z"}},
                    }
                ],
            },
        }
    )
    assert view.deleting and view.ready and view.server_running and view.server_ready
    assert view.bound_to == ("u2", "r2") and view.node == "n1" and view.restarts == 2
    assert (
        view.server_started_at == view.created_at + 5 and view.scheduled_at == view.created_at + 1
    )
    assert view.managed_at == view.created_at + 86400
    assert pod_view({}).bound_to is None


def test_unbound_launcher_item_and_isc_gc() -> None:
    launcher = lv(launcher_pod(), instance("I-dead", running=False), instance())
    actions = decide_unbound_launcher(launcher)
    assert [a.instance_id for a in actions if isinstance(a, DeleteInstance)] == ["I-dead"]
    assert actions[-1] == EnqueueRequesters(node="n1")
    current, stale = instance(), instance("I-stale", isc_name=ISC_NAME)
    awake = instance("I-awake", phase="ready")
    gc = decide_isc_gc(ISC_NAME, ISC, [lv(launcher_pod(), current, stale, awake)])
    assert [a.instance_id for a in gc if isinstance(a, DeleteInstance)] == ["I-stale"]
    gone = decide_isc_gc(ISC_NAME, None, [lv(launcher_pod(), current)])
    assert [a.reason for a in gone if isinstance(a, DeleteInstance)] == ["obsolete"]
    assert decide_isc_gc(ISC_NAME, ISC, [lv(launcher_pod(ip=None), stale)]) == []


def test_public_names() -> None:
    """The public surface is the sorted `__all__` of controller.core, nothing missing."""
    assert len(set(core.__all__)) == len(core.__all__)
    assert all(hasattr(core, name) for name in core.__all__)
    assert {
        "decide_server",
        "decide_population",
        "policy_table",
        "ServerSnapshot",
        "instance_id",
        "build_launcher_template",
        "build_direct_provider",
    } <= set(core.__all__)
