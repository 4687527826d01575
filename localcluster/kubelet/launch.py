"""Starting the hollow kubelet from tests and the demo, and stopping it without leftovers.

    config = KubeletConfig(pod_network=cluster.pod_network, nodes=[NodeConfig(name="n1", gpus=2)],
                           images={"fma/test-server:1": ImageConfig(cmd=["python3", ...])})
    with hollow_kubelet(cluster, config, tmp_path / "kubelet") as kubelet:
        ...  # the Nodes are Ready; Pods bound to them run as local processes

`start_hollow_kubelet` returns the `ManagedProcess` once every Node is Ready and schedulable;
`hollow_kubelet` also stops it (SIGTERM: containers end, Nodes are deleted) and checks that no
process it started survived.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import kubernetes.client
import psutil
from kubernetes.client.exceptions import ApiException

from localcluster.kubelet.config import KubeletConfig, dump_config
from localcluster.kubelet.logfiles import LogOptions, find_container_dir, iter_log, select_instance
from localcluster.kubelet.nodes import NOT_READY_TAINT
from localcluster.processes import ManagedProcess, wait_until

_START_TIMEOUT_S = 30.0


class ClusterLike(Protocol):
    """What the launcher needs of `localcluster.controlplane.LocalCluster`."""

    @property
    def kubeconfig(self) -> Path: ...

    def api_client(self) -> kubernetes.client.ApiClient: ...


def start_hollow_kubelet(
    cluster: ClusterLike,
    config: KubeletConfig,
    state_dir: Path,
    *,
    delete_nodes_on_exit: bool = True,
    shutdown_grace_seconds: float = 10.0,
    timeout: float = _START_TIMEOUT_S,
) -> ManagedProcess:
    """Starts `fma-hollow-kubelet run` and waits until all its Nodes are Ready and untainted."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = state_dir / "kubelet-config.yaml"
    config_path.write_text(dump_config(config))
    argv = [
        sys.executable, "-m", "localcluster.kubelet.cli", "run",
        "--kubeconfig", str(cluster.kubeconfig),
        "--config", str(config_path),
        "--state-dir", str(state_dir),
        "--shutdown-grace-seconds", str(shutdown_grace_seconds),
    ]  # fmt: skip
    if delete_nodes_on_exit:
        argv.append("--delete-nodes-on-exit")
    process = ManagedProcess("hollow-kubelet", argv, log_path=state_dir / "kubelet.log")
    process.start()
    client = cluster.api_client()
    try:
        core = kubernetes.client.CoreV1Api(client)
        names = [n.name for n in config.nodes]
        wait_until(
            f"Nodes {names} Ready",
            lambda: all(_node_ready(core, name) for name in names),
            timeout=timeout,
            interval=0.1,
            process=process,
        )
    except BaseException:
        process.stop(grace_seconds=shutdown_grace_seconds)
        raise
    finally:
        client.close()
    return process


def _node_ready(core: Any, name: str) -> bool:
    try:
        node = core.read_node(name)
    except ApiException:
        return False
    conditions = {c.type: c.status for c in node.status.conditions or ()}
    taints = {t.key for t in node.spec.taints or ()}
    return conditions.get("Ready") == "True" and NOT_READY_TAINT not in taints


@dataclass
class HollowKubeletHandle:
    """A running hollow kubelet, for tests."""

    process: ManagedProcess
    config: KubeletConfig
    state_dir: Path

    def logs(
        self, namespace: str, pod: str, container: str | None = None, *, previous: bool = False
    ) -> str:
        """A container's output, read from the state directory (no apiserver involved)."""
        directory = find_container_dir(self.state_dir, namespace, pod, container)
        path = select_instance(directory, directory.name, pod, previous)
        return b"".join(c for c in iter_log(path, LogOptions()) if c is not None).decode()

    def descendants(self) -> list[psutil.Process]:
        """Every live process the kubelet started (containers, probes, the reaper)."""
        try:
            return psutil.Process(self.process.pid or -1).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


@contextlib.contextmanager
def hollow_kubelet(
    cluster: ClusterLike,
    config: KubeletConfig,
    state_dir: Path,
    *,
    shutdown_grace_seconds: float = 10.0,
    check_leftovers: bool = True,
) -> Iterator[HollowKubeletHandle]:
    """Runs a hollow kubelet for the block; stops it, deletes its Nodes, checks for leftovers."""
    process = start_hollow_kubelet(
        cluster, config, state_dir, shutdown_grace_seconds=shutdown_grace_seconds
    )
    handle = HollowKubeletHandle(process, config, state_dir)
    try:
        yield handle
    finally:
        started = handle.descendants()
        code = process.stop(grace_seconds=shutdown_grace_seconds + 10)
        _delete_nodes(cluster, [n.name for n in config.nodes])
        leftovers = _wait_gone(started, timeout=5.0)
        if check_leftovers and (leftovers or code not in (0, None)):
            raise RuntimeError(
                f"hollow kubelet exited with {code} and left {len(leftovers)} processes "
                f"({[p.pid for p in leftovers]}); log: {process.log_path}\n{process.log_tail()}"
            )


def _delete_nodes(cluster: ClusterLike, names: list[str]) -> None:
    """Fallback for a kubelet that could not delete its Nodes itself."""
    client = cluster.api_client()
    try:
        core = kubernetes.client.CoreV1Api(client)
        for name in names:
            with contextlib.suppress(ApiException):
                core.delete_node(name)
    finally:
        client.close()


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive after `timeout`; those are killed."""
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.05)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return alive


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
