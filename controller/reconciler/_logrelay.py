"""The log relay: each bound server's vLLM log, copied to its requester's stdout.

A user reads `kubectl logs` of the Pod they created, the requester; vLLM runs elsewhere (an
instance in a launcher Pod, or a direct provider). The requester stub accepts log bytes at
`POST /v1/set-log?startPos=N` and writes those beyond what it holds to its stdout; this relay
feeds it:

- launcher mode: the launcher's watch (which the controller holds anyway) announces log growth
  as `UPDATED` events carrying `log_size`; the relay then reads `GET .../instances/<id>/log`
  with `Range: bytes=<next>-` and forwards it, at most once per `PULL_PERIOD_S`. Nothing polls:
  no news, no request. An instance the launcher reports asleep is not read until it wakes: on
  the hot path the binding comes before the wake, whose lines would otherwise take a second
  read (and `set-log`) right after the first.
- direct mode: the provider's `inference-server` log through the apiserver (`follow=true`).

Nothing is doubled or lost across a controller restart: a relay sends from the log's start, and
the answer to each `set-log` says how much the stub holds (fma's stub answers
`X-Fma-Log-Length`; a reference stub does not and gets everything again, which it drops up to
what it has), so a stub that holds the log already costs one chunk, and a fresh one, the usual
case, no extra call. A stub that restarted (it answers 400 to a position past its end) is sent
the log from its start again. One pump task per requester; it ends when the binding does.

Which requester gets which log is decided by `relay_target` (pure) from the cached Pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx

from contract import keys, objects
from contract import requester as rq
from contract.launcher import LAUNCHER_PORT, log_path
from controlauth import ControlToken, Signer
from controller.core._snapshot import admin_port_of
from controller.reconciler import _pods as p
from controller.reconciler._http import PeerHttp
from controller.reconciler._peers import base_url
from kube import PODS, ApiError, KubeClient

_log = logging.getLogger(__name__)

CHUNK_BYTES: Final = 256 * 1024
"""At most this much per `set-log` call (the launcher caps an open range at 1 MiB)."""
_RETRY_S: Final = (0.5, 1.0, 2.0, 5.0, 10.0)
_TIMEOUT_S, _CONNECT_S = 10.0, 2.0
"""Of each read and `set-log`."""
PULL_PERIOD_S: Final = 2.0
"""At most one read of an instance's log per this long: the first at once, later growth
gathered (kubectl logs then lags vLLM by at most this)."""


class PodLookup(Protocol):
    """The Pod cache, as the relay reads it (`ClusterState` in production)."""

    def pod_by_uid(self, uid: str) -> Mapping[str, Any] | None: ...

    def pods_by(self, index: str, value: str) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class InstanceLog:
    """Launcher mode: instance `instance_id` of the launcher Pod `launcher_uid` at `ip`."""

    launcher_uid: str
    ip: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class PodLog:
    """Direct mode: the provider Pod's `inference-server` container log."""

    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Target:
    """Where one requester's log comes from, and the requester's SPI."""

    source: InstanceLog | PodLog
    ip: str
    port: int
    uid: str
    """The requester's UID: the audience of each `set-log` call's control token."""


def relay_target(provider: Mapping[str, Any], requester: Mapping[str, Any] | None) -> Target | None:
    """The relay a bound provider and its requester call for, or None (not both serving yet)."""
    binding = p.bound_to(provider)
    if requester is None or binding is None or binding[0] != p.uid(requester):
        return None
    if p.is_deleting(provider) or p.is_deleting(requester):
        return None
    req_ip, provider_ip = p.pod_ip(requester), p.pod_ip(provider)
    if req_ip is None or provider_ip is None:
        return None
    port = admin_port_of(p.annotations_of(requester))
    if p.is_launcher(provider):
        iid = p.annotations_of(provider).get(keys.INSTANCE_ID)
        if not iid:
            return None
        return Target(
            InstanceLog(p.uid(provider), provider_ip, iid), req_ip, port, p.uid(requester)
        )
    return Target(PodLog(p.name(provider), p.uid(provider)), req_ip, port, p.uid(requester))


class _StubRestartedError(Exception):
    """The stub holds less than we sent (it restarted): start again from the log's start."""


class LogRelay:
    """One pump task per relayed requester (by UID), started and stopped by `sync`."""

    def __init__(
        self,
        state: PodLookup,
        http: PeerHttp,
        kube: KubeClient,
        namespace: str,
        *,
        signer: Signer | None = None,
    ) -> None:
        self.state = state
        self.http = http
        self.signer = signer
        self.kube = kube
        self.namespace = namespace
        self._pumps: dict[str, tuple[Target, asyncio.Task[None]]] = {}
        self._sizes: dict[str, dict[str, int]] = {}
        """Per launcher UID, each instance's `log_size` as the launcher last reported it. Each
        report lists all of a launcher's instances, so it replaces the launcher's entry: a
        deleted instance (and, with `pod_deleted`, a deleted launcher) leaves nothing behind."""
        self._asleep: dict[str, frozenset[str]] = {}
        """Per launcher UID, the instances it reports `sleeping` (not read until awake)."""
        self._news: dict[str, asyncio.Event] = {}

    # ----- what changed (called on the event loop; quick) ---------------------------------

    def pod_changed(self, pod: Mapping[str, Any]) -> None:
        """A Pod event: re-derive the relay of the server it belongs to."""
        binding = p.bound_to(pod)
        if binding is not None:
            self.sync(binding[0], provider=pod)
        elif p.is_requester(pod) or p.uid(pod) in self._pumps:
            self.sync(p.uid(pod))

    def pod_deleted(self, pod: Mapping[str, Any]) -> None:
        binding = p.bound_to(pod)
        for uid in {p.uid(pod), binding[0] if binding else ""} - {""}:
            self._stop(uid)
        self._sizes.pop(p.uid(pod), None)
        self._asleep.pop(p.uid(pod), None)

    def log_grew(self, launcher_uid: str, instances: Mapping[str, Mapping[str, Any]]) -> None:
        """The launcher's view: remember each instance's `log_size`, wake waiting pumps."""
        known = self._sizes.get(launcher_uid, {})
        sizes: dict[str, int] = {}
        for iid, obj in instances.items():
            size = obj.get("log_size")
            sizes[iid] = max(size if isinstance(size, int) else -1, known.get(iid, -1))
        self._sizes[launcher_uid] = sizes
        self._asleep[launcher_uid] = frozenset(
            iid for iid, obj in instances.items() if obj.get("phase") == "sleeping"
        )
        for uid, (target, _) in self._pumps.items():
            if (
                isinstance(target.source, InstanceLog)
                and target.source.launcher_uid == launcher_uid
            ):
                self._news[uid].set()
        launcher = self.state.pod_by_uid(launcher_uid)
        if launcher is not None and (binding := p.bound_to(launcher)) is not None:
            self.sync(binding[0], provider=launcher)

    def sync(self, requester_uid: str, *, provider: Mapping[str, Any] | None = None) -> None:
        """Start, keep or stop the pump of `requester_uid` as the caches now say."""
        requester = self.state.pod_by_uid(requester_uid)
        if provider is None:
            bound = self.state.pods_by(p.BOUND_TO, requester_uid)
            provider = bound[0] if len(bound) == 1 else None
        target = relay_target(provider, requester) if provider is not None else None
        current = self._pumps.get(requester_uid)
        if current is not None and current[0] == target and not current[1].done():
            return
        self._stop(requester_uid)
        if target is not None:
            self._news[requester_uid] = asyncio.Event()
            task = asyncio.create_task(self._pump(requester_uid, target), name="log-relay")
            self._pumps[requester_uid] = (target, task)

    def _stop(self, requester_uid: str) -> None:
        current = self._pumps.pop(requester_uid, None)
        self._news.pop(requester_uid, None)
        if current is not None:
            current[1].cancel()

    async def aclose(self) -> None:
        tasks = [task for _, task in self._pumps.values()]
        for uid in list(self._pumps):
            self._stop(uid)
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----- pumping ----------------------------------------------------------------------------

    async def _pump(self, uid: str, target: Target) -> None:
        failures = 0
        while True:
            try:
                if isinstance(target.source, InstanceLog):
                    await self._pump_instance(uid, target, target.source)
                else:
                    await self._pump_pod(target, target.source)
                failures = 0
            except _StubRestartedError:
                continue
            except (httpx.HTTPError, ApiError, OSError) as exc:
                _log.debug("log relay to %s: %s", target.ip, exc)
                failures += 1
            await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])

    async def _pump_instance(self, uid: str, target: Target, source: InstanceLog) -> None:
        """From the log's start: the first `set-log` answers how much the stub holds already
        (nothing, unless this relay restarted), and reading goes on from there."""
        url = base_url(source.ip, LAUNCHER_PORT) + log_path(source.instance_id)
        news = self._news[uid]
        at = 0
        pulled = -PULL_PERIOD_S
        launcher, iid = source.launcher_uid, source.instance_id
        while True:
            size = self._sizes.get(launcher, {}).get(iid, 0)
            if at >= size or iid in self._asleep.get(launcher, ()):
                news.clear()
                await news.wait()
                continue
            # Coalesce: a bound engine's log grows by a line at each of the launcher's probes.
            await asyncio.sleep(pulled + PULL_PERIOD_S - asyncio.get_running_loop().time())
            pulled = asyncio.get_running_loop().time()
            size = self._sizes.get(launcher, {}).get(iid, size)
            end = min(size, at + CHUNK_BYTES) - 1
            range_ = {"Range": f"bytes={at}-{end}"}
            response = await self.http.request(
                "GET", url, headers=range_, timeout_s=_TIMEOUT_S, connect_s=_CONNECT_S
            )
            if response.status_code == 404:
                return  # the instance is gone; the binding will change
            if response.status_code not in (200, 206) or not response.content:
                news.clear()
                await news.wait()
                continue
            at = await self._forward(target, at, response.content)

    async def _pump_pod(self, target: Target, source: PodLog) -> None:
        position, held = 0, 0
        async with self.kube.follow_log(
            PODS, source.name, namespace=self.namespace, container=objects.INFERENCE_SERVER
        ) as chunks:
            async for chunk in _rechunked(chunks):
                start, position = position, position + len(chunk)
                if position <= held:
                    continue  # the stub has these already
                held = await self._forward(target, start, chunk)

    async def _forward(self, target: Target, at: int, data: bytes) -> int:
        """`set-log` of `data` at `at`; how much of the log the stub holds now (fma's stub says,
        for a reference stub: what it was sent)."""
        url = f"{base_url(target.ip, target.port)}{rq.SET_LOG_PATH}?startPos={at}"
        headers = {"Content-Type": "text/plain"}
        auth = ControlToken(self.signer, target.uid) if self.signer else None
        response = await self.http.request(
            "POST",
            url,
            content=data,
            headers=headers,
            auth=auth,
            timeout_s=_TIMEOUT_S,
            connect_s=_CONNECT_S,
        )
        if response.status_code == 400:
            raise _StubRestartedError
        response.raise_for_status()
        held = response.headers.get(rq.LOG_LENGTH_HEADER, "")
        return int(held) if held.isdigit() else at + len(data)


async def _rechunked(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream's pieces, each at most `CHUNK_BYTES`."""
    async for chunk in chunks:
        for start in range(0, len(chunk), CHUNK_BYTES):
            yield chunk[start : start + CHUNK_BYTES]
