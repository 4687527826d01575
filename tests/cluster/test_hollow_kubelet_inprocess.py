"""In-process hosting on the real control plane: the requester stub and the vLLM stand-in run
inside the hollow kubelet with their Pod's environment and IP, probes, logs and deletion, and
no process is started for them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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
)
from localcluster.stack import default_images
from tests.waiting import wait_value

pytestmark = pytest.mark.cluster

IMAGE = "ghcr.io/llm-d/fma:inprocess"
BROKEN = "fma/broken-app:1"


@pytest.fixture
def node_name() -> str:
    return f"ip-{secrets.token_hex(3)}"


@pytest.fixture
def kubelet(cluster: LocalCluster, node_name: str, tmp_path: Path) -> Iterator[HollowKubeletHandle]:
    fma = default_images()["ghcr.io/llm-d/fma:*"]
    images = {
        "ghcr.io/llm-d/fma:*": fma.model_copy(
            update={
                "env": {"FMA_REQUESTER_GPU_SOURCE": "env"},
                "in_process": {"fma-requester": "requester", "fma-vllm-standin": "vllm-standin"},
            }
        ),
        BROKEN: ImageConfig(entrypoint=["broken"], in_process={"broken": "no_such_module:run"}),
    }
    config = KubeletConfig(
        pod_network=cluster.pod_network,
        nodes=[NodeConfig(name=node_name, gpus=2)],
        images=images,
        restart_backoff={"initialSeconds": 1, "maxSeconds": 2},
    )
    with hollow_kubelet(cluster, config, tmp_path / "kubelet", shutdown_grace_seconds=3) as handle:
        yield handle


def requester_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": "inference-server",
                    "image": IMAGE,
                    "command": ["fma-requester"],
                    # No controller here: the stub's control API may stay open.
                    "env": [{"name": "FMA_CONTROL_AUTH", "value": "off"}],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": 8080},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


def standin_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [
                {
                    "name": "vllm",
                    "image": IMAGE,
                    "command": ["fma-vllm-standin"],
                    "args": ["--model", "tiny", "--port", "8000", "--startup-delay", "0.1"],
                    "env": [{"name": "VLLM_SERVER_DEV_MODE", "value": "1"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/health", "port": 8000},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


def read(core: Any, namespace: str, name: str) -> Any:
    return core.read_namespaced_pod(name, namespace)


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def wait_ready(core: Any, namespace: str, name: str) -> None:
    wait_value(f"{name} Ready", lambda: ready(read(core, namespace, name)))


def running(pod: Any) -> bool:
    statuses = list(pod.status.container_statuses or ())
    return bool(statuses) and statuses[0].state.running is not None


def gone(core: Any, namespace: str, name: str) -> bool:
    try:
        read(core, namespace, name)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_requester_stub_runs_in_process_with_its_pods_gpu_ip_and_logs(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any, node_name: str
) -> None:
    core_v1.create_namespaced_pod(namespace, requester_pod("req", node_name))
    pod = wait_value(
        "requester Running", lambda: (p := read(core_v1, namespace, "req")) and running(p) and p
    )
    assert not ready(pod)
    children = [" ".join(p.cmdline()) for p in kubelet.descendants()]
    assert all("localcluster.kubelet.reaper" in c for c in children), children  # no container

    spi = f"http://{pod.status.pod_ip}:8081"
    accelerators = wait_value(
        "the SPI", lambda: _get(f"{spi}/v1/dual-pods/accelerators"), timeout=10
    )
    assert accelerators.json()[0] in {gpu_uuid(node_name, 0), gpu_uuid(node_name, 1)}
    httpx.post(f"{spi}/v1/become-ready", timeout=5).raise_for_status()
    wait_value("requester Ready", lambda: ready(read(core_v1, namespace, "req")), timeout=10)
    httpx.post(f"{spi}/v1/set-log?startPos=0", content=b"relayed line\n", timeout=5)
    logs = wait_value(
        "relayed log",
        lambda: (
            (text := core_v1.read_namespaced_pod_log("req", namespace))
            and "relayed line" in text
            and text
        ),
    )
    lines = logs.splitlines()  # stdout and stderr, as kubectl shows them
    assert "relayed line" in lines
    assert any('"msg":"serving"' in line for line in lines)  # the stub's own log (stderr)
    started = time.monotonic()
    core_v1.delete_namespaced_pod("req", namespace)
    wait_value("requester gone", lambda: gone(core_v1, namespace, "req"))
    assert time.monotonic() - started < 10  # SIGTERM ends the stub at once, not after 30 s
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{spi}/healthz", timeout=2)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def test_standin_runs_in_process_on_its_pod_ip_and_probes_see_it(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any, node_name: str
) -> None:
    core_v1.create_namespaced_pod(namespace, standin_pod("vllm-a", node_name))
    core_v1.create_namespaced_pod(namespace, standin_pod("vllm-b", node_name))
    for name in ("vllm-a", "vllm-b"):  # same port, different Pod IPs
        wait_ready(core_v1, namespace, name)
    pod = read(core_v1, namespace, "vllm-a")
    base = f"http://{pod.status.pod_ip}:8000"
    assert httpx.post(f"{base}/sleep?level=1", timeout=5).status_code == 200
    assert httpx.get(f"{base}/is_sleeping", timeout=5).json() == {"is_sleeping": True}
    logs = core_v1.read_namespaced_pod_log("vllm-a", namespace)
    assert "Starting vLLM server on" in logs
    assert '"GET /health HTTP/1.1" 200' in logs  # the probes, in the access log


def test_an_app_that_cannot_load_fails_to_start_and_backs_off(
    kubelet: HollowKubeletHandle, namespace: str, core_v1: Any, node_name: str
) -> None:
    body = {
        "metadata": {"name": "broken"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node_name},
            "containers": [{"name": "c", "image": BROKEN}],
        },
    }
    core_v1.create_namespaced_pod(namespace, body)

    def terminated() -> Any:
        statuses = list(read(core_v1, namespace, "broken").status.container_statuses or ())
        state = statuses[0].last_state.terminated if statuses else None
        return state if state is not None and statuses[0].restart_count >= 1 else None

    state = wait_value("a failed start, restarted", terminated)
    assert state.reason == "StartError"
    assert "cannot import no_such_module" in state.message


def test_kubelet_stop_ends_in_process_containers(
    cluster: LocalCluster, namespace: str, core_v1: Any, tmp_path: Path
) -> None:
    node = f"ip-{secrets.token_hex(3)}"
    images = {
        "ghcr.io/llm-d/fma:*": default_images()["ghcr.io/llm-d/fma:*"].model_copy(
            update={"in_process": {"fma-vllm-standin": "vllm-standin"}}
        )
    }
    config = KubeletConfig(
        pod_network=cluster.pod_network, nodes=[NodeConfig(name=node)], images=images
    )
    with hollow_kubelet(cluster, config, tmp_path / "k", shutdown_grace_seconds=3):
        core_v1.create_namespaced_pod(namespace, standin_pod("vllm", node))
        wait_ready(core_v1, namespace, "vllm")
        ip = read(core_v1, namespace, "vllm").status.pod_ip
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{ip}:8000/health", timeout=2)
