"""One Pod bound to one of our nodes, from admission to deletion (the kubelet's pod worker).

Admission gives the Pod an IP of its node's range and its GPUs; init containers then run in
order, each to success; then the app containers run side by side, restarted per restartPolicy.
Every state change marks the status dirty; a writer patches the status subresource when the
computed status differs from the last one the apiserver returned. On deletion the containers get
SIGTERM, the grace period, SIGKILL; the GPUs are freed and the Pod is deleted with grace 0 and a
uid precondition.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from localcluster.kubelet.clock import rfc3339
from localcluster.kubelet.container import ContainerRunner, PodContext
from localcluster.kubelet.gpus import GpuAdmissionError
from localcluster.kubelet.logfiles import pod_log_dir
from localcluster.kubelet.network import NodeNetwork
from localcluster.kubelet.podspec import ContainerSpec, parse_pod
from localcluster.kubelet.podstatus import (
    ContainerStatus,
    PodFacts,
    Terminated,
    Waiting,
    compute_status,
    status_changed,
)
from localcluster.kubelet.services import Services

_log = logging.getLogger(__name__)
_COALESCE_SECONDS = 0.05
"""State changes that come together (admission, container start) go into one status write;
readiness changes are written at once, as the real kubelet's prober does."""
EndReason = Literal["deleted", "vanished", "shutdown"]


@dataclass(frozen=True)
class NodeInfo:
    name: str
    network: NodeNetwork
    allocatable: dict[str, str]


def _resource_version(raw: dict[str, Any]) -> int:
    try:
        return int(raw.get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


class PodWorker:
    def __init__(
        self,
        services: Services,
        node: NodeInfo,
        raw: dict[str, Any],
        on_done: Callable[[str], None],
    ) -> None:
        self.services = services
        self.node = node
        self.pod = parse_pod(raw)
        self.uid = self.pod.uid
        self._rv = _resource_version(raw)
        self._on_done = on_done
        self._dirty = asyncio.Event()
        self._urgent = False
        self._end = asyncio.Event()
        self._end_reason: EndReason = "deleted"
        self._shutdown_grace = 0.0
        self._runners: list[ContainerRunner] = []
        self._admission_failure: tuple[str, str] | None = None
        self._admitted = False  # only an admitted Pod's status is ours to write
        self._pod_ip: str | None = None
        self._start_time = str(self.pod.status.get("startTime") or rfc3339())
        self.init_statuses = [self._recover(c, init=True) for c in self.pod.init_containers]
        self.statuses = [self._recover(c, init=False) for c in self.pod.containers]
        self.log_dir = pod_log_dir(services.state_dir, self.pod.namespace, self.pod.name, self.uid)

    # ----- inputs ----------------------------------------------------------------------------

    def observe(self, raw: dict[str, Any]) -> None:
        """A newer version of the Pod (watch event or our own patch's response)."""
        rv = _resource_version(raw)
        if rv and rv < self._rv:
            return
        self._rv = rv
        self.pod = parse_pod(raw)
        if self.pod.deletion_timestamp is not None:
            self._request_end("deleted", self._grace())
        self._dirty.set()

    def vanished(self) -> None:
        """The Pod is gone from the API (force deletion): kill its containers, write nothing."""
        self._request_end("vanished", self._grace())

    def shutdown(self, max_grace: float) -> None:
        """The kubelet stops: end the containers, keep the Pod (and its GPUs) for the next run."""
        self._shutdown_grace = max_grace
        self._request_end("shutdown", min(self._grace(), max_grace))

    def _request_end(self, reason: EndReason, grace: float) -> None:
        if not self._end.is_set():
            self._end_reason = reason
            self._end.set()
        for runner in self._runners:
            runner.stop(grace)

    def _grace(self) -> float:
        grace = self.pod.deletion_grace_seconds
        if grace is None:
            grace = self.pod.termination_grace_seconds
        return max(float(grace), self.services.config.minimum_grace_seconds)

    # ----- main ------------------------------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._status_loop())
        lifecycle: asyncio.Task[None] | None = None
        try:
            if self.pod.deletion_timestamp is not None:  # deleted while no kubelet ran
                self._request_end("deleted", self._grace())
            elif self.pod.phase not in ("Succeeded", "Failed") and self._admit():
                lifecycle = asyncio.create_task(self._lifecycle())
            else:
                self._release_gpus()
            self._dirty.set()
            await self._end.wait()
            if lifecycle is not None:
                await lifecycle
            await self._finish(writer)
        except Exception:
            _log.exception("pod worker failed", extra={"pod": self.pod.key})
            raise
        finally:
            writer.cancel()
            if lifecycle is not None:
                lifecycle.cancel()
            self._on_done(self.uid)

    def _admit(self) -> bool:
        """Pod IP and GPUs; a GPU shortage fails the Pod as the device manager does."""
        self._admitted = True
        ips = self.services.ips[self.node.name]
        previous_ip = self.pod.status.get("podIP")
        if previous_ip and self.uid not in ips.by_pod:
            ips.restore([(self.uid, str(previous_ip))])
        if (self.pod.raw.get("spec") or {}).get("hostNetwork"):
            self._pod_ip = self.node.network.node_ip  # shares the node's address, as on a node
        else:
            self._pod_ip = ips.allocate(self.uid)
        try:
            for container in self.pod.init_containers:
                self._allocate(container, init=True)
            for container in self.pod.containers:
                self._allocate(container, init=False)
        except GpuAdmissionError as exc:
            self._release_gpus()
            self._admission_failure = ("UnexpectedAdmissionError", f"Pod {exc}")
            return False
        finally:
            self.services.save_checkpoint()
        if self._pod_ip is None:
            self._admission_failure = ("OutOfpods", "Node has no free Pod IP address")
            return False
        return True

    def _allocate(self, container: ContainerSpec, *, init: bool) -> None:
        self.services.gpus.allocate(
            self.node.name, self.uid, container.name, container.gpus, init=init
        )

    def _release_gpus(self) -> None:
        if self.services.gpus.release_pod(self.uid):
            self.services.save_checkpoint()

    def _context(self) -> PodContext:
        return PodContext(
            pod=lambda: self.pod,
            pod_ip=self._pod_ip or "",
            host_ip=self.node.network.node_ip,
            node_allocatable=self.node.allocatable,
            log_dir=self.log_dir,
            work_dir=self.services.state_dir / "work" / self.uid,
            on_change=self._dirty.set,
            on_readiness_change=self._readiness_changed,
        )

    def _readiness_changed(self) -> None:
        self._urgent = True
        self._dirty.set()

    def _runner(self, spec: ContainerSpec, status: ContainerStatus) -> ContainerRunner:
        devices = self.services.gpus.devices_of(self.uid).get(spec.name, ())
        return ContainerRunner(self.services, self._context(), spec, status, devices)

    async def _lifecycle(self) -> None:
        for spec, status in zip(self.pod.init_containers, self.init_statuses, strict=True):
            if status.ready:  # succeeded before a kubelet restart
                continue
            runner = self._runner(spec, status)
            self._runners = [runner]
            if self._end.is_set():
                return
            ended = await runner.supervise()
            if ended is None or ended.exit_code != 0:
                if ended is not None:
                    self._release_gpus()  # the Pod failed (restartPolicy Never)
                return
            status.ready = True
            self._dirty.set()
        runners = [
            self._runner(spec, status)
            for spec, status in zip(self.pod.containers, self.statuses, strict=True)
            if not isinstance(status.state, Terminated)
        ]
        self._runners = runners
        if self._end.is_set() or not runners:
            return
        await asyncio.gather(*(runner.supervise() for runner in runners))
        if not self._end.is_set():
            self._release_gpus()  # every container ended for good: the Pod is terminal
            self._dirty.set()

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        writer.cancel()
        reason = self._end_reason
        if reason != "shutdown":
            self._release_gpus()
            self.services.ips[self.node.name].release(self.uid)
            self.services.save_checkpoint()
            self.services.restart_backoff.forget(f"{self.uid}/")
            shutil.rmtree(self.services.state_dir / "work" / self.uid, ignore_errors=True)
        if reason == "vanished":
            return
        try:
            await self._write_status()
        except (ApiException, OSError) as exc:
            _log.warning(
                "final status write failed", extra={"pod": self.pod.key, "error": str(exc)}
            )
        if reason == "deleted":
            await self._delete()

    async def _delete(self) -> None:
        for attempt in range(5):
            try:
                await self.services.api.delete_pod_now(self.pod.namespace, self.pod.name, self.uid)
                _log.info("pod deleted", extra={"pod": self.pod.key, "uid": self.uid})
                return
            except (ApiException, OSError) as exc:
                _log.warning("pod delete failed", extra={"pod": self.pod.key, "error": str(exc)})
                await asyncio.sleep(0.5 * (attempt + 1))

    # ----- status ----------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if not self._urgent:
                await asyncio.sleep(_COALESCE_SECONDS)
            self._dirty.clear()
            self._urgent = False
            try:
                await self._write_status()
            except (ApiException, OSError) as exc:
                _log.warning("status write failed", extra={"pod": self.pod.key, "error": str(exc)})
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def _write_status(self) -> None:
        if not self._admitted:
            return
        facts = PodFacts(
            host_ip=self.node.network.node_ip,
            pod_ip=self._pod_ip,
            start_time=self._start_time,
            now=rfc3339(),
            admission_failure=self._admission_failure,
        )
        desired = compute_status(self.pod, self.init_statuses, self.statuses, facts)
        if not status_changed(desired, self.pod.status):
            return
        try:
            updated = await self.services.api.patch_pod_status(
                self.pod.namespace, self.pod.name, desired
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if updated.get("metadata", {}).get("uid") == self.uid:
            self.observe(updated)

    # ----- recovery --------------------------------------------------------------------------

    def _recover(self, spec: ContainerSpec, *, init: bool) -> ContainerStatus:
        """A container's status, continued from the Pod's status after a kubelet restart.

        Processes do not survive the hollow kubelet; an instance the status shows as running is
        reported dead (exit 137, ContainerStatusUnknown), and restartPolicy decides, as after a
        node reboot. An init container that had succeeded stays succeeded.
        """
        waiting = (
            "PodInitializing" if self.pod.init_containers and not init else "ContainerCreating"
        )
        status = ContainerStatus(spec.name, spec.image, init=init, state=Waiting(waiting))
        key = "initContainerStatuses" if init else "containerStatuses"
        previous = next(
            (s for s in self.pod.status.get(key) or () if s.get("name") == spec.name), None
        )
        if previous is None or not previous.get("containerID"):
            return status
        status.restart_count = int(previous.get("restartCount") or 0)
        status.image_id = str(previous.get("imageID") or "")
        state = previous.get("state") or {}
        if init and (state.get("terminated") or {}).get("exitCode") == 0:
            status.state = _terminated(state["terminated"])
            status.ready = True
            return status
        if (terminated := state.get("terminated")) and self.pod.phase in ("Succeeded", "Failed"):
            status.state = _terminated(terminated)
            return status
        lost = Terminated(
            137,
            "ContainerStatusUnknown",
            rfc3339(),
            message="The container could not be located when the pod was terminated",
            container_id=str(previous.get("containerID")),
        )
        policy = (
            "OnFailure" if init and self.pod.restart_policy == "Always" else self.pod.restart_policy
        )
        if policy == "Never":
            status.state = lost
        else:
            status.last_state = lost
            status.restart_count += 1
        return status


def _terminated(raw: dict[str, Any]) -> Terminated:
    return Terminated(
        exit_code=int(raw.get("exitCode", 0)),
        reason=str(raw.get("reason") or ""),
        finished_at=str(raw.get("finishedAt") or rfc3339()),
        started_at=raw.get("startedAt"),
        message=raw.get("message"),
        container_id=raw.get("containerID"),
    )
