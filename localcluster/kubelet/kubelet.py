"""The hollow kubelet: N virtual nodes, their Pods as local processes (or, for the images that
say so, as apps inside this process), in one asyncio process.

Wiring only: nodes (`nodes`), the Pod informer (`podsource`), one `PodWorker` per Pod bound to
one of our nodes, the kubelet HTTPS API per node (`httpserver`), the orphan reaper (`reaper`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes.client

from certs.authority import CertificateAuthority
from localcluster.kubelet.config import KubeletConfig
from localcluster.kubelet.events import EventRecorder
from localcluster.kubelet.gpus import GpuAllocator, node_gpus
from localcluster.kubelet.httpserver import KubeletApi, serve, server_ssl_context
from localcluster.kubelet.inprocess import route_app_logs
from localcluster.kubelet.kubeapi import KubeApi
from localcluster.kubelet.network import PodIpAllocator, node_networks
from localcluster.kubelet.nodes import NodeAgent, capacity
from localcluster.kubelet.podsource import PodSource
from localcluster.kubelet.podspec import PodView
from localcluster.kubelet.podworker import NodeInfo, PodWorker
from localcluster.kubelet.process import GroupRegistry, kill_recorded_groups
from localcluster.kubelet.services import Services

_log = logging.getLogger(__name__)


class HollowKubelet:
    def __init__(
        self,
        config: KubeletConfig,
        *,
        api_client: kubernetes.client.ApiClient,
        config_path: Path,
        state_dir: Path,
        delete_nodes_on_exit: bool = False,
        shutdown_grace_seconds: float = 10.0,
    ) -> None:
        self.config = config
        self.state_dir = state_dir.resolve()
        self.delete_nodes_on_exit = delete_nodes_on_exit
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.api = KubeApi(api_client)
        networks = node_networks(config)
        self.nodes = {n.name: NodeInfo(n.name, networks[n.name], capacity(n)) for n in config.nodes}
        self.agents = [NodeAgent(self.api, config, n, networks[n.name]) for n in config.nodes]
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: set[str] = set()
        self._listed_once = False
        self._config_path = config_path
        self._source: PodSource | None = None
        self.services: Services | None = None

    # ----- run -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if any(image.in_process for image in self.config.images.values()):
            route_app_logs()
        registry_path = self.state_dir / "process-groups.json"
        if killed := kill_recorded_groups(registry_path):
            _log.warning("killed leftover container processes", extra={"count": killed})
        reaper = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "localcluster.kubelet.reaper",
            str(registry_path),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.services = self._services(GroupRegistry(registry_path))
        servers: list[asyncio.Server] = []
        heartbeats: list[asyncio.Task[None]] = []
        try:
            await asyncio.gather(*(agent.register() for agent in self.agents))
            servers = await self._serve()
            heartbeats = [asyncio.create_task(a.heartbeat()) for a in self.agents]
            self._source = PodSource(
                self.api, asyncio.get_running_loop(), self._on_list, self._on_event
            )
            self._source.start()
            _log.info("hollow kubelet running", extra={"nodes": ",".join(self.nodes)})
            await stop.wait()
        finally:
            await self._shutdown(servers, heartbeats)
            reaper.terminate()
            await reaper.wait()

    def _services(self, registry: GroupRegistry) -> Services:
        inventory = {n.name: node_gpus(n.name, n.gpus) for n in self.config.nodes}
        services = Services(
            config=self.config,
            config_path=self._config_path,
            state_dir=self.state_dir,
            api=self.api,
            events=EventRecorder(self.api),
            registry=registry,
            gpus=GpuAllocator(inventory),
            ips={name: PodIpAllocator(info.network) for name, info in self.nodes.items()},
            host_environ=dict(os.environ),
        )
        checkpoint = services.load_checkpoint()
        services.gpus.restore(checkpoint.get("gpus") or {})
        for uid, ip in (checkpoint.get("podIPs") or {}).items():
            for allocator in services.ips.values():
                allocator.restore([(uid, ip)])
        return services

    async def _serve(self) -> list[asyncio.Server]:
        pki = self.state_dir / "pki"
        pki.mkdir(exist_ok=True)
        authority = CertificateAuthority.create(f"fma-hollow-kubelet-ca@{int(time.time())}")
        pair = authority.issue_serving(
            list(self.nodes), [info.network.node_ip for info in self.nodes.values()]
        )
        (pki / "kubelet.crt").write_bytes(pair.cert_pem)
        (pki / "kubelet.key").write_bytes(pair.key_pem)
        (pki / "kubelet.key").chmod(0o600)
        context = server_ssl_context(pki / "kubelet.crt", pki / "kubelet.key")
        servers = []
        for name, info in self.nodes.items():
            api = KubeletApi(name, self.find_pod, self.pods_on, self.healthy)
            servers.append(
                await serve(api, info.network.node_ip, self.config.kubelet_port, context)
            )
        if self.config.healthz_port is not None:
            api = KubeletApi("", self.find_pod, self.pods_on, self.healthy)
            servers.append(await serve(api, "127.0.0.1", self.config.healthz_port, None))
        return servers

    async def _shutdown(
        self, servers: list[asyncio.Server], heartbeats: list[asyncio.Task[None]]
    ) -> None:
        if self._source is not None:
            self._source.stop()
        for worker in list(self.workers.values()):
            worker.shutdown(self.shutdown_grace_seconds)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=self.shutdown_grace_seconds + 5)
        for task in heartbeats:
            task.cancel()
        for server in servers:
            server.close()
        for agent in self.agents:
            try:
                await (agent.delete() if self.delete_nodes_on_exit else agent.mark_unreachable())
            except Exception as exc:
                _log.warning(
                    "node cleanup failed", extra={"node": agent.node.name, "error": str(exc)}
                )
        if self.services is not None:
            self.services.flush_checkpoint()
            await self.services.events.drain()
        _log.info("hollow kubelet stopped")

    # ----- queries (HTTPS API) -----------------------------------------------------------------

    def healthy(self) -> bool:
        return self._source is not None and self._source.healthy.is_set()

    def find_pod(self, node: str, namespace: str, name: str) -> tuple[PodView, Path] | None:
        matches = [
            w
            for w in self.workers.values()
            if w.pod.namespace == namespace
            and w.pod.name == name
            and (not node or w.node.name == node)
        ]
        if not matches:
            return None
        return matches[-1].pod, matches[-1].log_dir

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        return [dict(w.pod.raw) for w in self.workers.values() if not node or w.node.name == node]

    # ----- informer callbacks (on the loop thread) -------------------------------------------

    def _on_list(self, items: list[dict[str, Any]]) -> None:
        present = {str(raw.get("metadata", {}).get("uid")): raw for raw in items}
        if not self._listed_once:
            self._listed_once = True
            self._prune_checkpoint(present)
        for uid, worker in list(self.workers.items()):
            if uid not in present:
                worker.vanished()
        self._finished &= set(present)
        for raw in items:
            self._on_pod(raw)

    def _prune_checkpoint(self, present: dict[str, dict[str, Any]]) -> None:
        """Forgets GPUs and IPs of Pods that are gone or finished since the last run."""
        assert self.services is not None
        for uid in self.services.gpus.pods():
            phase = (present.get(uid) or {}).get("status", {}).get("phase")
            if uid not in present or phase in ("Succeeded", "Failed"):
                self.services.gpus.release_pod(uid)
        for allocator in self.services.ips.values():
            for uid in [u for u in allocator.by_pod if u not in present]:
                allocator.release(uid)
        self.services.save_checkpoint()

    def _on_event(self, kind: str, raw: dict[str, Any]) -> None:
        uid = str(raw.get("metadata", {}).get("uid"))
        if kind == "DELETED":
            self._finished.discard(uid)
            if (worker := self.workers.get(uid)) is not None:
                worker.vanished()
            return
        self._on_pod(raw)

    def _on_pod(self, raw: dict[str, Any]) -> None:
        uid = str(raw.get("metadata", {}).get("uid"))
        node = (raw.get("spec") or {}).get("nodeName")
        if node not in self.nodes or uid in self._finished or self.services is None:
            return
        worker = self.workers.get(uid)
        if worker is not None:
            worker.observe(raw)
            return
        worker = PodWorker(self.services, self.nodes[node], raw, self._worker_done)
        self.workers[uid] = worker
        self._tasks[uid] = asyncio.get_running_loop().create_task(worker.run())

    def _worker_done(self, uid: str) -> None:
        self.workers.pop(uid, None)
        self._tasks.pop(uid, None)
        self._finished.add(uid)
