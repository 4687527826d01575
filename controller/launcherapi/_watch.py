"""One NDJSON watch stream per launcher: the controller learns instance changes as they happen.

Why not the reference's sidecar (reference-differences C1): it polls `GET /v2/vllm/instances` every
2 s and patches an annotation on its own Pod so that the controller gets a Pod event, then re-LISTs.
That costs an apiserver write per change, up to 2 s of latency and `pods: patch` rights for
every launcher. The launcher already offers `GET /v2/vllm/instances/watch?since=<rev>`
(contracts §5.6), so the controller holds that stream instead.

The protocol of one `LauncherWatch`:

1. LIST `GET /v2/vllm/instances`: the full state and the launcher's current `revision`; the
   listener gets it whole (`on_relist`), which also covers a restarted launcher (its counter
   starts again at 0, so resuming from our old revision would wait forever).
2. WATCH `GET /v2/vllm/instances/watch?since=<revision>`: each `CREATED`/`STOPPED`/`DELETED`
   line updates our view and goes to the listener (`on_event`).
3. Whatever ends the watch — 410 (we fell out of the launcher's 1000-event buffer), an error
   line, a silent close (the launcher drops watchers that fall behind without a word), a
   connection error — leads back to step 1. A LIST is one small request, so we always re-LIST
   rather than guess which ending was harmless.

Failures back off exponentially; a stream that ends at once without an event counts as a
failure, so a misbehaving launcher cannot make us spin. A watch stops only when cancelled:
`LauncherWatches` cancels it when the launcher Pod goes away or changes its IP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

import httpx
import orjson

from contract.launcher import (
    INSTANCES_PATH,
    LAUNCHER_PORT,
    REFERENCE_EVENT_TYPES,
    UPDATED,
    WATCH_PATH,
)
from kube import Attempts, Backoff

_log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
_QUICK_S: Final = 1.0
_VOLATILE: Final = frozenset({"revision", "log_size"})


@dataclass(frozen=True, kw_only=True)
class LauncherWatchSettings:
    port: int = LAUNCHER_PORT
    request_timeout_s: float = 30.0
    """Timeout of the LIST and of connecting the watch (contracts §5.8); the stream itself may
    stay quiet for hours, so it has no read timeout (TCP keepalive finds dead peers)."""
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial_s=0.2, maximum_s=10.0, jitter=0.2)
    )
    updates: bool = False
    """Also ask for `UPDATED` events (`?updates=true`, an fma launcher extension: readiness and
    sleep-state changes of an instance); a reference launcher ignores the parameter."""


@dataclass(frozen=True)
class InstanceEvent:
    """One line of the watch stream."""

    type: str
    instance: JsonObject
    revision: int
    log_only: bool = False
    """An `UPDATED` that only says the instance's log grew (`log_size`): news for the log
    relay, not a state change worth a reconcile pass."""
    previous: JsonObject | None = None
    """An `UPDATED`'s instance as the stream had it before (None: it had none)."""

    @property
    def instance_id(self) -> str:
        return str(self.instance.get("instance_id") or "")


@dataclass(frozen=True)
class LauncherView:
    """A launcher's instances as of `revision` (read-only snapshot)."""

    revision: int
    instances: MappingProxyType[str, JsonObject]


class LauncherListener(Protocol):
    """Gets what the streams learn; called on the event loop, must be quick (enqueue keys)."""

    def on_relist(self, launcher: str, view: LauncherView) -> None:
        """The full state after a LIST (first contact, or recovery from a broken stream)."""

    def on_event(self, launcher: str, event: InstanceEvent, view: LauncherView) -> None:
        """One instance changed; `view` already includes the change."""


class _ResyncError(Exception):
    """The stream cannot be continued: LIST again."""


def launcher_http_client(*, max_connections: int = 1000) -> httpx.AsyncClient:
    """An HTTP client for launcher streams, with TCP keepalive to notice vanished peers.

    No idle connection is kept: a stream holds its connection for hours, and httpcore scans
    every pooled connection (a `poll` for each idle one) on each request, so idle connections
    to many launchers would cost more CPU than reconnecting saves.
    """
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    if hasattr(socket, "TCP_KEEPIDLE"):
        options += [
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
            (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
            (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
        ]
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
    transport = httpx.AsyncHTTPTransport(socket_options=options, limits=limits)
    return httpx.AsyncClient(transport=transport, trust_env=False)


class LauncherWatch:
    """The stream of one launcher (identified by `key`, e.g. the Pod's uid) at `base_url`."""

    def __init__(
        self,
        key: str,
        base_url: str,
        http: httpx.AsyncClient,
        listener: LauncherListener,
        settings: LauncherWatchSettings | None = None,
    ) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.listener = listener
        self.settings = settings or LauncherWatchSettings()
        self._instances: dict[str, JsonObject] = {}
        self._revision = -1
        self.view: LauncherView | None = None
        """The latest known state (None before the first LIST)."""
        self.relists = 0
        self.streaming = False
        """True while the watch stream is open (the launcher is being followed live)."""
        self._attempts = Attempts(self.settings.backoff)

    @property
    def failures(self) -> int:
        """Consecutive failed attempts (0 while the stream works)."""
        return self._attempts.failures

    async def run(self) -> None:
        """LIST, WATCH, repeat; until cancelled."""
        loop = asyncio.get_running_loop()
        attempts = self._attempts
        while True:
            started = loop.time()
            delivered = False
            try:
                await self._relist()
                delivered = await self._watch()
                reason = "the stream ended"
            except _ResyncError as exc:
                reason = str(exc)
            except Exception as exc:  # any failure: back off and list again, never die
                reason = f"{type(exc).__name__}: {exc}"
            if delivered or loop.time() - started >= _QUICK_S:
                attempts.reset()
                _log.debug("launcher %s: %s; listing again", self.key, reason)
                continue
            delay = attempts.next_delay()
            _log.info("launcher %s: %s; listing again in %.1fs", self.key, reason, delay)
            await asyncio.sleep(delay)

    async def _relist(self) -> None:
        response = await self.http.get(
            self.base_url + INSTANCES_PATH, timeout=self.settings.request_timeout_s
        )
        response.raise_for_status()
        body = orjson.loads(response.content)
        if not isinstance(body, dict) or not isinstance(body.get("revision"), int):
            raise ValueError(f"unexpected instance list: {str(body)[:200]}")
        self._instances = {
            str(item.get("instance_id")): item
            for item in body.get("instances") or []
            if isinstance(item, dict)
        }
        self._revision = int(body["revision"])
        self.relists += 1
        self.view = self._snapshot()
        _notify(self.listener.on_relist, self.key, self.view)

    async def _watch(self) -> bool:
        """One watch from our revision; True if it delivered an event. Raises `_ResyncError`."""
        timeout = httpx.Timeout(self.settings.request_timeout_s, read=None)
        url = self.base_url + WATCH_PATH
        delivered = False
        params = {"since": str(self._revision)}
        if self.settings.updates:
            params["updates"] = "true"
        async with self.http.stream("GET", url, params=params, timeout=timeout) as response:
            if response.status_code == 410:
                raise _ResyncError("410: our revision left the launcher's buffer")
            response.raise_for_status()
            self.streaming = True
            try:
                async for line in response.aiter_lines():
                    if line.strip():
                        self._apply(_parse(line, updates=self.settings.updates))
                        delivered = True
            finally:
                self.streaming = False
        return delivered

    def _apply(self, event: InstanceEvent) -> None:
        previous = self._instances.get(event.instance_id)
        if event.type == UPDATED and previous is not None:
            event = dataclasses.replace(
                event,
                log_only=_state_of(previous) == _state_of(event.instance),
                previous=previous,
            )
        if event.type == "DELETED":
            self._instances.pop(event.instance_id, None)
        else:
            self._instances[event.instance_id] = event.instance
        self._revision = max(self._revision, event.revision)
        self.view = self._snapshot()
        _notify(self.listener.on_event, self.key, event, self.view)

    def _snapshot(self) -> LauncherView:
        return LauncherView(self._revision, MappingProxyType(dict(self._instances)))


def _state_of(instance: JsonObject) -> JsonObject:
    """An instance without the fields that change on every event or with its log alone."""
    return {k: v for k, v in instance.items() if k not in _VOLATILE}


def _notify(callback: Callable[..., None], *args: object) -> None:
    """Listener errors are bugs to log, not reasons to drop the stream."""
    try:
        callback(*args)
    except Exception:
        _log.exception("launcher listener failed")


def _parse(line: str, *, updates: bool) -> InstanceEvent:
    """One NDJSON line as an event; anything else (an error line included) means resync."""
    try:
        data = orjson.loads(line)
    except ValueError as exc:
        raise _ResyncError(f"unparsable line {line[:200]!r}") from exc
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in REFERENCE_EVENT_TYPES and not (updates and kind == UPDATED):
        raise _ResyncError(f"error or unknown line {line[:200]!r}")
    obj = data.get("object")
    if not isinstance(obj, dict) or not obj.get("instance_id"):
        raise _ResyncError(f"event without an instance {line[:200]!r}")
    revision = obj.get("revision")
    return InstanceEvent(str(data["type"]), obj, revision if isinstance(revision, int) else -1)
