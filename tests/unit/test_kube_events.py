"""The event recorder against an in-memory sink: shape, aggregation, failures (virtual time)."""

from __future__ import annotations

import asyncio
import datetime as dt

from kube import ApiError, EventRecorder, EventSettings, JsonObject
from tests.virtualtime import run_virtual

POD: JsonObject = {
    "metadata": {"name": "req-1", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"}
}
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class Sink:
    def __init__(self) -> None:
        self.events: dict[str, JsonObject] = {}
        self.calls: list[str] = []
        self.failures: list[ApiError] = []

    async def create(self, namespace: str, event: JsonObject) -> JsonObject:
        self.calls.append("create")
        if self.failures:
            raise self.failures.pop(0)
        self.events[event["metadata"]["name"]] = event
        return event

    async def patch(self, namespace: str, name: str, patch: JsonObject) -> JsonObject:
        self.calls.append("patch")
        if name not in self.events:
            raise ApiError(404, "NotFound", "gone", None)
        self.events[name].update(patch)
        return self.events[name]


def _recorder(sink: Sink, **settings: object) -> EventRecorder:
    return EventRecorder(
        sink,
        EventSettings(instance="replica-0", **settings),  # type: ignore[arg-type]
        wall_clock=lambda: NOW,
    )


async def _drain(recorder: EventRecorder) -> None:
    task = asyncio.create_task(recorder.run())
    await recorder.flush()
    task.cancel()


def test_an_event_names_the_pod_reason_type_and_controller() -> None:
    sink = Sink()

    async def main() -> None:
        recorder = _recorder(sink)
        recorder.normal(POD, "Bound", "bound to launcher-x")
        await _drain(recorder)

    run_virtual(main)
    (event,) = sink.events.values()
    assert event["metadata"]["namespace"] == "ns"
    assert event["metadata"]["name"].startswith("req-1.")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "req-1",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "Bound",
        "bound to launcher-x",
    )
    assert event["source"] == {"component": "dual-pods-controller"}
    assert event["reportingComponent"] == "dual-pods-controller"
    assert event["reportingInstance"] == "replica-0"
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-02T03:04:05Z"


def test_repeats_patch_the_count_and_a_different_message_is_a_new_event() -> None:
    sink = Sink()

    async def main() -> None:
        recorder = _recorder(sink, component="launcher-populator")
        for _ in range(3):
            recorder.warning(POD, "LauncherStuck", "Launcher is stuck (stuck_starting)")
        recorder.warning(POD, "LauncherStuck", "Launcher is stuck (stuck_scheduling)")
        await _drain(recorder)

    run_virtual(main)
    assert sink.calls == ["create", "patch", "patch", "create"]
    counts = sorted((e["message"], e["count"]) for e in sink.events.values())
    assert counts == [
        ("Launcher is stuck (stuck_scheduling)", 1),
        ("Launcher is stuck (stuck_starting)", 3),
    ]
    assert all(e["source"]["component"] == "launcher-populator" for e in sink.events.values())


def test_an_expired_event_is_created_again() -> None:
    sink = Sink()

    async def main() -> None:
        recorder = _recorder(sink)
        recorder.normal(POD, "Woken", "instance awake")
        await _drain(recorder)
        sink.events.clear()  # the apiserver's event TTL passed
        recorder.normal(POD, "Woken", "instance awake")
        await _drain(recorder)

    run_virtual(main)
    assert sink.calls == ["create", "patch", "create"]
    assert [e["count"] for e in sink.events.values()] == [1]


def test_transient_failures_are_retried_and_permanent_ones_dropped() -> None:
    sink = Sink()

    async def main() -> None:
        recorder = _recorder(sink)
        sink.failures = [ApiError(500, "InternalError", "etcd", None)]
        recorder.normal(POD, "A", "retried")
        await _drain(recorder)
        sink.failures = [ApiError(403, "Forbidden", "namespace terminating", None)]
        recorder.normal(POD, "B", "dropped")
        await _drain(recorder)

    run_virtual(main)
    assert sink.calls == ["create", "create", "create"]
    assert [e["reason"] for e in sink.events.values()] == ["A"]


def test_a_full_queue_drops_instead_of_blocking_and_long_messages_are_cut() -> None:
    sink = Sink()

    async def main() -> EventRecorder:
        recorder = _recorder(sink, queue_size=2)
        recorder.normal(POD, "A", "what happened " + "x" * 5000 + " the error")
        recorder.normal(POD, "B", "b")
        recorder.normal(POD, "C", "c")
        await _drain(recorder)
        return recorder

    recorder = run_virtual(main)
    assert recorder.dropped == 1
    assert sorted(e["reason"] for e in sink.events.values()) == ["A", "B"]
    long = next(e for e in sink.events.values() if e["reason"] == "A")
    message = long["message"]
    assert len(message) == 1024 and "\n...\n" in message, "cut in the middle"
    assert message.startswith("what happened") and message.endswith("the error")


def test_a_delay_lets_a_burst_go_first_then_writes_its_events_together() -> None:
    sink = Sink()
    written: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        create = sink.create

        async def timed(namespace: str, event: JsonObject) -> JsonObject:
            written.append(loop.time())
            return await create(namespace, event)

        sink.create = timed  # type: ignore[method-assign]
        recorder = _recorder(sink, delay_s=1.0)
        task = asyncio.create_task(recorder.run())
        recorder.normal(POD, "Bound", "to a")
        await asyncio.sleep(0.4)
        recorder.normal(POD, "Woken", "instance i")
        await recorder.flush()
        task.cancel()

    run_virtual(main)
    assert written == [1.0, 1.4]
