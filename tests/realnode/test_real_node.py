"""A real node (kubelet, containerd, runc, CNI bridge, kube-proxy) joined to the session cluster.

One node for the module: it turns Ready with fake `nvidia.com/gpu` capacity; a Pod of a locally
made busybox image prints its environment (NVIDIA_VISIBLE_DEVICES set when it asks for a GPU) and
serves HTTP, reached by its Pod IP and through a Service (ClusterIP and NodePort, kube-proxy)
from this process; its readiness probe holds it out of the Service until it passes; `kubectl
logs` goes apiserver -> kubelet; a deleted Pod's containers are gone; and the last test stops the
node and checks that nothing is left (processes, mounts, bridge, iptables chains, cgroups).

Any failure to start the node (a missing binary, package or kernel feature) skips the module
with the exact reason; the rest of the suite runs on. Needs `hack/in-netns.sh`:

    bash hack/in-netns.sh .venv/bin/pytest -q tests/realnode -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import pytest
from kubernetes.client.rest import ApiException

from localcluster import iptables
from localcluster.controlplane import LocalCluster
from localcluster.realnode import (
    GPU_RESOURCE,
    REAL_NODE_KEY,
    NodeUnavailableError,
    RealNode,
    RealNodeSettings,
    busybox_image,
)
from localcluster.realnode.host import own_cgroup
from localcluster.realnode.node import processes_in_mount_namespace
from tests.waiting import wait_value

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(600)]

IMAGE = "fma.local/busybox-http:1"
NODE = "real-node-1"
# Prints its environment (to the log and to /www/env.txt), serves /www on 8080, and becomes
# ready (/ready exists) only after READY_AFTER seconds.
READY_AFTER = 6
SERVE = (
    "mkdir -p /www; env | sort | tee /www/env.txt; echo hello > /www/index.html; "
    f"(sleep {READY_AFTER}; echo ok > /www/ready) & "
    "exec httpd -f -v -p 8080 -h /www"
)


def _mounts() -> set[str]:
    return {" ".join(line.split()[3:5]) for line in Path("/proc/self/mountinfo").open()}


def _chains() -> set[str]:
    """The namespace's iptables chains and rules, except kube-proxy's Service rules (the
    cluster's kube-proxy keeps syncing those while other tests' Services come and go)."""
    save = iptables.find_tool("iptables-save")
    assert save is not None
    text = subprocess.run([save], capture_output=True, text=True, check=True).stdout
    kube_proxy_rule = re.compile(r"^-A KUBE-(SERVICES|NODEPORTS|EXTERNAL-SERVICES|SVC-|SEP-|FW-)")
    return {
        line.split(" [")[0]  # chain declarations without their counters
        for line in text.splitlines()
        if line.startswith((":", "-A", "*"))
        and not kube_proxy_rule.match(line)
        and not line.startswith((":KUBE-SVC-", ":KUBE-SEP-", ":KUBE-FW-"))
    }


@pytest.fixture(scope="module")
def before() -> dict[str, Any]:
    """What the namespace and the machine look like before the node starts."""
    return {"mounts": _mounts(), "chains": _chains()}


@pytest.fixture(scope="module")
def node(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, before: dict[str, Any]
) -> Iterator[RealNode]:
    workdir = tmp_path_factory.mktemp("realnode")
    image = busybox_image(workdir / "busybox-http.tar", IMAGE)
    real = RealNode(cluster, workdir / "node", RealNodeSettings(name=NODE, images=(image,)))
    try:
        real.start()
    except NodeUnavailableError as exc:
        pytest.skip(f"the real node cannot start here: {exc}")
    print(f"real node started: {real.timings} snapshotter={real.snapshotter_note}")
    try:
        yield real
    finally:
        real.stop()


@pytest.fixture
def core(cluster: LocalCluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with cluster.api_client() as api:
        yield kubernetes.client.CoreV1Api(api)


def _pod(name: str, gpus: int) -> dict[str, Any]:
    resources = {"limits": {GPU_RESOURCE: str(gpus)}} if gpus else {}
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "tolerations": [{"key": REAL_NODE_KEY, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": True,
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", SERVE],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "resources": resources,
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": 8080},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


def test_node_ready_with_fake_gpus(node: RealNode, core: kubernetes.client.CoreV1Api) -> None:
    got = core.read_node(NODE)
    assert got.status.capacity[GPU_RESOURCE] == "2"
    assert got.status.allocatable[GPU_RESOURCE] == "2"
    assert got.status.node_info.container_runtime_version.startswith("containerd://")
    assert got.status.node_info.kubelet_version.startswith("v1.20.2")
    addresses = {a.type: a.address for a in got.status.addresses}
    assert addresses["InternalIP"] == node.settings.node_ip
    taints = {t.key for t in got.spec.taints or []}
    assert taints == {REAL_NODE_KEY}, taints  # not-ready lifted; only Pods that tolerate it


def test_pod_serves_env_through_pod_ip_and_service(
    node: RealNode, cluster: LocalCluster, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, _pod("gpu", gpus=1))
    core.create_namespaced_pod(namespace, _pod("cpu", gpus=0))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "gpu"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "gpu"},
                "ports": [{"port": 80, "targetPort": "http"}],
            },
        },
    )

    # Readiness honoured: the container runs (and answers) for READY_AFTER s before it is Ready.
    def running() -> Any:
        pod = core.read_namespaced_pod("gpu", namespace)
        statuses = pod.status.container_statuses or []
        return pod if statuses and statuses[0].state.running else None

    pod = wait_value("the GPU Pod's container to run", running, timeout=90)
    started = time.monotonic()
    assert not _ready(pod)
    pod_ip = pod.status.pod_ip
    assert pod_ip.startswith("10.88.0."), pod_ip
    env = wait_value("the Pod IP to answer", lambda: _maybe_get(f"http://{pod_ip}:8080/env.txt"))
    assert not _ready(core.read_namespaced_pod("gpu", namespace)), "Ready before its probe passed"
    pod = wait_value("the GPU Pod Ready", lambda: _ready_pod(core, namespace, "gpu"), timeout=60)
    assert time.monotonic() - started >= READY_AFTER - 2

    # The device plugin's allocation reached the container's environment.
    lines = env.text.splitlines()
    visible = [line for line in lines if line.startswith("NVIDIA_VISIBLE_DEVICES=")]
    assert len(visible) == 1 and visible[0].split("=", 1)[1].startswith("GPU-"), lines
    assert len(visible[0].split("=", 1)[1].split(",")) == 1
    cpu = wait_value("the CPU Pod Ready", lambda: _ready_pod(core, namespace, "cpu"), timeout=60)
    cpu_env = _get(f"http://{cpu.status.pod_ip}:8080/env.txt").text
    assert "NVIDIA_VISIBLE_DEVICES" not in cpu_env
    assert "KUBERNETES_SERVICE_HOST=" in cpu_env

    # The containers run in cgroups under this process's own (the node's cgroup namespace).
    own = Path("/sys/fs/cgroup/memory") / own_cgroup("memory").lstrip("/") / "k8s.io"
    procs = [p for p in own.rglob("cgroup.procs") if p.read_text().split()]
    assert len(procs) >= 4, procs  # two Pods: a sandbox and an app each

    # The Service, through kube-proxy: ClusterIP (routed to the bridge) and NodePort on loopback.
    service = core.read_namespaced_service("gpu", namespace)
    cluster_ip, node_port = service.spec.cluster_ip, service.spec.ports[0].node_port
    for url in (f"http://{cluster_ip}/", f"http://127.0.0.1:{node_port}/"):
        answer = wait_value(f"{url} to answer", functools.partial(_maybe_get, url), timeout=60)
        assert answer.text == "hello\n"

    # kubectl logs: apiserver -> kubelet -> containerd's log file.
    logs = cluster.kubectl("logs", "-n", namespace, "gpu")
    assert visible[0] in logs.splitlines(), logs

    # Delete the Pod: its containers (and sandbox) go; the other Pod's stay.
    assert len(_containers(node, "gpu")) >= 2  # sandbox + app
    core.delete_namespaced_pod("gpu", namespace)
    wait_value("the GPU Pod gone", lambda: _gone(core, namespace, "gpu"), timeout=60)
    assert _containers(node, "gpu") == []
    assert len(_containers(node, "cpu")) >= 2
    core.delete_namespaced_pod("cpu", namespace)
    wait_value("the CPU Pod gone", lambda: _gone(core, namespace, "cpu"), timeout=60)
    wait_value("no container left", lambda: not node.ctr("containers", "ls", "-q").split(), 30)
    assert not node.ctr("tasks", "ls", "-q").split()


def _containers(node: RealNode, pod: str) -> list[str]:
    """containerd's containers (sandbox included) of the Pod named `pod`."""
    return node.ctr("containers", "ls", "-q", f'labels."io.kubernetes.pod.name"=={pod}').split()


def _maybe_get(url: str) -> httpx.Response | None:
    with contextlib.suppress(httpx.HTTPError):
        response = _get(url)
        if response.status_code == 200:
            return response
    return None


def _ready_pod(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if _ready(pod) else None


def _gone(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_stop_leaves_nothing_behind(
    node: RealNode, core: kubernetes.client.CoreV1Api, before: dict[str, Any]
) -> None:
    mount_ns = node._mnt_ns
    node.stop()
    assert not processes_in_mount_namespace(mount_ns)
    assert node.settings.bridge not in Path("/proc/self/net/dev").read_text()
    # Only the node's: other programs on the machine may mount and unmount meanwhile.
    ours = (str(node.workdir), "/var/lib/kubelet", "/var/log/pods", "/run/netns", "/run/containerd")
    assert [m for m in _mounts() - before["mounts"] if any(key in m for key in ours)] == []
    chains = _chains()
    assert chains == before["chains"], (chains - before["chains"], before["chains"] - chains)
    assert not [c for c in chains if "CNI-" in c or "KUBELET" in c or "KUBE-FIREWALL" in c]
    own = own_cgroup("pids").lstrip("/")
    assert not (Path("/sys/fs/cgroup/pids") / own / "k8s.io").exists()
    with pytest.raises(ApiException) as err:
        core.read_node(NODE)
    assert err.value.status == 404
