"""The memory gate sizes the need and keeps its records on the launcher (core, pure; B1, B2).

The gate compares what the waking or starting instance needs (its footprint measured the last
time it woke or started, kept on its launcher Pod, else `--gpu-memory-utilization` of the GPU's
total) with free memory (the node's GPU total minus the requester's reading), and evicts the
least recently used sleeper across the node's launchers until it fits. Recency and footprints
are written in the unbinding Update, so a restarted controller decides the same way.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from controller.core import (
    Action,
    CreateInstance,
    DeleteInstance,
    InstanceView,
    NodeView,
    QueryMemoryUsage,
    Remember,
    ServerMemory,
    Settings,
    UnbindProvider,
    Wake,
    decide_server,
    record_failure,
    record_success,
)
from controller.core._choose import victims
from controller.core._gpu_memory import Need, utilization
from controller.core._memory import merged_records, recorded_footprints, recorded_last_used
from tests.unit.core_fixtures import (
    GPUS,
    IID,
    NODE,
    NOW,
    SERVING_LABELS,
    bound_launcher_pod,
    instance,
    launcher_pod,
    lv,
    requester,
    with_launchers,
)

LAST_USED = "fma.llm-d.ai/instances-last-used"
FOOTPRINTS = "fma.llm-d.ai/instance-footprints"
FIN = "dual-pods.llm-d.ai/requester"
GPU_TOTAL = {"nvidia.com/gpu.memory": "81920"}
"""An 80 GiB GPU, as GPU feature discovery labels its node."""
CHECK = Settings(memory_check=True)


def kinds(actions: list[Action]) -> list[str]:
    return [type(action).__name__ for action in actions]


def evicted(actions: list[Action]) -> list[str]:
    return [a.instance_id for a in actions if isinstance(a, DeleteInstance)]


def bound_ann(**extra: str) -> dict[str, str]:
    return {**bound_launcher_pod().annotations, **extra}


def wake_pass(
    *others: InstanceView,
    used: int | None,
    provider_annotations: dict[str, str] | None = None,
    other_annotations: dict[str, str] | None = None,
    node_labels: dict[str, str] | None = None,
    memory: ServerMemory | None = None,
    settings: Settings = CHECK,
) -> list[Action]:
    """A requester bound to launcher-a, whose instance sleeps; other sleepers in launcher-b."""
    provider = bound_launcher_pod(annotations=provider_annotations or bound_ann())
    other = launcher_pod("launcher-b", ip="10.0.1.2", annotations=other_annotations or {})
    reading: dict[str, Any] = {}
    if used is not None:
        reading = {"memory_usage": {"GPU-0": used}, "memory_usage_at": NOW}
    snap = with_launchers(
        lv(provider, instance(phase="sleeping")),
        lv(other, *others),
        providers=(provider,),
        node=NodeView(name=NODE, labels=GPU_TOTAL if node_labels is None else node_labels),
        settings=settings,
        memory=memory or ServerMemory(gpu_uuids=GPUS, instance_known=True, **reading),
    )
    return decide_server(snap)


def test_an_unmeasured_wake_needs_the_utilization_share_of_the_gpu() -> None:
    """0.9 of 81920 = 73728 MiB: 8000 used leaves 73920 free, enough; 8500 used is not."""
    sleeper = instance("I-b", last_used=NOW - 50)
    fits = wake_pass(sleeper, used=8000)
    assert Remember(what="measure-from", message="wake") in fits
    assert kinds(fits).index("Remember") < kinds(fits).index("Wake")
    assert evicted(wake_pass(sleeper, used=8500)) == ["I-b"]


def test_the_reading_comes_first_and_nothing_is_asked_without_sleepers_to_evict() -> None:
    assert kinds(wake_pass(instance("I-b"), used=None)) == ["QueryMemoryUsage"]
    alone = wake_pass(used=None)
    assert not any(isinstance(a, QueryMemoryUsage | Remember) for a in alone)
    assert any(isinstance(a, Wake) for a in alone)


def test_a_recorded_wake_footprint_replaces_the_estimate() -> None:
    small = bound_ann(**{FOOTPRINTS: json.dumps({IID: {"start": 70000, "wake": 30000}})})
    actions = wake_pass(instance("I-b"), used=50000, provider_annotations=small)
    assert evicted(actions) == []
    assert any(isinstance(a, Wake) for a in actions)
    only_start = bound_ann(**{FOOTPRINTS: json.dumps({IID: {"start": 40000}})})
    assert evicted(wake_pass(instance("I-b"), used=50000, provider_annotations=only_start)) == [
        "I-b"
    ]


def test_eviction_goes_by_the_recorded_recency_then_by_id() -> None:
    """After a restart the controller's own times are all "now"; the launcher's record decides."""
    restarted = {"last_used": NOW, "created_at": NOW}
    a, b, c = (instance(i, **restarted) for i in ("I-a", "I-b", "I-c"))
    record = {LAST_USED: json.dumps({"I-a": NOW - 10, "I-b": NOW - 300, "I-c": NOW - 20})}
    assert evicted(wake_pass(a, b, c, used=80000, other_annotations=record)) == ["I-b"]
    tie = {LAST_USED: json.dumps({"I-a": NOW - 10, "I-b": NOW - 10, "I-c": NOW - 10})}
    assert evicted(wake_pass(c, b, a, used=80000, other_annotations=tie)) == ["I-a"]


def test_without_a_gpu_total_the_threshold_rule_stays() -> None:
    sleeper = instance("I-b")
    assert evicted(wake_pass(sleeper, used=9000, node_labels={})) == ["I-b"]
    assert evicted(wake_pass(sleeper, used=8000, node_labels={})) == []
    total = dataclasses.replace(CHECK, gpu_memory_total_mib=81920)
    assert evicted(wake_pass(sleeper, used=8000, node_labels={}, settings=total)) == []
    assert evicted(wake_pass(sleeper, used=8500, node_labels={}, settings=total)) == ["I-b"]


def test_a_start_uses_the_options_utilization_and_its_start_footprint() -> None:
    assert utilization("--model m --gpu-memory-utilization 0.5", 0.9) == 0.5
    assert utilization(["--gpu-memory-utilization=0.25"], 0.9) == 0.25
    assert utilization("--gpu-memory-utilization 7", 0.9) == 0.9
    assert utilization("--model 'unbalanced", 0.9) == 0.9
    assert Need(None, 0.5).mib(81920) == 40960
    assert Need(1234, 0.5).mib(81920) == 1234
    provider = bound_launcher_pod()
    other = launcher_pod("launcher-b", ip="10.0.1.2")
    snap = with_launchers(
        lv(provider),
        lv(other, instance("I-b", port=9000)),
        providers=(provider,),
        requester=requester(finalizers=(FIN,), labels={"dual-pods.llm-d.ai/dual": "launcher-a"}),
        node=NodeView(name=NODE, labels=GPU_TOTAL),
        settings=CHECK,
        memory=ServerMemory(gpu_uuids=GPUS, memory_usage={"GPU-0": 8500}, memory_usage_at=NOW),
    )
    assert evicted(decide_server(snap)) == ["I-b"]  # 0.9 of the GPU does not fit
    measured = {**provider.annotations, FOOTPRINTS: json.dumps({IID: {"start": 60000}})}
    known = bound_launcher_pod(annotations=measured)
    snap = dataclasses.replace(snap, launchers=(lv(known), snap.launchers[1]), providers=(known,))
    actions = decide_server(snap)
    assert Remember(what="measure-from", message="start") in actions
    assert any(isinstance(a, CreateInstance) for a in actions)


def test_a_measured_wake_is_read_after_the_relay_and_persisted_at_unbind() -> None:
    memory = ServerMemory(
        gpu_uuids=GPUS, instance_known=True, memory_usage={"GPU-0": 8000}, memory_usage_at=NOW
    )
    memory = record_success(memory, Remember(what="measure-from", message="wake"), now=NOW)
    memory = record_success(memory, Wake(ip="10.0.1.1", port=8005), now=NOW + 3)
    provider = bound_launcher_pod(labels=SERVING_LABELS)
    req = requester(finalizers=(FIN,), labels={"dual-pods.llm-d.ai/dual": "launcher-a"})
    serving = with_launchers(
        lv(provider, instance(phase="ready")),
        providers=(provider,),
        requester=req,
        node=NodeView(name=NODE, labels=GPU_TOTAL),
        settings=CHECK,
        memory=memory,
        now=NOW + 3,
    )
    actions = decide_server(serving)
    assert kinds(actions)[-1] == "QueryMemoryUsage"
    assert "RelayReady" in kinds(actions)
    memory = record_success(memory, actions[-1], now=NOW + 4, result={"GPU-0": 38000})
    assert memory.footprint == ("wake", 30000)
    assert memory.footprint_base is None
    again = decide_server(dataclasses.replace(serving, memory=memory, now=NOW + 4))
    assert not any(isinstance(a, QueryMemoryUsage) for a in again)

    asleep = bound_launcher_pod(
        annotations=bound_ann(
            **{
                LAST_USED: json.dumps({"I-gone": 5, "I-b": 7}),
                FOOTPRINTS: json.dumps({IID: {"start": 70000}, "I-gone": {"start": 1}}),
            }
        )
    )
    unbinding = with_launchers(
        lv(asleep, instance(phase="sleeping"), instance("I-b", port=9000)),
        providers=(asleep,),
        requester=requester(deleting=True, finalizers=(FIN,)),
        memory=dataclasses.replace(memory, unbind_started_at=NOW + 9),
        now=NOW + 10.7,
    )
    update = next(a for a in decide_server(unbinding) if isinstance(a, UnbindProvider))
    written = update.patch.annotations
    assert json.loads(written[LAST_USED] or "") == {IID: int(NOW + 10), "I-b": 7}
    assert json.loads(written[FOOTPRINTS] or "") == {IID: {"start": 70000, "wake": 30000}}


def test_an_instance_deleted_at_unbind_leaves_no_record() -> None:
    gone = bound_launcher_pod(annotations=bound_ann(**{LAST_USED: json.dumps({IID: 1})}))
    snap = with_launchers(
        lv(gone, instance(phase="starting")),
        providers=(gone,),
        requester=requester(deleting=True, finalizers=(FIN,)),
        memory=ServerMemory(gpu_uuids=GPUS, unbind_started_at=NOW - 1),
    )
    actions = decide_server(snap)
    assert evicted(actions) == [IID]
    update = next(a for a in actions if isinstance(a, UnbindProvider))
    assert update.patch.annotations[LAST_USED] is None  # the record goes with the instance


def test_records_merge_prune_and_tolerate_hand_edits() -> None:
    assert recorded_last_used({LAST_USED: "not json"}) == {}
    assert recorded_last_used({LAST_USED: '{"a": 1, "b": "x", "c": true}'}) == {"a": 1.0}
    assert recorded_footprints({FOOTPRINTS: '{"a": {"start": 5, "wake": -1}, "b": 3}'}) == {
        "a": {"start": 5}
    }
    current = {LAST_USED: '{"old":1,"x":2}'}
    patch = merged_records(current, keep={"x", "y"}, used=("y", 9.9))
    assert patch == {LAST_USED: '{"x":2,"y":9}'}
    assert merged_records({LAST_USED: '{"x":2}'}, keep=None) == {}
    assert merged_records({}, keep=None, footprint=("x", "start", 5)) == {
        FOOTPRINTS: '{"x":{"start":5}}'
    }


def test_victims_are_deterministic_on_equal_times() -> None:
    same = {"last_used": NOW, "created_at": NOW}
    live = [instance(i, port=p, **same) for i, p in (("I-c", 9002), ("I-a", 9000), ("I-b", 9001))]
    assert [v.id for v in victims(live, port=8005, max_others=1)] == ["I-a", "I-b"]
    recorded = {"I-c": NOW - 100.0}
    assert [v.id for v in victims(live, port=8005, max_others=2, recorded=recorded)] == ["I-c"]


def test_a_failed_reading_gives_up_the_measurement() -> None:
    memory = ServerMemory(memory_usage={"GPU-0": 1}, memory_usage_at=NOW)
    memory = record_success(memory, Remember(what="measure-from", message="start"), now=NOW)
    assert memory.footprint_base == {"GPU-0": 1}
    failed = record_failure(memory, QueryMemoryUsage(ip="10.0.0.1", port=8081), now=NOW, error="x")
    assert failed.footprint_base is None and failed.footprint is None
