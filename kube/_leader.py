"""Leader election on a `coordination.k8s.io/v1` Lease, so two controller replicas can run.

The algorithm is client-go's `leaderelection` package, which every Kubernetes controller uses,
so its timing arguments carry over:

- A candidate reads the Lease. It takes it when nobody holds it (absent, or released with an
  empty holder) or when the holder has not renewed for `lease_duration_s` — measured on *our*
  clock from the moment we last saw the Lease change, never by comparing the holder's
  timestamps with our clock (clocks of two machines disagree).
- The leader renews every `retry_period_s`. If it cannot renew for `renew_deadline_s`, or
  sees another holder, it has lost: it stops its work at once. `renew_deadline_s` is shorter
  than `lease_duration_s`, so the old leader stops before anyone else may start.
- Every write is a PUT with the Lease's resourceVersion: two candidates racing for an expired
  Lease cannot both win (one gets 409).
- On a clean shutdown the leader releases the Lease (empty holder, duration 1 s), so the
  standby takes over within one retry period instead of a whole lease duration.

`LeaderElector.run(lead)` runs `lead()` only while leading and raises `LeadershipLostError` when the
lease is lost; the process should then exit and restart with clean memory (client-go's
convention), rather than try to resume work it may have half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from kube._client import ApiError, KubeClient
from kube._resources import LEASES, JsonObject
from kube._time import kube_time, utc_now

_log = logging.getLogger(__name__)


class LeadershipLostError(Exception):
    """The lease could not be renewed in time, or another candidate holds it now."""


def default_identity() -> str:
    """`<hostname>_<random>`: unique per process, readable in `kubectl get lease`."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, kw_only=True)
class LeaderElectionSettings:
    """Which Lease, who we are, and the timing (client-go's defaults: 15 s / 10 s / 2 s)."""

    namespace: str
    lease_name: str = "fma-dual-pods-controller"
    identity: str = field(default_factory=default_identity)
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    release_on_exit: bool = True

    def __post_init__(self) -> None:
        if not self.lease_duration_s > self.renew_deadline_s > self.retry_period_s * 1.2 > 0:
            raise ValueError(
                "leader election needs lease_duration_s > renew_deadline_s > 1.2 * retry_period_s"
            )


class LeaseStore(Protocol):
    """Reads and conditional writes of the one Lease (a seam for virtual-time unit tests)."""

    async def get(self) -> JsonObject | None: ...

    async def create(self, lease: JsonObject) -> JsonObject: ...

    async def replace(self, lease: JsonObject) -> JsonObject: ...


@dataclass(frozen=True)
class KubeLeaseStore:
    """`LeaseStore` on the apiserver."""

    client: KubeClient
    namespace: str
    name: str

    async def get(self) -> JsonObject | None:
        try:
            return await self.client.get(LEASES, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def create(self, lease: JsonObject) -> JsonObject:
        return await self.client.create(LEASES, lease, namespace=self.namespace)

    async def replace(self, lease: JsonObject) -> JsonObject:
        return await self.client.replace(LEASES, lease)


@dataclass(eq=False)
class LeaderElector:
    """Acquires, renews and releases one Lease for one identity; see the module docstring."""

    leases: LeaseStore
    settings: LeaderElectionSettings
    _: KW_ONLY
    on_leading_changed: Callable[[bool], None] | None = None
    wall_clock: Callable[[], dt.datetime] = utc_now
    _leading: bool = field(default=False, init=False)
    _observed_spec: JsonObject | None = field(default=None, init=False)
    _observed_at: float = field(default=0.0, init=False)
    _last_contact: float | None = field(default=None, init=False)
    _last_renew: float | None = field(default=None, init=False)

    # ----- state -------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str | None:
        """The holder named in the Lease as last seen (None: never seen, or released)."""
        spec = self._observed_spec or {}
        return spec.get("holderIdentity") or None

    def healthy(self) -> tuple[bool, str]:
        """For `/healthz` and `/readyz`; see `controller.observability` for what they mean.

        A leader is healthy while its last renewal is younger than the lease duration (past
        that, others may lead already); a standby while it reached the apiserver within one
        lease duration (it could take over).
        """
        now = asyncio.get_running_loop().time()
        limit = self.settings.lease_duration_s
        if self._leading:
            ok = self._last_renew is not None and now - self._last_renew <= limit
            return ok, "leading" if ok else "leading, but the lease was not renewed in time"
        ok = self._last_contact is not None and now - self._last_contact <= limit
        holder = self.holder or "nobody"
        return ok, f"standby (leader: {holder})" if ok else "standby, lease not readable"

    # ----- the loop ----------------------------------------------------------------------------

    async def run(self, lead: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Waits for the lease, then runs `lead()` while renewing it.

        Returns when `lead()` returns; raises `LeadershipLostError` (after cancelling `lead()`) when
        the lease is lost; on cancellation cancels `lead()` and releases the lease.
        """
        await self._acquire()
        work = asyncio.create_task(lead(), name="leader-work")
        renewal = asyncio.create_task(self._renew_until_lost(), name="lease-renewal")
        try:
            await asyncio.wait({work, renewal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, renewal):
                task.cancel()
            await asyncio.gather(work, renewal, return_exceptions=True)
            lost = renewal.done() and not renewal.cancelled() and renewal.exception() is not None
            if not lost and self.settings.release_on_exit:
                await self._release()
            self._set_leading(False)
        if lost:
            raise LeadershipLostError(
                f"{self.settings.identity} lost lease {self.settings.lease_name}: "
                f"{renewal.exception()}"
            )
        failure = None if work.cancelled() else work.exception()
        if failure is not None:
            raise failure

    async def _acquire(self) -> None:
        _log.info("%s: waiting for lease %s", self.settings.identity, self.settings.lease_name)
        while not await self._attempt():  # noqa: ASYNC110 - polling a remote Lease
            await asyncio.sleep(self.settings.retry_period_s * (1 + 0.2 * random.random()))
        _log.info("%s: acquired lease %s", self.settings.identity, self.settings.lease_name)
        self._set_leading(True)

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.retry_period_s)
            deadline = (self._last_renew or loop.time()) + self.settings.renew_deadline_s
            remaining = deadline - loop.time()
            renewed = False
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        renewed = await self._attempt()
            if renewed:
                continue
            if self.holder not in (None, self.settings.identity):
                raise LeadershipLostError(f"lease taken by {self.holder}")
            if loop.time() >= deadline:
                raise LeadershipLostError("lease not renewed within the renew deadline")

    async def _attempt(self) -> bool:
        """One try to take or renew the lease; False on any failure (logged)."""
        try:
            return await self._try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning("%s: lease %s: %s", self.settings.identity, self.settings.lease_name, exc)
            return False

    async def _try_acquire_or_renew(self) -> bool:
        loop = asyncio.get_running_loop()
        lease = await self.leases.get()
        self._last_contact = loop.time()
        if lease is None:
            created = await self.leases.create(self._lease_object(None))
            self._observe(created, loop.time())
            self._last_renew = loop.time()
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observe(lease, loop.time())
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration_s)
        if (
            holder
            and holder != self.settings.identity
            and self._observed_at + duration > loop.time()
        ):
            return False
        updated = await self.leases.replace(self._lease_object(lease))
        self._observe(updated, loop.time())
        self._last_renew = loop.time()
        return True

    def _lease_object(self, current: JsonObject | None) -> JsonObject:
        now = kube_time(self.wall_clock(), micro=True)
        old = (current or {}).get("spec") or {}
        ours = old.get("holderIdentity") == self.settings.identity
        transitions = int(old.get("leaseTransitions") or 0)
        spec = {
            "holderIdentity": self.settings.identity,
            "leaseDurationSeconds": round(self.settings.lease_duration_s),
            "acquireTime": old.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or current is None else transitions + 1,
        }
        if current is None:
            meta = {"name": self.settings.lease_name, "namespace": self.settings.namespace}
            return {
                "apiVersion": LEASES.api_version,
                "kind": "Lease",
                "metadata": meta,
                "spec": spec,
            }
        return {**current, "spec": spec}

    def _observe(self, lease: JsonObject, at: float) -> None:
        self._observed_spec = lease.get("spec") or {}
        self._observed_at = at

    async def _release(self) -> None:
        """Hands the lease back (only if we still hold it), best effort, a few seconds at most."""
        if not self._leading:
            return
        try:
            async with asyncio.timeout(self.settings.retry_period_s * 2):
                lease = await self.leases.get()
                spec = (lease or {}).get("spec") or {}
                if lease is None or spec.get("holderIdentity") != self.settings.identity:
                    return
                now = kube_time(self.wall_clock(), micro=True)
                released = {
                    **spec,
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": now,
                    "acquireTime": now,
                }
                await self.leases.replace({**lease, "spec": released})
                _log.info("%s: released lease %s", self.settings.identity, self.settings.lease_name)
        except Exception as exc:
            _log.warning("%s: could not release the lease: %s", self.settings.identity, exc)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if self.on_leading_changed is not None:
            self.on_leading_changed(leading)
