"""The per-key work queue and its workers, on virtual time (no test here sleeps for real)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from controller.observability import QueuePrometheusMetrics
from kube import (
    ApiError,
    Backoff,
    Detached,
    QueueSettings,
    Result,
    ShutDownError,
    WorkQueue,
    run_workers,
)
from tests.virtualtime import run_virtual


def _queue(**kwargs: object) -> WorkQueue[str]:
    return WorkQueue(QueueSettings(backoff=Backoff(initial_s=0.2, maximum_s=20.0)), **kwargs)  # type: ignore[arg-type]


def test_ready_keys_come_out_oldest_first_and_deduplicated() -> None:
    async def main() -> list[str]:
        queue = _queue()
        for key in ("a", "b", "a", "c", "b"):
            queue.add(key)
        assert len(queue) == 3
        return [await queue.get() for _ in range(3)]

    assert run_virtual(main) == ["a", "b", "c"]


def test_a_key_added_while_processing_runs_again_after_done_never_twice_at_once() -> None:
    async def main() -> None:
        queue = _queue()
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("a")
        queue.add("a")
        assert len(queue) == 0, "a processing key must not be handed out again"
        queue.add("b")
        assert await queue.get() == "b"
        queue.done("a")
        assert len(queue) == 1
        assert await queue.get() == "a"
        queue.done("a")
        queue.done("b")
        assert len(queue) == 0

    run_virtual(main)


def test_urgent_keys_go_first_without_starving_the_rest() -> None:
    async def main() -> list[str]:
        queue = WorkQueue[str](QueueSettings(urgent_burst=2))
        for key in ("new1", "new2", "new3"):
            queue.add(key)
        for key in ("ready1", "ready2", "ready3"):
            queue.add(key, urgent=True)
        queue.add("new3", urgent=True)  # waiting in the ordinary lane: moves up
        assert len(queue) == 6
        return [await queue.get() for _ in range(6)]

    # Two urgent, then one ordinary (no starvation), then the rest of the urgent lane first.
    assert run_virtual(main) == ["ready1", "ready2", "new1", "ready3", "new3", "new2"]


def test_an_urgent_add_while_processing_comes_back_urgent() -> None:
    async def main() -> list[str]:
        queue = _queue()
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("b")
        queue.add("a", urgent=True)  # its server became ready while a pass ran
        queue.done("a")
        return [await queue.get() for _ in range(2)]

    assert run_virtual(main) == ["a", "b"]


def test_rate_limited_retries_back_off_exponentially_up_to_the_cap_and_forget_resets() -> None:
    async def main() -> None:
        queue = _queue()
        delays = []
        for _ in range(9):
            queue.add_rate_limited("a")
            delays.append(queue.due_in("a"))
            assert await queue.get() == "a"  # the virtual clock jumps to the due time
            queue.done("a")
        assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20.0, 20.0])
        assert queue.failures("a") == 9
        queue.forget("a")
        queue.add_rate_limited("a")
        assert queue.due_in("a") == pytest.approx(0.2)

    run_virtual(main)


def test_delayed_add_waits_keeps_the_earlier_time_and_a_fresh_add_makes_it_due_now() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = _queue()
        queue.add_after("a", 10)
        queue.add_after("a", 30)  # later: ignored
        assert queue.due_in("a") == 10
        queue.add_after("a", 5)  # earlier: wins
        assert queue.due_in("a") == 5
        start = loop.time()
        assert await queue.get() == "a"
        assert loop.time() - start == 5
        queue.done("a")

        queue.add_after("b", 20)
        assert queue.is_parked("b") and len(queue) == 0
        queue.add("b")  # a fresh event
        assert not queue.is_parked("b") and len(queue) == 1
        before = loop.time()
        assert await queue.get() == "b"
        assert loop.time() == before
        queue.done("b")
        queue.add_after("c", 0)
        assert len(queue) == 1

    run_virtual(main)


def test_a_delayed_add_of_a_queued_key_changes_nothing() -> None:
    async def main() -> None:
        queue = _queue()
        queue.add("a")
        queue.add_after("a", 3)
        assert not queue.is_parked("a") and len(queue) == 1

    run_virtual(main)


def test_shutdown_wakes_waiting_workers_and_drops_parked_keys() -> None:
    async def main() -> None:
        queue = _queue()
        queue.add_after("a", 5)
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.shutdown()
        with pytest.raises(ShutDownError):
            await getter
        queue.add("b")
        assert len(queue) == 0 and not queue.is_parked("a")

    run_virtual(main)


def test_a_cancelled_getter_passes_its_wakeup_on() -> None:
    async def main() -> None:
        queue = _queue()
        first = asyncio.create_task(queue.get())
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.add("a")
        first.cancel()
        assert await second == "a"

    run_virtual(main)


def test_workers_run_keys_in_parallel_but_one_key_in_one_worker_at_a_time() -> None:
    async def main() -> tuple[int, int, Counter[str]]:
        queue = _queue()
        running: set[str] = set()
        peak = {"total": 0, "same_key": 0}
        passes: Counter[str] = Counter()

        async def reconcile(key: str) -> Result:
            if key in running:
                peak["same_key"] += 1
            running.add(key)
            peak["total"] = max(peak["total"], len(running))
            passes[key] += 1
            await asyncio.sleep(1)
            queue.add(key) if passes[key] < 3 else None  # an event arrives mid-pass
            running.discard(key)
            return Result()

        for key in "abcde":
            queue.add(key)
        workers = asyncio.create_task(run_workers(queue, reconcile, workers=3))
        await asyncio.sleep(30)
        queue.shutdown()
        await workers
        return peak["total"], peak["same_key"], passes

    total, same_key, passes = run_virtual(main)
    assert total == 3
    assert same_key == 0
    assert passes == Counter(dict.fromkeys("abcde", 3))


def test_worker_outcomes_drive_forget_requeue_and_backoff() -> None:
    async def main() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        queue = _queue()
        seen: dict[str, list[float]] = {}
        conflict = ApiError(409, "Conflict", "the object has been modified", None)

        async def reconcile(key: str) -> Result | None:
            times = seen.setdefault(key, [])
            times.append(loop.time())
            if len(times) >= 3:
                return None
            if key == "poll":
                return Result(requeue_after=5)
            if key == "retry":
                return Result(retry=True)
            if key == "conflict":
                raise conflict
            raise RuntimeError("boom")

        for key in ("poll", "retry", "conflict", "crash"):
            queue.add(key)
        workers = asyncio.create_task(run_workers(queue, reconcile, workers=2))
        await asyncio.sleep(60)
        assert queue.failures("poll") == 0
        assert all(queue.failures(k) == 0 for k in seen), "success forgets the backoff"
        queue.shutdown()
        await workers
        return seen

    seen = run_virtual(main)
    assert seen["poll"] == [0, 5, 10]
    for key in ("retry", "conflict", "crash"):
        assert seen[key] == pytest.approx([0, 0.2, 0.6]), key


def test_a_detached_pass_frees_its_worker_and_keeps_its_key_locked_until_it_ends() -> None:
    async def main() -> tuple[list[tuple[float, str]], int]:
        loop = asyncio.get_running_loop()
        queue = _queue()
        log: list[tuple[float, str]] = []
        passes: Counter[str] = Counter()

        async def slow_rest(key: str) -> Result | None:
            await asyncio.sleep(10)
            log.append((loop.time(), f"{key} woke"))
            return Result(retry=True) if passes[key] == 1 else None

        async def reconcile(key: str) -> Result | Detached | None:
            passes[key] += 1
            log.append((loop.time(), f"{key} pass {passes[key]}"))
            if key == "wake" and passes[key] <= 2:
                queue.add(key)  # an event meanwhile: runs again only once the rest ended
                return Detached(slow_rest(key))
            await asyncio.sleep(1)
            return None

        for key in ("wake", "a", "b"):
            queue.add(key)
        workers = asyncio.create_task(run_workers(queue, reconcile, workers=1))
        await asyncio.sleep(60)
        failures = queue.failures("wake")
        queue.shutdown()
        await workers
        return log, failures

    log, failures = run_virtual(main)
    assert log == [
        (0, "wake pass 1"),
        (0, "a pass 1"),  # the one worker is free at once
        (1, "b pass 1"),
        (10, "wake woke"),  # a retry: backoff 0.2 s, but the event re-adds it at once
        (10, "wake pass 2"),
        (20, "wake woke"),
        (20, "wake pass 3"),
    ]
    assert failures == 0


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def added(self, label: str) -> None:
        self.calls.append(("added", label, 1))

    def depth_changed(self, label: str, delta: int) -> None:
        self.calls.append(("depth", label, delta))

    def queued(self, label: str, seconds: float) -> None:
        self.calls.append(("queued", label, seconds))

    def worked(self, label: str, seconds: float) -> None:
        self.calls.append(("worked", label, seconds))

    def retried(self, label: str) -> None:
        self.calls.append(("retried", label, 1))


def test_metrics_follow_the_reference_definitions_per_label() -> None:
    recorder = _Recorder()

    async def main() -> None:
        queue = _queue(metrics=recorder, label=lambda key: key.split("/")[0])
        queue.add("node-a/x")
        queue.add("node-a/x")  # deduplicated: not a unique add
        await asyncio.sleep(2)
        key = await queue.get()
        await asyncio.sleep(3)
        queue.add_rate_limited(key)
        queue.done(key)

    run_virtual(main)
    assert recorder.calls == [
        ("added", "node-a", 1),
        ("depth", "node-a", 1),
        ("depth", "node-a", -1),
        ("queued", "node-a", 2.0),
        ("retried", "node-a", 1),
        ("worked", "node-a", 3.0),
    ]


def test_prometheus_queue_metrics_carry_the_reference_names() -> None:
    registry = CollectorRegistry()
    metrics = QueuePrometheusMetrics(registry)

    async def main() -> None:
        queue = _queue(metrics=metrics, label=lambda key: "node-1")
        queue.add("k")
        await queue.get()
        queue.add_rate_limited("k")
        queue.done("k")

    run_virtual(main)
    sample = registry.get_sample_value
    assert sample("fma_dpc_innerqueue_adds_total", {"node": "node-1"}) == 1
    assert sample("fma_dpc_innerqueue_depth", {"node": "node-1"}) == 0
    assert sample("fma_dpc_innerqueue_retries_total", {"node": "node-1"}) == 1
    assert sample("fma_dpc_innerqueue_queue_duration_seconds_count", {"node": "node-1"}) == 1
    assert sample("fma_dpc_innerqueue_work_duration_seconds_count", {"node": "node-1"}) == 1
    assert (
        sample(
            "fma_dpc_innerqueue_queue_duration_seconds_bucket", {"node": "node-1", "le": "0.015625"}
        )
        == 1
    )
