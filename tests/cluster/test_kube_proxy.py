"""A NodePort Service on the local cluster, through real kube-proxy's iptables rules.

A Deployment of two HTTP-server Pods (the hollow kubelet runs them on their own 127.x addresses)
and a NodePort Service with `targetPort: http`: a request to `127.0.0.1:<nodePort>` must reach a
Pod, both Pods must get traffic, deleting the Service must remove its rules, and once the cluster
has stopped no KUBE- chain may remain in the namespace.

kube-proxy's rules belong to a network namespace and only one cluster per namespace may run it;
the session's shared cluster may be that one (`LocalCluster(kube_proxy="auto")`). So the scenario
runs in a child process in a fresh private namespace of its own (`hack/in-netns.sh`), where it
can also check that the namespace ends clean. Run by hand, it prints each step:

    bash hack/in-netns.sh .venv/bin/python -m tests.cluster.test_kube_proxy /tmp/kp
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import pytest

from localcluster import iptables
from localcluster.controlplane import LocalCluster
from localcluster.kubelet import ImageConfig, KubeletConfig, NodeConfig, hollow_kubelet
from localcluster.kubeproxy import KubeProxyUnavailableError
from tests.waiting import wait_value

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("hollow_server.py")
IMAGE = "fma/hollow-server:1"
NAMESPACE = "kube-proxy-test"
APP = "web"
REPLICAS = 2
REQUESTS = 40  # all on one Pod by chance: 2 * 0.5**40


def skip_reason() -> str | None:
    """Why the scenario cannot run on this machine (None when it can)."""
    if shutil.which("unshare") is None:
        return "util-linux `unshare` is missing: no private network namespace can be made"
    missing = iptables.missing_tools()
    if missing:
        return f"{', '.join(missing)} missing: install Debian's iptables (bash hack/setup.sh)"
    return None


def test_node_port_service_through_real_kube_proxy(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        if os.environ.get("FMA_IN_NETNS"):  # hack/test.sh: the set-up must have provided it
            pytest.fail(f"kube-proxy cannot be tested under hack/test.sh: {reason}")
        pytest.skip(reason)
    result = subprocess.run(
        [
            "bash",
            "hack/in-netns.sh",
            sys.executable,
            "-m",
            "tests.cluster.test_kube_proxy",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"the scenario failed:\n{output}"
    assert "scenario passed" in result.stdout, output


# ----- the scenario, run in its own network namespace ------------------------------------------


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def deployment(node: str) -> dict[str, Any]:
    container = {
        "name": "server",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    return {
        "metadata": {"name": APP},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [container],
                },
            },
        },
    }


def node_port_service() -> dict[str, Any]:
    return {
        "metadata": {"name": APP},
        "spec": {
            "type": "NodePort",
            "selector": {"app": APP},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def ready_endpoint_ips(api: kubernetes.client.ApiClient) -> set[str]:
    """The ready addresses of the Service's EndpointSlices, which kube-proxy 1.20 reads.

    (Its Endpoints object stays empty: the apiserver rejects loopback addresses there, but not
    in EndpointSlices. The official client no longer knows discovery/v1beta1, hence the
    generic API.)"""
    slices = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
        "discovery.k8s.io",
        "v1beta1",
        NAMESPACE,
        "endpointslices",
        label_selector=f"kubernetes.io/service-name={APP}",
    )
    return {
        address
        for item in slices["items"]
        for endpoint in item.get("endpoints") or ()
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    }


def nat_rules() -> str:
    return subprocess.run(
        ["iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": iptables.tool_path()},
    ).stdout


def _dnat_targets() -> set[str]:
    """The Pod addresses kube-proxy's rules send traffic to."""
    marker = "--to-destination "
    return {
        line.split(marker, 1)[1].split(":", 1)[0]
        for line in nat_rules().splitlines()
        if marker in line
    }


def server_pid(url: str) -> int | None:
    """The pid the hollow server at `url` reports, over a new connection each time (so that
    kube-proxy's random choice is made again), or None if the request fails."""
    try:
        with httpx.Client(trust_env=False, timeout=3) as client:
            return int(client.get(f"{url}/info").json()["pid"])
    except httpx.HTTPError:
        return None


def check_service(cluster: LocalCluster, node: str) -> None:
    api = cluster.api_client()
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    wait_value("the default ServiceAccount's token", lambda: _has_token(core))
    apps.create_namespaced_deployment(NAMESPACE, deployment(node))
    service = core.create_namespaced_service(NAMESPACE, node_port_service())
    node_port = service.spec.ports[0].node_port
    step(f"Service {APP} has nodePort {node_port}")

    pods = wait_value(f"{REPLICAS} ready Pods", lambda: _ready_pods(core))
    pod_ips = {pod.status.pod_ip for pod in pods}
    wait_value("the Pods in the EndpointSlice", lambda: ready_endpoint_ips(api) == pod_ips)
    step(f"EndpointSlice lists {sorted(pod_ips)}")
    expected = {pod_pid(ip) for ip in pod_ips}

    url = f"http://127.0.0.1:{node_port}"
    wait_value("kube-proxy's rules for both Pods", lambda: _dnat_targets() >= pod_ips)
    wait_value(f"{url} to answer", lambda: server_pid(url), timeout=20)
    assert f"--dport {node_port}" in nat_rules(), nat_rules()
    seen = {server_pid(url) for _ in range(REQUESTS)}
    assert seen == expected, f"{REQUESTS} requests reached pids {seen}, the Pods are {expected}"
    step(f"{REQUESTS} requests to {url} reached both Pods (pids {expected})")

    cluster.kubectl("delete", "service", APP, "-n", NAMESPACE)
    wait_value("the Service's rules to go", lambda: f"--dport {node_port}" not in nat_rules())
    assert f"{NAMESPACE}/{APP}" not in nat_rules(), nat_rules()
    assert server_pid(url) is None, f"{url} still answers without its Service"
    step("Service deleted: its rules are gone and the nodePort no longer answers")
    api.close()


def pod_pid(ip: str) -> int | None:
    """The pid of the Pod's server, asked directly at the Pod's own address."""
    return wait_value(f"Pod {ip} to answer", functools.partial(server_pid, f"http://{ip}:8080"))


def _has_token(core: kubernetes.client.CoreV1Api) -> bool:
    accounts = core.list_namespaced_service_account(NAMESPACE).items
    return any(sa.metadata.name == "default" and sa.secrets for sa in accounts)


def _ready_pods(core: kubernetes.client.CoreV1Api) -> list[Any] | None:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={APP}").items
    ready = [
        pod
        for pod in pods
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
    ]
    return ready if len(ready) == REPLICAS else None


def check_second_cluster_refused(workdir: Path) -> None:
    """A second cluster asking for kube-proxy in this namespace is refused before it starts."""
    try:
        LocalCluster(workdir, kube_proxy=True).start()
    except KubeProxyUnavailableError as exc:
        assert "already runs kube-proxy" in str(exc), exc
        step("a second cluster asking for kube-proxy here is refused")
        return
    raise AssertionError("a second cluster started kube-proxy in the same namespace")


def check_namespace_clean() -> None:
    """No KUBE- chain in any iptables backend, and no address left on lo by kube-proxy."""
    assert iptables.leftovers() == {}, iptables.leftovers()
    for tool in ("iptables-legacy-save", "iptables-nft-save"):
        path = shutil.which(tool, path=iptables.tool_path())
        if path is not None:
            saved = subprocess.run([path], capture_output=True, text=True, check=True).stdout
            assert "KUBE-" not in saved, f"{tool}:\n{saved}"
    addresses = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "lo", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert addresses.strip() == "", addresses
    step("cluster stopped: no KUBE- chain and no extra address remain")


def scenario(workdir: Path) -> None:
    node = f"kp-{secrets.token_hex(3)}"
    images = {
        IMAGE: ImageConfig(
            entrypoint=["python3", str(SERVER)], path=[str(Path(sys.executable).parent)]
        )
    }
    with LocalCluster(workdir / "cluster", kube_proxy=True, kube_proxy_node=node) as cluster:
        assert cluster.kube_proxy is not None, cluster.kube_proxy_skip_reason
        step(f"cluster with kube-proxy up (log {cluster.kube_proxy.log_path})")
        check_second_cluster_refused(workdir / "second")
        config = KubeletConfig(
            pod_network=cluster.pod_network, nodes=[NodeConfig(name=node)], images=images
        )
        with hollow_kubelet(cluster, config, workdir / "kubelet", shutdown_grace_seconds=3):
            check_service(cluster, node)
    check_namespace_clean()


if __name__ == "__main__":
    scenario(Path(sys.argv[1]))
    print("scenario passed", flush=True)
