"""An environment for fma on the local cluster: hollow GPU nodes, CRDs, RBAC, controller processes.

    with fma_environment(cluster, tmp_path, nodes=3) as env:
        env.apply_launcher_config(...); env.apply_isc(...)
        controller = env.start_controller()
        env.create_deployment("chat", requester_template(...))

One environment is meant to serve a whole test module (cluster start-up costs seconds): it owns
a namespace, a hollow kubelet with uniquely named GPU nodes, the `gpu-map` ConfigMap for
them (written here as an installer script would, contracts §2.4), the identities the components
run as — the controllers' `…-fma-controllers` ServiceAccount identity bound to the rules of
`controller/rbac.yaml`, and a launcher identity that may read `gpu-map` — and the controllers it
started. Tests isolate themselves by using nodes and object names of their own.

The end-to-end tests, the benchmarks and the demo use it. Manifests are in
`localcluster/fma/manifests.py`, the controller process in `localcluster/fma/controller_process.py`;
the tests' inspection helpers (Pods, launchers, instances, metrics, invariants) stay in
`tests/e2e/inspect.py`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import kubernetes.client
import yaml
from kubernetes.client.exceptions import ApiException

from localcluster.controlplane import LocalCluster
from localcluster.fma import manifests
from localcluster.fma.controller_process import (
    VENV_BIN,
    ControllerProcess,
    issue_control_credential,
    wait_for,
)
from localcluster.kubelet import (
    BackoffConfig,
    HollowKubeletHandle,
    ImageConfig,
    KubeletConfig,
    NodeConfig,
    gpu_uuid,
    hollow_kubelet,
)
from localcluster.stack import default_images, install_crds

__all__ = [
    "ControllerProcess",
    "FmaEnvironment",
    "controller_args",
    "fma_environment",
    "fma_images",
    "wait_for",
]

RBAC_FILE: Final = Path(__file__).resolve().parents[2] / "controller" / "rbac.yaml"
"""The controllers' ClusterRole rules, as the chart installs them (read, not imported: the
local cluster does not import the product's packages)."""
GROUP: Final = "fma.llm-d.ai"
VERSION: Final = "v1alpha1"


def fma_images() -> dict[str, ImageConfig]:
    """fma's image → `.venv/bin`; `vllm/vllm-openai:*` → the vLLM stand-in."""
    images = default_images()
    images["vllm/vllm-openai:*"] = ImageConfig(
        entrypoint=["fma-vllm-standin"], path=[str(VENV_BIN)]
    )
    return images


@dataclass
class FmaEnvironment:
    """A namespace, hollow GPU nodes and fma's wiring on a running `LocalCluster`."""

    cluster: LocalCluster
    kubelet: HollowKubeletHandle
    namespace: str
    nodes: list[str]
    workdir: Path
    api: kubernetes.client.ApiClient
    controller_kubeconfig: Path
    launcher_kubeconfig: Path
    control_dir: Path
    """The controllers' control credential (`fma-certs ensure-control --dir`): what the chart
    mounts from its Secret at `--control-credentials-dir`."""
    controllers: list[ControllerProcess] = field(default_factory=list)

    @property
    def controller_username(self) -> str:
        """The identity the controllers run as (their kubeconfig's user)."""
        return controller_user(self.namespace)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def wait(self, what: str, check: Any, timeout: float = 30.0) -> Any:
        """`wait_for`, with the controllers' last log lines in the failure message."""
        try:
            return wait_for(what, check, timeout=timeout)
        except AssertionError as exc:
            logs = "\n".join(f"--- {c.name}:\n{c.log_tail(80)}" for c in self.controllers)
            raise AssertionError(f"{exc}\n{logs}") from None

    # ----- controllers -------------------------------------------------------------------------

    def start_controller(
        self, *args: str, name: str = "controller-0", wait: bool = True
    ) -> ControllerProcess:
        """`fma-controller` with this environment's identity, namespace and control credential
        (and `args`)."""
        own = (
            [] if "--control-auth" in args else ["--control-credentials-dir", str(self.control_dir)]
        )
        process = ControllerProcess(
            name,
            [*own, *args],
            namespace=self.namespace,
            kubeconfig=self.controller_kubeconfig,
            log_dir=self.workdir / "controllers",
        )
        self.controllers.append(process)
        process.start(wait=wait)
        return process

    # ----- custom resources --------------------------------------------------------------------

    def apply_launcher_config(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """An LC whose launchers fork the stand-in (see `manifests.launcher_config`)."""
        body = manifests.launcher_config(name, kubeconfig=self.launcher_kubeconfig, **kwargs)
        return self.apply("launcherconfigs", body)

    def apply_isc(self, name: str, **kwargs: Any) -> dict[str, Any]:
        body = manifests.inference_server_config(name, **kwargs)
        return self.apply("inferenceserverconfigs", body)

    def apply_lpp(self, name: str, **kwargs: Any) -> dict[str, Any]:
        body = manifests.launcher_population_policy(name, **kwargs)
        return self.apply("launcherpopulationpolicies", body)

    def delete_custom(self, plural: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )

    def apply(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an fma custom resource (plural: `launcherconfigs`, ...)."""
        name = body["metadata"]["name"]
        try:
            current = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return dict(
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, body
                )
            )
        updated = {**body, "metadata": {**body["metadata"], **_version(current)}}
        return dict(
            self.custom.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name, updated
            )
        )

    # ----- requesters --------------------------------------------------------------------------

    def create_deployment(self, name: str, template: dict[str, Any], *, replicas: int = 1) -> None:
        body = manifests.deployment(name, template, replicas=replicas)
        self.apps.create_namespaced_deployment(self.namespace, body)

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": replicas}}
        )

    def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self.core.create_namespaced_pod(self.namespace, body)
        return dict(self.api.sanitize_for_serialization(created))

    # ----- nodes -------------------------------------------------------------------------------

    def gpu_map(self) -> dict[str, str]:
        return {
            node: json.dumps({gpu_uuid(node, i): i for i in range(self.gpus_of(node))})
            for node in self.nodes
        }

    def gpus_of(self, node: str) -> int:
        return next(n.gpus for n in self.kubelet.config.nodes if n.name == node)

    def cordon(self, node: str, unschedulable: bool = True) -> None:
        self.core.patch_node(node, {"spec": {"unschedulable": unschedulable}})


def _version(obj: dict[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": obj["metadata"]["resourceVersion"]}


def _create_rbac(env_api: kubernetes.client.ApiClient, namespace: str, user: str) -> None:
    """The rules of controller/rbac.yaml, named for this namespace and bound to `user`."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(env_api)
    unique = f"fma-controllers-{namespace}"
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    for doc in yaml.safe_load_all(RBAC_FILE.read_text()):
        body: dict[str, Any] = copy.deepcopy(doc)
        kind = body["kind"]
        if kind == "Role":
            rbac.create_namespaced_role(namespace, body)
        else:
            body["metadata"]["name"] = unique
            rbac.create_cluster_role(body)
        name = body["metadata"]["name"]
        binding: dict[str, Any] = {
            "metadata": {"name": name},
            "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        }
        if kind == "Role":
            rbac.create_namespaced_role_binding(namespace, binding)
        else:
            rbac.create_cluster_role_binding(binding)


def _launcher_identity(cluster: LocalCluster, api: kubernetes.client.ApiClient, ns: str) -> Path:
    """A launcher identity allowed to read the `gpu-map` ConfigMap (mock GPU mode)."""
    user = f"system:serviceaccount:{ns}:fma-launcher"
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    rule = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["gpu-map"],
            "verbs": ["get"]}  # fmt: skip
    rbac.create_namespaced_role(ns, {"metadata": {"name": "fma-launcher"}, "rules": [rule]})
    group = "rbac.authorization.k8s.io"
    binding: dict[str, Any] = {
        "metadata": {"name": "fma-launcher"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": group}],
        "roleRef": {"apiGroup": group, "kind": "Role", "name": "fma-launcher"},
    }
    rbac.create_namespaced_role_binding(ns, binding)
    return cluster.kubeconfig_for(user, ("system:serviceaccounts", "system:authenticated"))


@contextlib.contextmanager
def fma_environment(
    cluster: LocalCluster,
    workdir: Path,
    *,
    nodes: int = 3,
    gpus_per_node: int = 1,
    node_labels: dict[str, str] | None = None,
) -> Iterator[FmaEnvironment]:
    """Everything of the module docstring; torn down (controllers, kubelet, namespace) after."""
    install_crds(cluster)
    suffix = secrets.token_hex(3)
    namespace = f"e2e-{suffix}"
    names = [f"e2e-{suffix}-{i}" for i in range(nodes)]
    api = cluster.api_client()
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"fma-test": "true"}}})
    user = controller_user(namespace)
    _create_rbac(api, namespace, user)
    controller_kubeconfig = cluster.kubeconfig_for(
        user, ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    )
    launcher_kubeconfig = _launcher_identity(cluster, api, namespace)
    control_dir = issue_control_credential(workdir / "control")
    core.create_namespaced_config_map(namespace, manifests.control_trust_config_map(control_dir))
    config = KubeletConfig(
        pod_network=cluster.pod_network,
        nodes=[NodeConfig(name=name, gpus=gpus_per_node, labels=dict(node_labels or {}))
               for name in names],
        images=fma_images(),
        restart_backoff=BackoffConfig(initial_seconds=1, max_seconds=5),
    )  # fmt: skip
    with hollow_kubelet(cluster, config, workdir / "kubelet") as kubelet:
        env = FmaEnvironment(
            cluster, kubelet, namespace, names, workdir, api,
            controller_kubeconfig, launcher_kubeconfig, control_dir,
        )  # fmt: skip
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "gpu-map"}, "data": env.gpu_map()}
        )
        try:
            yield env
        finally:
            _teardown(env, core)
    api.close()


def controller_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:e2e-fma-controllers"


def _teardown(env: FmaEnvironment, core: kubernetes.client.CoreV1Api) -> None:
    """Stop controllers, then let Pods go: finalizers would hold them (no controller left)."""
    for process in env.controllers:
        process.stop()
    for pod in core.list_namespaced_pod(env.namespace).items:
        if pod.metadata.finalizers:
            with contextlib.suppress(ApiException):
                core.patch_namespaced_pod(
                    pod.metadata.name, env.namespace, {"metadata": {"finalizers": None}}
                )
    core.delete_namespace(env.namespace)
    rbac = kubernetes.client.RbacAuthorizationV1Api(env.api)
    unique = f"fma-controllers-{env.namespace}"
    with contextlib.suppress(ApiException):
        rbac.delete_cluster_role_binding(unique)
        rbac.delete_cluster_role(unique)


def controller_args(*extra: str) -> Sequence[str]:
    """Flags that keep end-to-end runs quick (short failure and sleep timeouts)."""
    return (
        "--num-workers", "4",
        "--failed-requester-delete-after", "2",
        "--sleep-deadline", "20",
        "--instance-start-timeout", "60",
        *extra,
    )  # fmt: skip
