"""The dual-pods benchmarks' cluster: control plane, hollow GPU nodes, fma-controller, a watcher.

    setup = BenchSetup(nodes=20, gpus_per_node=1, probe_period_scale=0.05)
    with bench_environment(workdir, setup) as env:
        env.apply_custom("inferenceserverconfigs", manifests.inference_server_config(...))
        env.create_deployment("bench", template, replicas=20)
        env.watcher.wait("all Ready", check, timeout=60)

The hollow kubelet hosts the requester stub and the vLLM stand-in in its own process when the
setup says so (`inProcess`, see `localcluster/kubelet/inprocess.py`); launchers always run as
processes. Nodes may be spread over several kubelet processes (`kubelets`). The controller runs
as its own process (`fma-controller`, admin credentials, one replica without leader election),
so its resident memory can be sampled alone.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import kubernetes.client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from bench._observe import PodWatcher, RssSampler, process_cpu_seconds
from localcluster.controlplane import LocalCluster
from localcluster.fma import manifests
from localcluster.fma.controller_process import issue_control_credential
from localcluster.kubelet import (
    ImageConfig,
    KubeletConfig,
    NodeConfig,
    gpu_uuid,
    start_hollow_kubelet,
)
from localcluster.processes import ManagedProcess, free_port
from localcluster.stack import install_crds

REPO: Final = Path(__file__).resolve().parents[1]
VENV_BIN: Final = Path(sys.executable).parent
GROUP, VERSION = "fma.llm-d.ai", "v1alpha1"
NAMESPACE: Final = "bench"


@dataclass(frozen=True, kw_only=True)
class BenchSetup:
    nodes: int
    gpus_per_node: int
    kubelets: int = 1
    requester_in_process: bool = True
    standin_in_process: bool = True
    probe_period_scale: float = 1.0
    controller_args: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """What the JSON report says about the setup."""
        return {
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "kubelet_processes": self.kubelets,
            "requester_stub": "in-process" if self.requester_in_process else "process",
            "vllm_standin": "in-process" if self.standin_in_process else "process",
            "probe_period_scale": self.probe_period_scale,
            "controller_args": list(self.controller_args),
        }


def images(setup: BenchSetup) -> dict[str, ImageConfig]:
    """fma's image (`fma-requester`, `fma-launcher` from the virtualenv) and vLLM's (stand-in)."""
    fma_in_process = {"fma-requester": "requester"} if setup.requester_in_process else {}
    standin_in_process = {"fma-vllm-standin": "vllm-standin"} if setup.standin_in_process else {}
    return {
        "ghcr.io/llm-d/fma:*": ImageConfig(
            path=[str(VENV_BIN)],
            env={"FMA_REQUESTER_GPU_SOURCE": "env"},
            in_process={**fma_in_process, **standin_in_process},
        ),
        "vllm/vllm-openai:*": ImageConfig(
            entrypoint=["fma-vllm-standin"], path=[str(VENV_BIN)], in_process=standin_in_process
        ),
    }


@dataclass
class BenchEnv:
    cluster: LocalCluster
    setup: BenchSetup
    nodes: list[str]
    workdir: Path
    api: kubernetes.client.ApiClient
    watcher: PodWatcher
    controller: ManagedProcess | None = None
    metrics_port: int = 0
    rss: RssSampler | None = None
    kubelets: list[ManagedProcess] = field(default_factory=list)
    namespace: str = NAMESPACE

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    def apply_custom(self, plural: str, body: dict[str, Any]) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)

    def create_deployment(self, name: str, template: dict[str, Any], replicas: int) -> None:
        body = manifests.deployment(name, template, replicas=replicas)
        self.apps.create_namespaced_deployment(self.namespace, body)

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": replicas}}
        )

    def start_controller(self) -> None:
        self.metrics_port = free_port()
        argv = [
            str(VENV_BIN / "fma-controller"),
            "--namespace", self.namespace,
            "--kubeconfig", str(self.cluster.kubeconfig),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            # One replica: no Lease. On a loaded 2-core machine a lease renewal can miss its
            # 10 s deadline during the cold round, and the controller would exit by design.
            "--no-leader-elect",
            # Authentication on, as installed: every call to a launcher or stub is signed.
            "--control-credentials-dir", str(self.workdir / "control"),
            *self.setup.controller_args,
        ]  # fmt: skip
        log = self.workdir / "controller.log"
        self.controller = ManagedProcess("fma-controller", argv, log_path=log, cwd=REPO)
        self.controller.start()
        deadline = time.monotonic() + 60
        while not self._controller_ready():
            if not self.controller.running() or time.monotonic() > deadline:
                raise RuntimeError(f"fma-controller did not start:\n{self.controller.log_tail()}")
            time.sleep(0.1)
        assert self.controller.pid is not None
        self.rss = RssSampler(self.controller.pid)
        self.rss.start()

    def _controller_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The sum of the controller's samples of `name` matching `labels`."""
        return sum(self.metric_by(name, "", labels).values(), 0.0)

    def metric_by(
        self, name: str, label: str, labels: dict[str, str] | None = None
    ) -> dict[str, float]:
        """The controller's samples of `name` matching `labels`, summed per value of `label`."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
                    key = sample.labels.get(label, "")
                    totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def controller_timings(self) -> dict[str, Any]:
        """Mean queue wait and pass duration, and mean latency of each kind of HTTP call, from
        the controller's own histograms (whole run)."""
        queue = "fma_dpc_innerqueue"
        waits = sum(self.metric_by(f"{queue}_queue_duration_seconds_sum", "").values())
        work = sum(self.metric_by(f"{queue}_work_duration_seconds_sum", "").values())
        passes = sum(self.metric_by(f"{queue}_work_duration_seconds_count", "").values())
        http_sum = self.metric_by("fma_http_latency_seconds_sum", "purpose")
        http_count = self.metric_by("fma_http_latency_seconds_count", "purpose")
        return {
            "passes": int(passes),
            "mean_queue_wait_ms": round(1000 * waits / max(passes, 1), 1),
            "mean_pass_ms": round(1000 * work / max(passes, 1), 1),
            "http_calls": {
                purpose: {
                    "count": int(count),
                    "mean_ms": round(1000 * http_sum[purpose] / count, 1),
                }
                for purpose, count in sorted(http_count.items())
                if count
            },
            "gpu_prefetch": {
                outcome: int(count)
                for outcome, count in sorted(
                    self.metric_by("fma_gpu_prefetch_total", "outcome").items()
                )
            },
        }

    def controller_cpu_seconds(self) -> float:
        assert self.controller is not None and self.controller.pid is not None
        return process_cpu_seconds(self.controller.pid)


def _kubelet_configs(cluster: LocalCluster, setup: BenchSetup) -> list[KubeletConfig]:
    """The nodes dealt round-robin over `setup.kubelets` processes, each with its own subnet."""
    nodes = [
        NodeConfig(name=f"bench-{i:03d}", gpus=setup.gpus_per_node, cpu="64", memory="512Gi",
                   subnet=i + 1)
        for i in range(setup.nodes)
    ]  # fmt: skip
    return [
        KubeletConfig(
            pod_network=cluster.pod_network,
            nodes=nodes[shard :: setup.kubelets],
            images=images(setup),
            restart_backoff={"initialSeconds": 1, "maxSeconds": 5},
            probe_period_scale=setup.probe_period_scale,
            node_status_update_seconds=30,
            lease_renew_seconds=10,
        )
        for shard in range(setup.kubelets)
        if nodes[shard :: setup.kubelets]
    ]


def _namespace(core: kubernetes.client.CoreV1Api, nodes: list[str], control_dir: Path) -> None:
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    gpu_map = {node: json.dumps({gpu_uuid(node, i): i for i in range(64)}) for node in nodes}
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "gpu-map"}, "data": gpu_map})
    trust = manifests.control_trust_config_map(control_dir)  # for the requesters' stubs
    core.create_namespaced_config_map(NAMESPACE, trust)
    deadline = time.monotonic() + 30
    while not any(
        sa.metadata.name == "default" and sa.secrets
        for sa in core.list_namespaced_service_account(NAMESPACE).items
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("the default ServiceAccount got no token")
        time.sleep(0.1)


@contextlib.contextmanager
def bench_environment(workdir: Path, setup: BenchSetup) -> Iterator[BenchEnv]:
    """Cluster, CRDs, namespace `bench` with its `gpu-map`, hollow nodes; stops all after."""
    with LocalCluster(workdir / "cluster") as cluster:
        install_crds(cluster)
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        kubelets = []
        try:
            for index, config in enumerate(_kubelet_configs(cluster, setup)):
                kubelets.append(
                    start_hollow_kubelet(
                        cluster, config, workdir / f"kubelet-{index}", shutdown_grace_seconds=5,
                        timeout=120,
                    )
                )  # fmt: skip
            nodes = [f"bench-{i:03d}" for i in range(setup.nodes)]
            _namespace(core, nodes, issue_control_credential(workdir / "control"))
            watcher = PodWatcher(cluster.api_client(), NAMESPACE)
            watcher.start()
            env = BenchEnv(cluster, setup, nodes, workdir, api, watcher, kubelets=kubelets)
            try:
                yield env
            finally:
                _teardown(env)
        finally:
            for kubelet in kubelets:
                kubelet.stop(grace_seconds=30)
            api.close()


def _teardown(env: BenchEnv) -> None:
    env.watcher.stop()
    if env.rss is not None:
        env.rss.stop()
    if env.controller is not None:
        env.controller.stop(grace_seconds=15)
    with contextlib.suppress(ApiException):
        env.apps.delete_collection_namespaced_deployment(env.namespace)
    for pod in env.core.list_namespaced_pod(env.namespace).items:
        if pod.metadata.finalizers:
            with contextlib.suppress(ApiException):
                env.core.patch_namespaced_pod(
                    pod.metadata.name, env.namespace, {"metadata": {"finalizers": None}}
                )
