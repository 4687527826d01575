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
from localcluster.controlplane import LocalCluster
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
) -> Iterator[LocalStack]:
    """Starts the control plane and `nodes` hollow GPU nodes; stops everything on exit."""
    with LocalCluster(workdir / "cluster") as cluster:
        config = KubeletConfig(
            pod_network=cluster.pod_network,
            nodes=[NodeConfig(name=f"gpu-node-{i + 1}", gpus=gpus_per_node) for i in range(nodes)],
            images=dict(images if images is not None else default_images()),
        )
        with hollow_kubelet(cluster, config, workdir / "kubelet") as kubelet:
            yield LocalStack(cluster, kubelet)
