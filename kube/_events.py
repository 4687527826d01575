"""Kubernetes Events (core/v1) on the user's Pods: bind, wake, sleep, failures.

Why core/v1 Events: `kubectl describe pod` shows them, which is where a user whose Pod is not
Ready looks first; the names match the reference (`source.component` is
`dual-pods-controller` or `launcher-populator`, contracts §2.7).

Recording never blocks and never fails the caller: `event()` puts the event on a bounded queue
and a sender task writes it, after `delay_s` if set (a full queue drops the event, with a log
line: a storm of events must not eat the controller's memory). Repeats are aggregated like
client-go does: the same (object, type, reason, message, component) again patches the existing
Event's `count` and `lastTimestamp` instead of creating a new one; the recorder remembers the
last 4096 such keys.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from kube._backoff import Backoff
from kube._client import ApiError, KubeClient
from kube._resources import EVENTS, PODS, JsonObject, ResourceKind, metadata
from kube._time import kube_time, utc_now

_log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
MAX_MESSAGE_CHARS: Final = 1024
_SEND_ATTEMPTS: Final = 3


_HEAD_CHARS: Final = 300


def shorten(message: str) -> str:
    """At most `MAX_MESSAGE_CHARS`, cut in the middle: a message's start says what happened
    and its end, often a log's last lines, says why (vLLM prints the error last)."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    tail = MAX_MESSAGE_CHARS - _HEAD_CHARS - 5
    return f"{message[:_HEAD_CHARS]}\n...\n{message[-tail:]}"


@dataclass(frozen=True, kw_only=True)
class EventSettings:
    component: str = "dual-pods-controller"
    """`source.component` and `reportingComponent`."""
    instance: str = field(default_factory=socket.gethostname)
    """`reportingInstance`: which replica wrote it."""
    queue_size: int = 1000
    aggregation_keys: int = 4096
    delay_s: float = 0.0
    """An event is written this long after it was recorded at the earliest, so that a burst of
    actuations does not share the CPU and the apiserver with its own Events (they are written
    right after it); `kubectl describe` shows them that much later."""
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, maximum_s=5.0))


class EventSink(Protocol):
    """Where Events go: the apiserver in production, a list in unit tests."""

    async def create(self, namespace: str, event: JsonObject) -> JsonObject: ...

    async def patch(self, namespace: str, name: str, patch: JsonObject) -> JsonObject: ...


@dataclass(frozen=True)
class KubeEventSink:
    client: KubeClient

    async def create(self, namespace: str, event: JsonObject) -> JsonObject:
        return await self.client.create(EVENTS, event, namespace=namespace)

    async def patch(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        return await self.client.patch(EVENTS, name, patch, namespace=namespace)


@dataclass(frozen=True)
class _Pending:
    involved: JsonObject
    type: EventType
    reason: str
    message: str
    at: dt.datetime
    due: float = 0.0
    """`loop.time()` before which it is not written (`EventSettings.delay_s`)."""


class EventRecorder:
    """Records Events about objects; run `run()` as a task for them to be written."""

    def __init__(
        self,
        sink: EventSink,
        settings: EventSettings | None = None,
        *,
        wall_clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.sink = sink
        self.settings = settings or EventSettings()
        self._wall_clock = wall_clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(self.settings.queue_size)
        self._seen: collections.OrderedDict[tuple[str, ...], tuple[str, int]] = (
            collections.OrderedDict()
        )
        self.dropped = 0

    def event(
        self,
        obj: JsonObject,
        *,
        type: EventType,
        reason: str,
        message: str,
        kind: ResourceKind = PODS,
    ) -> None:
        """Queues an Event about `obj` (a `kind`, Pod by default); never blocks or raises."""
        meta = metadata(obj)
        involved = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        involved = {k: v for k, v in involved.items() if v}
        text = shorten(message)
        delay = self.settings.delay_s
        due = asyncio.get_running_loop().time() + delay if delay > 0 else 0.0
        try:
            self._queue.put_nowait(
                _Pending(involved, type, reason, text, self._wall_clock(), due=due)
            )
        except asyncio.QueueFull:
            self.dropped += 1
            _log.warning("event queue full; dropped %s %s on %s", type, reason, meta.get("name"))

    def normal(self, obj: JsonObject, reason: str, message: str) -> None:
        self.event(obj, type="Normal", reason=reason, message=message)

    def warning(self, obj: JsonObject, reason: str, message: str) -> None:
        self.event(obj, type="Warning", reason=reason, message=message)

    async def flush(self) -> None:
        """Waits until every queued event was written (or given up on)."""
        await self._queue.join()

    async def run(self) -> None:
        """Writes queued events one by one, until cancelled."""
        while True:
            pending = await self._queue.get()
            try:
                wait = pending.due - asyncio.get_running_loop().time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._send(pending)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning(
                    "event %s on %s not written: %s", pending.reason, pending.involved, exc
                )
            finally:
                self._queue.task_done()

    async def _send(self, pending: _Pending) -> None:
        namespace = str(pending.involved.get("namespace") or "default")
        key = (
            str(pending.involved.get("uid") or pending.involved.get("name")),
            str(pending.involved.get("kind")),
            pending.type,
            pending.reason,
            pending.message,
            self.settings.component,
        )
        for attempt in range(_SEND_ATTEMPTS):
            try:
                await self._write(namespace, key, pending)
                return
            except ApiError as exc:
                if exc.status in (400, 403, 422) or attempt == _SEND_ATTEMPTS - 1:
                    raise  # not going to get better (e.g. the namespace is terminating)
            await asyncio.sleep(self.settings.backoff.delay(attempt))

    async def _write(self, namespace: str, key: tuple[str, ...], pending: _Pending) -> None:
        seen = self._seen.get(key)
        if seen is not None:
            name, count = seen
            patch = {"count": count + 1, "lastTimestamp": kube_time(pending.at)}
            try:
                await self.sink.patch(namespace, name, patch)
            except ApiError as exc:
                if not exc.not_found:
                    raise
                self._seen.pop(key, None)  # the Event expired (TTL): start a new one
            else:
                self._remember(key, name, count + 1)
                return
        name = f"{pending.involved.get('name')}.{time.time_ns():x}"
        await self.sink.create(namespace, self._new_event(name, namespace, pending))
        self._remember(key, name, 1)

    def _new_event(self, name: str, namespace: str, pending: _Pending) -> JsonObject:
        stamp = kube_time(pending.at)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": pending.involved,
            "type": pending.type,
            "reason": pending.reason,
            "message": pending.message,
            "source": {"component": self.settings.component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.settings.component,
            "reportingInstance": self.settings.instance,
        }

    def _remember(self, key: tuple[str, ...], name: str, count: int) -> None:
        self._seen[key] = (name, count)
        self._seen.move_to_end(key)
        while len(self._seen) > self.settings.aggregation_keys:
            self._seen.popitem(last=False)
