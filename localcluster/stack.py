"""The whole local cluster in one context manager: control plane plus hollow GPU nodes.

The CLI (`fma-localcluster up`), the demo and the end-to-end tests all need the same thing — a
control plane, some GPU nodes, fma's CRDs — so it is assembled here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from crds import CRD_FILES
from localcluster.controlplane import DEFAULT_PROXY_NODE, KubeProxyMode, LocalCluster
from localcluster.kubelet import (
    HollowKubeletHandle,
    ImageConfig,
    KubeletConfig,
    NodeConfig,
    hollow_kubelet,
)

_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_images() -> dict[str, ImageConfig]:
    """Images the local nodes can run: fma's own image resolves to the repository's virtualenv.

    A Pod naming `ghcr.io/llm-d/fma:<tag>` then runs `fma-requester`, `fma-launcher`, ... from
    `.venv/bin`, the way the real image runs them from its own PATH.
    """
    venv_bin = str(_REPO_ROOT / ".venv" / "bin")
    return {"ghcr.io/llm-d/fma:*": ImageConfig(path=[venv_bin])}


@dataclass
class LocalStack:
    """A running local cluster: its control plane and its hollow kubelet."""

    cluster: LocalCluster
    kubelet: HollowKubeletHandle

    def apply_crds(self) -> None:
        install_crds(self.cluster)


def install_crds(cluster: LocalCluster) -> None:
    """Applies fma's CRDs and waits until the apiserver serves them (Established)."""
    for path in CRD_FILES:
        cluster.kubectl("apply", "-f", str(path))
    for path in CRD_FILES:
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{name}")


@contextlib.contextmanager
def local_stack(
    workdir: Path,
    *,
    nodes: int = 2,
    gpus_per_node: int = 2,
    images: Mapping[str, ImageConfig] | None = None,
    kube_proxy: KubeProxyMode = False,
) -> Iterator[LocalStack]:
    """Starts the control plane and `nodes` hollow GPU nodes; stops everything on exit.

    `kube_proxy` is `LocalCluster`'s: True or "auto" also runs kube-proxy (in a private network
    namespace only), with the first node as its hostname, so NodePort Services answer on
    `127.0.0.1:<nodePort>`.
    """
    names = [f"gpu-node-{i + 1}" for i in range(nodes)]
    proxy_node = names[0] if names else DEFAULT_PROXY_NODE
    with LocalCluster(
        workdir / "cluster", kube_proxy=kube_proxy, kube_proxy_node=proxy_node
    ) as cluster:
        config = KubeletConfig(
            pod_network=cluster.pod_network,
            nodes=[NodeConfig(name=name, gpus=gpus_per_node) for name in names],
            images=dict(images if images is not None else default_images()),
        )
        with hollow_kubelet(cluster, config, workdir / "kubelet") as kubelet:
            yield LocalStack(cluster, kubelet)
