"""`fma_duality`: 1 per GPU while a requester is bound to a launcher instance (contracts §12).

Series are keyed by (namespace, requester, launcher Pod, container, instance ID, GPU UUID,
node); a series that stops describing the binding is set to 0, and all of a server's series go
to 0 once both of its Pods are gone (`ForgetServer`), as the reference does.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Gauge

from contract import keys, objects
from controller.core import ServerMemory, ServerSnapshot

_Series = tuple[str, str, str, str, str, str, str]
_CONTAINER: Final = objects.INFERENCE_SERVER


class Duality:
    """The series of each server (by requester UID)."""

    def __init__(self, gauge: Gauge, namespace: str) -> None:
        self.gauge = gauge
        self.namespace = namespace
        self._series: dict[str, set[_Series]] = {}

    def update(self, snap: ServerSnapshot, memory: ServerMemory) -> None:
        series = self._wanted(snap, memory)
        old = self._series.get(snap.requester_uid, set())
        for labels in series - old:
            self.gauge.labels(*labels).set(1)
        for labels in old - series:
            self.gauge.labels(*labels).set(0)
        if series:
            self._series[snap.requester_uid] = series
        else:
            self._series.pop(snap.requester_uid, None)

    def forget(self, uid: str) -> None:
        for labels in self._series.pop(uid, set()):
            self.gauge.labels(*labels).set(0)

    def _wanted(self, snap: ServerSnapshot, memory: ServerMemory) -> set[_Series]:
        req = snap.requester
        if req is None or len(snap.providers) != 1 or not memory.gpu_uuids:
            return set()
        provider = snap.providers[0]
        iid = provider.annotations.get(keys.INSTANCE_ID)
        if keys.LC_NAME not in provider.labels or not iid:
            return set()
        node = provider.node or ""
        return {
            (self.namespace, req.name, provider.name, _CONTAINER, iid, uuid, node)
            for uuid in memory.gpu_uuids
        }
