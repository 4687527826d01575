"""The hollow kubelet against the real control plane: scheduling, GPUs, probes, restarts, env,
graceful deletion, logs through the apiserver.

Each test runs its own hollow kubelet with uniquely named nodes (stopped, its Nodes deleted and
its processes checked gone by `hollow_kubelet`) and works in the `namespace` fixture.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import psutil
import pytest
from kubernetes.client.exceptions import ApiException

from localcluster.controlplane import LocalCluster
from localcluster.kubelet import (
    HollowKubeletHandle,
    ImageConfig,
    KubeletConfig,
    NodeConfig,
    gpu_uuid,
    hollow_kubelet,
    start_hollow_kubelet,
)
from localcluster.kubelet.cli import main as kubelet_cli
from tests.waiting import wait_value

pytestmark = pytest.mark.cluster

IMAGE = "fma/hollow-server:1"
SERVER = Path(__file__).with_name("hollow_server.py")


@pytest.fixture
def node_name() -> str:
    return f"hk-{secrets.token_hex(3)}"


def kubelet_config(cluster: LocalCluster, node_name: str) -> KubeletConfig:
    return KubeletConfig(
        pod_network=cluster.pod_network,
        nodes=[NodeConfig(name=node_name, gpus=2)],
        images={
            IMAGE: ImageConfig(
                entrypoint=["python3", str(SERVER)], path=[str(Path(sys.executable).parent)]
            )
        },
        restart_backoff={"initialSeconds": 1, "maxSeconds": 4},
    )


@pytest.fixture
def kubelet(cluster: LocalCluster, node_name: str, tmp_path: Path) -> Iterator[HollowKubeletHandle]:
    config = kubelet_config(cluster, node_name)
    with hollow_kubelet(cluster, config, tmp_path / "kubelet", shutdown_grace_seconds=3) as handle:
        yield handle


def container(*, gpus: int = 0, args: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "server",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        **extra,
    }
    if gpus:
        spec["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if args is not None:
        spec["args"] = args
    return spec


def pod_manifest(name: str, node: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A Pod pinned to our node by nodeSelector (the real scheduler still binds it)."""
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": list(containers) or [container()],
            **spec,
        },
    }


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def ready_pod(core: Any, namespace: str, name: str, timeout: float = 30.0) -> Any:
    def probe() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if is_ready(pod) else None

    return wait_value(f"Pod {name} Ready", probe, timeout)


def info(pod: Any) -> dict[str, Any]:
    """What the server process reports about itself (pid, argv, env)."""
    result: dict[str, Any] = httpx.get(f"http://{pod.status.pod_ip}:8080/info", timeout=5).json()
    return result


def gone(core: Any, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_deployment_pods_get_their_own_ip_and_gpu_and_wait_for_a_free_one(
    kubelet: HollowKubeletHandle, namespace: str, api_client: Any, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    apps = kubernetes.client.AppsV1Api(api_client)
    template = pod_manifest("gpu-server", node_name, container(gpus=1))
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "gpu-server"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "gpu-server"}},
                "template": template,
            },
        },
    )

    def pods() -> list[Any]:
        return [
            p
            for p in core_v1.list_namespaced_pod(namespace, label_selector="app=gpu-server").items
            if not p.metadata.deletion_timestamp
        ]

    def ready_pods(count: int) -> list[Any] | None:
        ready = [p for p in pods() if is_ready(p)]
        return ready if len(ready) == count else None

    first = wait_value("2 Ready Pods", lambda: ready_pods(2))
    node_gpus = {gpu_uuid(node_name, 0), gpu_uuid(node_name, 1)}
    seen = {p.metadata.name: info(p)["env"]["NVIDIA_VISIBLE_DEVICES"] for p in first}
    assert set(seen.values()) == node_gpus
    assert len({p.status.pod_ip for p in first}) == 2
    assert all(p.spec.node_name == node_name and p.status.host_ip.endswith(".1") for p in first)

    apps.patch_namespaced_deployment_scale("gpu-server", namespace, {"spec": {"replicas": 3}})

    def unschedulable() -> Any:
        for pod in pods():
            for condition in pod.status.conditions or ():
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return pod
        return None

    pending = wait_value("an Unschedulable Pod", unschedulable)
    assert pending.status.phase == "Pending" and not pending.spec.node_name

    victim = first[0]
    core_v1.delete_namespaced_pod(victim.metadata.name, namespace)
    wait_value(
        "the deleted Pod to disappear", lambda: gone(core_v1, namespace, victim.metadata.name)
    )

    def heir() -> Any:
        ready = ready_pods(2)
        newcomers = [p for p in ready or () if p.metadata.name != first[1].metadata.name]
        return newcomers[0] if newcomers else None

    successor = wait_value("a waiting Pod to get the freed GPU and become Ready", heir)
    assert info(successor)["env"]["NVIDIA_VISIBLE_DEVICES"] == seen[victim.metadata.name]
    assert len([p for p in pods() if p.status.phase == "Pending"]) == 1  # the replacement waits


def test_a_killed_container_is_restarted(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    core_v1.create_namespaced_pod(namespace, pod_manifest("crashy", node_name))
    pod = ready_pod(core_v1, namespace, "crashy")
    pid = info(pod)["pid"]
    os.kill(pid, signal.SIGKILL)

    def restarted() -> Any:
        current = core_v1.read_namespaced_pod("crashy", namespace)
        status = current.status.container_statuses[0]
        return current if status.restart_count == 1 and is_ready(current) else None

    current = wait_value("restartCount 1 and Ready again", restarted)
    status = current.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 137
    assert status.state.running is not None
    assert info(current)["pid"] != pid
    assert not psutil.pid_exists(pid)
    previous = kubelet.logs(namespace, "crashy", "server", previous=True)
    assert "serving on" in previous


def test_environment_downward_api_and_config_map(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"color": "blue", "size": "L"}}
    )
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"TOKEN": "t0k"}}
    )
    env = [
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
        {
            "name": "NONE",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": True}},
        },
        {"name": "COMBINED", "value": "$(MY_NODE)/$(COLOR)/$(UNDEFINED)"},
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
    ]
    spec = container(
        env=env,
        envFrom=[
            {"configMapRef": {"name": "settings"}, "prefix": "CM_"},
            {"secretRef": {"name": "creds"}},
        ],
        args=["--port", "8080", "--color=$(COLOR)"],
    )
    core_v1.create_namespaced_pod(namespace, pod_manifest("envy", node_name, spec))
    pod = ready_pod(core_v1, namespace, "envy")
    reported = info(pod)
    seen = reported["env"]
    assert seen["MY_NODE"] == node_name == seen["NODE_NAME"]
    assert seen["MY_IP"] == pod.status.pod_ip == seen["POD_IP"]
    assert seen["MY_APP"] == "envy"
    assert (seen["POD_NAME"], seen["POD_NAMESPACE"], seen["POD_UID"]) == (
        "envy",
        namespace,
        pod.metadata.uid,
    )
    assert seen["COLOR"] == "blue" and "NONE" not in seen
    assert seen["COMBINED"] == f"{node_name}/blue/$(UNDEFINED)"
    assert (seen["CM_color"], seen["CM_size"], seen["TOKEN"]) == ("blue", "L", "t0k")
    assert seen["NVIDIA_VISIBLE_DEVICES"] == "all"  # no GPU asked: the spec's value stands
    assert reported["argv"] == ["--port", "8080", "--color=blue"]

    missing = container(
        env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    )
    core_v1.create_namespaced_pod(namespace, pod_manifest("broken", node_name, missing))

    def config_error() -> Any:
        statuses = core_v1.read_namespaced_pod("broken", namespace).status.container_statuses or ()
        waiting = statuses[0].state.waiting if statuses else None
        return waiting if waiting and waiting.reason == "CreateContainerConfigError" else None

    assert (
        'configmaps "absent" not found'
        in wait_value("CreateContainerConfigError", config_error).message
    )


def test_deletion_honours_the_grace_period(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    stubborn = container(args=["--ignore-sigterm"])
    core_v1.create_namespaced_pod(
        namespace, pod_manifest("stubborn", node_name, stubborn, terminationGracePeriodSeconds=3)
    )
    pid = info(ready_pod(core_v1, namespace, "stubborn"))["pid"]
    started = time.monotonic()
    core_v1.delete_namespaced_pod("stubborn", namespace)
    time.sleep(1.5)
    assert psutil.pid_exists(pid), (
        "SIGTERM is ignored: the process must live through the grace period"
    )
    wait_value("the Pod to disappear", lambda: gone(core_v1, namespace, "stubborn"), timeout=15)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 8.0
    assert not psutil.pid_exists(pid)


def test_kubectl_logs_reaches_the_hollow_kubelet(
    kubelet: HollowKubeletHandle,
    namespace: str,
    core_v1: Any,
    cluster: LocalCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node_name = kubelet.config.nodes[0].name
    core_v1.create_namespaced_pod(namespace, pod_manifest("talker", node_name))
    pod = ready_pod(core_v1, namespace, "talker")
    output = cluster.kubectl("logs", "-n", namespace, "talker")
    assert f"serving on {pod.status.pod_ip}:8080" in output
    assert "a line on stderr" in output
    assert (
        cluster.kubectl("logs", "-n", namespace, "talker", "-c", "server", "--tail=1")
        == "a line on stderr\n"
    )
    stamped = cluster.kubectl("logs", "-n", namespace, "talker", "--timestamps")
    assert stamped.split(" ", 1)[0].endswith("Z")
    assert kubelet_cli(["logs", f"{namespace}/talker", "--state-dir", str(kubelet.state_dir)]) == 0
    assert "serving on" in capsys.readouterr().out


def test_restart_policy_never_failure(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    failing = container(args=["--exit-code", "3"])
    del failing["readinessProbe"]
    core_v1.create_namespaced_pod(
        namespace, pod_manifest("once", node_name, failing, restartPolicy="Never")
    )

    def failed() -> Any:
        pod = core_v1.read_namespaced_pod("once", namespace)
        return pod if pod.status.phase == "Failed" else None

    pod = wait_value("phase Failed", failed)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert terminated.started_at is not None and terminated.finished_at is not None
    assert pod.status.container_statuses[0].restart_count == 0
    assert kubelet.logs(namespace, "once") == "exiting with 3\n"


def test_unknown_image_waits_with_a_helpful_message(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    core_v1.create_namespaced_pod(
        namespace, pod_manifest("typo", node_name, container(image="acme/nope:1"))
    )

    def waiting() -> Any:
        statuses = core_v1.read_namespaced_pod("typo", namespace).status.container_statuses or ()
        state = statuses[0].state.waiting if statuses else None
        return state if state and state.reason in ("ErrImagePull", "ImagePullBackOff") else None

    state = wait_value("ErrImagePull", waiting)
    assert '"acme/nope:1"' in state.message and "images:" in state.message


def test_liveness_failure_restarts_the_container(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    probe = {
        "httpGet": {"path": "/missing", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    core_v1.create_namespaced_pod(
        namespace, pod_manifest("sick", node_name, container(livenessProbe=probe))
    )

    def restarted() -> Any:
        statuses = core_v1.read_namespaced_pod("sick", namespace).status.container_statuses or ()
        return statuses[0] if statuses and statuses[0].restart_count >= 1 else None

    status = wait_value("a liveness restart", restarted)
    assert status.last_state.terminated.exit_code == 143  # SIGTERM, as a runtime reports it


def test_init_containers_run_to_completion_first(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any
) -> None:
    node_name = kubelet.config.nodes[0].name
    inits = [{"name": f"init-{i}", "image": IMAGE, "args": ["--exit-code", "0"]} for i in (1, 2)]
    manifest = pod_manifest("layered", node_name, container(), initContainers=inits)
    core_v1.create_namespaced_pod(namespace, manifest)
    pod = ready_pod(core_v1, namespace, "layered")
    finished = []
    for status in pod.status.init_container_statuses:
        assert (status.state.terminated.exit_code, status.state.terminated.reason) == (
            0,
            "Completed",
        )
        assert status.ready
        finished.append(status.state.terminated.finished_at)
    assert finished == sorted(finished)
    assert pod.status.container_statuses[0].state.running.started_at >= finished[-1]
    assert kubelet.logs(namespace, "layered", "init-2") == "exiting with 0\n"


def test_a_killed_kubelet_leaves_no_process_and_its_successor_keeps_the_gpus(
    cluster: LocalCluster, node_name: str, namespace: str, core_v1: Any, tmp_path: Path
) -> None:
    config = kubelet_config(cluster, node_name)
    state_dir = tmp_path / "kubelet"
    process = start_hollow_kubelet(cluster, config, state_dir, shutdown_grace_seconds=3)
    try:
        core_v1.create_namespaced_pod(
            namespace, pod_manifest("survivor", node_name, container(gpus=1))
        )
        before = ready_pod(core_v1, namespace, "survivor")
        reported = info(before)
        children = psutil.Process(process.pid or -1).children(recursive=True)
        assert reported["pid"] in {c.pid for c in children}
        os.kill(process.pid or -1, signal.SIGKILL)
    finally:
        process.stop(grace_seconds=1)
    gone_all = wait_value(
        "the dead kubelet's processes to go",
        lambda: all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children),
        timeout=10,
    )
    assert gone_all

    with hollow_kubelet(cluster, config, state_dir, shutdown_grace_seconds=3):

        def recovered() -> Any:
            pod = core_v1.read_namespaced_pod("survivor", namespace)
            restarts = pod.status.container_statuses[0].restart_count
            return pod if restarts == 1 and is_ready(pod) else None

        after = wait_value("the Pod running again under the new kubelet", recovered)
        assert after.status.pod_ip == before.status.pod_ip
        again = info(after)
        assert again["env"]["NVIDIA_VISIBLE_DEVICES"] == reported["env"]["NVIDIA_VISIBLE_DEVICES"]
        assert again["pid"] != reported["pid"]
