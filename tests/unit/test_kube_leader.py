"""Leader election on an in-memory Lease with apiserver semantics, on virtual time."""

from __future__ import annotations

import asyncio
import copy

import pytest

from kube import (
    ApiError,
    JsonObject,
    LeaderElectionSettings,
    LeaderElector,
    LeadershipLostError,
)
from tests.virtualtime import run_virtual


class Apiserver:
    """One Lease with resourceVersion conflicts, as the apiserver keeps it."""

    def __init__(self) -> None:
        self.lease: JsonObject | None = None
        self.version = 0
        self.writes: list[tuple[float, str]] = []

    def store(self, lease: JsonObject) -> JsonObject:
        self.version += 1
        stored = copy.deepcopy(lease)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.lease = stored
        holder = stored["spec"].get("holderIdentity") or ""
        self.writes.append((asyncio.get_running_loop().time(), holder))
        return copy.deepcopy(stored)


class Leases:
    """An elector's view of the `Apiserver`; `down` simulates a partition."""

    def __init__(self, server: Apiserver) -> None:
        self.server = server
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("apiserver unreachable")

    async def get(self) -> JsonObject | None:
        self._check()
        return copy.deepcopy(self.server.lease)

    async def create(self, lease: JsonObject) -> JsonObject:
        self._check()
        if self.server.lease is not None:
            raise ApiError(409, "AlreadyExists", "lease exists", None)
        return self.server.store(lease)

    async def replace(self, lease: JsonObject) -> JsonObject:
        self._check()
        current = self.server.lease
        if current is None or (
            lease["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]
        ):
            raise ApiError(409, "Conflict", "the object has been modified", None)
        return self.server.store(lease)


def _settings(identity: str) -> LeaderElectionSettings:
    return LeaderElectionSettings(namespace="ns", identity=identity)


class Work:
    """A `lead()` that records when it ran and whether it was cancelled."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.cancelled_at: float | None = None
        self.running = asyncio.Event()

    async def __call__(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        self.running.set()
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            self.cancelled_at = loop.time()
            raise


def test_settings_reject_timings_that_allow_two_leaders() -> None:
    with pytest.raises(ValueError, match="lease_duration_s > renew_deadline_s"):
        LeaderElectionSettings(namespace="ns", lease_duration_s=10, renew_deadline_s=10)


def test_first_candidate_leads_and_renews_every_retry_period() -> None:
    async def main() -> None:
        server = Apiserver()
        changes: list[bool] = []
        elector = LeaderElector(Leases(server), _settings("a"), on_leading_changed=changes.append)
        work = Work()
        task = asyncio.create_task(elector.run(work))
        await asyncio.sleep(7)
        assert elector.is_leader and work.started == 0
        assert [t for t, _ in server.writes] == [0, 2, 4, 6]
        assert server.lease is not None
        spec = server.lease["spec"]
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
        assert spec["leaseTransitions"] == 0
        assert elector.healthy() == (True, "leading")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert changes == [True, False]

    run_virtual(main)


def test_partitioned_leader_stops_before_the_standby_may_start() -> None:
    async def main() -> None:
        server = Apiserver()
        leases_a = Leases(server)
        a = LeaderElector(leases_a, _settings("a"))
        b = LeaderElector(Leases(server), _settings("b"))
        work_a, work_b = Work(), Work()
        task_a = asyncio.create_task(a.run(work_a))
        await asyncio.sleep(0.5)
        task_b = asyncio.create_task(b.run(work_b))
        await asyncio.sleep(6)  # t = 6.5: a renewed at 0, 2, 4, 6
        assert b.healthy()[0] and b.holder == "a" and not b.is_leader

        leases_a.down = True  # a renewed last at t = 6: it must stop by 6 + 10
        with pytest.raises(LeadershipLostError):
            await task_a
        loop = asyncio.get_running_loop()
        assert work_a.cancelled_at is not None and 16 <= work_a.cancelled_at <= 18
        assert not a.is_leader

        await work_b.running.wait()
        assert work_b.started is not None
        # b saw a's last renewal at about t = 6 and waited a whole lease duration after it.
        assert work_b.started >= 6 + 15
        assert work_b.started > work_a.cancelled_at, "never two leaders at once"
        assert server.lease is not None and server.lease["spec"]["leaseTransitions"] == 1
        assert loop.time() < 30
        task_b.cancel()

    run_virtual(main)


def test_a_clean_exit_releases_the_lease_and_the_standby_takes_over_within_a_retry() -> None:
    async def main() -> None:
        server = Apiserver()
        a = LeaderElector(Leases(server), _settings("a"))
        b = LeaderElector(Leases(server), _settings("b"))
        task_a = asyncio.create_task(a.run(Work()))
        await asyncio.sleep(1)
        work_b = Work()
        task_b = asyncio.create_task(b.run(work_b))
        await asyncio.sleep(9)  # t = 10
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        assert server.writes[-1] == (10.0, "")  # released
        await work_b.running.wait()
        assert work_b.started is not None
        assert work_b.started <= 10 + 2 * 1.2
        task_b.cancel()

    run_virtual(main)


def test_lead_returning_releases_and_lead_failing_propagates() -> None:
    async def main() -> None:
        server = Apiserver()
        elector = LeaderElector(Leases(server), _settings("a"))

        async def finish() -> None:
            await asyncio.sleep(3)

        await elector.run(finish)
        assert server.lease is not None and server.lease["spec"]["holderIdentity"] == ""

        async def fail() -> None:
            raise RuntimeError("controller crashed")

        with pytest.raises(RuntimeError, match="controller crashed"):
            await elector.run(fail)
        assert server.lease["spec"]["holderIdentity"] == ""

    run_virtual(main)


def test_two_candidates_racing_for_a_free_lease_produce_one_leader() -> None:
    async def main() -> None:
        server = Apiserver()
        electors = [LeaderElector(Leases(server), _settings(name)) for name in "abc"]
        tasks = [asyncio.create_task(e.run(Work())) for e in electors]
        await asyncio.sleep(20)
        assert sum(e.is_leader for e in electors) == 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run_virtual(main)


def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    async def main() -> None:
        server = Apiserver()
        a = LeaderElector(Leases(server), _settings("a"))
        work = Work()
        task = asyncio.create_task(a.run(work))
        await asyncio.sleep(3)
        assert server.lease is not None
        hijacked = copy.deepcopy(server.lease)
        hijacked["spec"]["holderIdentity"] = "intruder"
        server.store(hijacked)
        with pytest.raises(LeadershipLostError, match="intruder"):
            await task
        assert work.cancelled_at == 4
        assert server.lease["spec"]["holderIdentity"] == "intruder", "a lost lease is not released"

    run_virtual(main)
