"""Events the kubelet reports on Pods (Pulled, Created, Started, Killing, Unhealthy, BackOff...).

Best effort and fire-and-forget, as in the kubelet: an event that cannot be written is dropped
(logged at debug level), never delaying the Pod.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Literal

from localcluster.kubelet.clock import rfc3339
from localcluster.kubelet.kubeapi import KubeApi
from localcluster.kubelet.podspec import PodView

_log = logging.getLogger(__name__)
EventType = Literal["Normal", "Warning"]


class EventRecorder:
    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._pending: set[asyncio.Task[None]] = set()

    def pod_event(
        self,
        pod: PodView,
        kind: EventType,
        reason: str,
        message: str,
        *,
        container: str | None = None,
        init: bool = False,
    ) -> None:
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
        }
        if container is not None:
            field = "initContainers" if init else "containers"
            involved["fieldPath"] = f"spec.{field}{{{container}}}"
        now = rfc3339()
        event = {
            "metadata": {"name": f"{pod.name}.{secrets.token_hex(8)}", "namespace": pod.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": pod.node_name or ""},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        task = asyncio.get_running_loop().create_task(self._send(pod.namespace, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, namespace: str, event: dict[str, object]) -> None:
        try:
            await self._api.create_event(namespace, event)
        except Exception as exc:
            _log.debug("event dropped", extra={"reason": event["reason"], "error": str(exc)})

    async def drain(self, seconds: float = 2.0) -> None:
        """Waits briefly for events in flight (at shutdown)."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=seconds)
