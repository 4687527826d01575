"""Inference-server decisions (contracts §8.2-§8.6 and reference-differences A1, A3-A5, B1, B2,
E3)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from controller.core import (
    Action,
    BindProvider,
    CreateInstance,
    CreateLauncher,
    DeleteInstance,
    DeleteProvider,
    DeleteRequester,
    EmitEvent,
    ForgetServer,
    InstanceView,
    NodeView,
    ObserveActuation,
    PodPatch,
    PodRef,
    PodView,
    QueryAccelerators,
    QueryLogTail,
    QueryMemoryUsage,
    QuerySleeping,
    RelayReady,
    RelayUnready,
    Remember,
    Requeue,
    ServerMemory,
    ServerSnapshot,
    Settings,
    UnbindProvider,
    UpdatePod,
    UpdateProvider,
    UpdateRequester,
    Wake,
    decide_server,
    record_failure,
    record_success,
)
from tests.unit.core_fixtures import (
    GPUS,
    IID,
    NOW,
    bound_launcher_pod,
    instance,
    launcher_pod,
    lv,
    requester,
    snapshot,
    with_launchers,
)

FIN = "dual-pods.llm-d.ai/requester"
REF = PodRef(name="p", uid="u")


def kinds(actions: Sequence[object]) -> list[str]:
    return [type(action).__name__ for action in actions]


def status_of(actions: Sequence[object]) -> str | None:
    for action in actions:
        if isinstance(action, UpdateRequester):
            value = action.patch.annotations.get("dual-pods.llm-d.ai/status")
            if value is not None:
                return value
    return None


# --- prelude (§8.2) -----------------------------------------------------------------------------


def test_both_gone_forgets_the_server() -> None:
    assert decide_server(snapshot(requester=None)) == [ForgetServer()]


def test_two_providers_is_reported() -> None:
    snap = snapshot(providers=(launcher_pod("a"), launcher_pod("b")))
    assert "more than one" in (status_of(decide_server(snap)) or "")


def test_unwanted_requester_finalizer_is_removed_first() -> None:
    actions = decide_server(snapshot(requester=requester(finalizers=(FIN,))))
    assert kinds(actions) == ["UpdateRequester"]
    assert actions[0].patch.remove_finalizers == (FIN,)  # type: ignore[attr-defined]


def test_provider_deleted_deletes_requester_and_releases_provider() -> None:
    provider = bound_launcher_pod(deleting=True)
    actions = decide_server(snapshot(providers=(provider,)))
    assert kinds(actions) == ["UpdateRequester", "EmitEvent", "DeleteRequester", "UpdatePod"]
    assert actions[-1].patch.remove_finalizers == ("dual-pods.llm-d.ai/provider",)  # type: ignore[attr-defined]
    again = decide_server(
        snapshot(providers=(provider,), requester=requester(deleting=True, finalizers=(FIN,)))
    )
    assert kinds(again) == ["UpdatePod"]


def test_waits_and_reports_early_states() -> None:
    assert decide_server(snapshot(requester=requester(deleting=True))) == []
    assert decide_server(snapshot(node=None)) == []
    assert "not scheduled yet" in (
        status_of(decide_server(snapshot(requester=requester(node_name=None)))) or ""
    )
    assert "no IP assigned yet" in (
        status_of(decide_server(snapshot(requester=requester(ip=None)))) or ""
    )


def test_a_start_in_its_normal_course_is_not_reported_until_it_lasts() -> None:
    young = requester(ip=None, created_at=NOW - 1)
    actions = decide_server(snapshot(requester=young))
    assert actions == [Requeue(after=4.0, reason="no IP assigned yet")]
    late = decide_server(snapshot(requester=requester(ip=None, created_at=NOW - 5)))
    assert "no IP assigned yet" in (status_of(late) or "")


def test_gpus_are_queried_then_errors_reported() -> None:
    actions = decide_server(snapshot(memory=ServerMemory()))
    assert actions == [QueryAccelerators(ip="10.0.0.1", port=8081)]
    failed = record_failure(ServerMemory(), actions[0], now=NOW, error="refused")
    actions = decide_server(snapshot(memory=failed))
    assert "fails: refused" in (status_of(actions) or "")
    assert isinstance(actions[-1], QueryAccelerators)
    empty = record_success(ServerMemory(), actions[-1], now=NOW, result=[])
    assert "GPUs is empty" in (status_of(decide_server(snapshot(memory=empty))) or "")


def test_a_stub_that_has_just_started_is_polled_without_a_status_write() -> None:
    young = requester(server_started_at=NOW - 0.5)
    [query] = decide_server(snapshot(requester=young, memory=ServerMemory()))
    assert query == QueryAccelerators(ip="10.0.0.1", port=8081, poll_after=0.1)
    refused = record_failure(ServerMemory(), query, now=NOW, error="connection refused")
    # Not listening yet is the normal course of its start: asked again, nothing reported.
    assert decide_server(snapshot(requester=young, memory=refused)) == [query]
    # Still failing once the start window is over: reported, and retried on the backoff.
    old = requester(server_started_at=NOW - 21)
    actions = decide_server(snapshot(requester=old, memory=refused))
    assert "fails: connection refused" in (status_of(actions) or "")
    assert actions[-1] == QueryAccelerators(ip="10.0.0.1", port=8081)


def test_cordoned_node_deletes_requester_without_provider() -> None:
    actions = decide_server(snapshot(node=NodeView(name="n1", unschedulable=True)))
    assert kinds(actions) == ["DeleteRequester"]
    assert actions[0].preconditions is False  # type: ignore[attr-defined]


# --- launcher choice (§8.3) ---------------------------------------------------------------------


def bind_target(actions: Sequence[object]) -> str:
    return next(a.pod.name for a in actions if isinstance(a, BindProvider))


def test_hot_instance_wins_over_warm_room() -> None:
    snap = with_launchers(lv(launcher_pod("a")), lv(launcher_pod("b"), instance()))
    actions = decide_server(snap)
    assert bind_target(actions) == "b"
    bind = next(a for a in actions if isinstance(a, BindProvider))
    assert bind.patch.annotations["dual-pods.llm-d.ai/instance-id"] == IID
    assert bind.patch.add_finalizers == ("dual-pods.llm-d.ai/provider",)
    # The requester's side is written with the wake (the bound path): the bind goes alone.
    assert kinds(actions) == ["BindProvider"]


def test_warm_needs_free_port_and_room() -> None:
    busy = lv(launcher_pod("a"), instance("I-other", port=8005))
    room = lv(launcher_pod("b"), instance("I-x", port=9000))
    assert bind_target(decide_server(with_launchers(busy, room))) == "b"


def test_reclaim_prefers_fewest_victims_then_oldest() -> None:
    two = lv(
        launcher_pod("a"),
        instance("I-1", port=8005, last_used=NOW - 10),
        instance("I-2", port=9000, last_used=NOW - 9),
    )
    one_new = lv(
        launcher_pod("b"),
        instance("I-3", port=9001, last_used=NOW - 1),
        instance("I-4", port=9002, last_used=NOW - 2),
    )
    one_old = lv(
        launcher_pod("c"),
        instance("I-5", port=9003, last_used=NOW - 100),
        instance("I-6", port=9004, last_used=NOW - 50),
    )
    actions = decide_server(with_launchers(two, one_new, one_old))
    assert bind_target(actions) == "c"
    # Nothing is deleted before the bind succeeded: the bound path reclaims (I-5), see
    # tests/unit/test_core_reclaim.py.
    assert not any(isinstance(a, DeleteInstance) for a in actions)


def test_stopped_and_invalid_instances_are_cleaned_up() -> None:
    launcher = lv(
        launcher_pod("a"), instance("I-dead", running=False), instance("I-bad", port=None)
    )
    actions = decide_server(with_launchers(launcher))
    reasons = {a.instance_id: a.reason for a in actions if isinstance(a, DeleteInstance)}
    assert reasons == {"I-dead": "stopped", "I-bad": "invalid"}
    assert bind_target(actions) == "a"


def test_skips_bound_failed_deleting_and_other_hash() -> None:
    skipped = (
        lv(bound_launcher_pod("a")),
        lv(launcher_pod("b", phase="Failed")),
        lv(launcher_pod("c", deleting=True)),
        lv(launcher_pod("d", annotations={"dual-pods.llm-d.ai/launcher-config-hash": "other"})),
    )
    actions = decide_server(with_launchers(*skipped))
    create = next(a for a in actions if isinstance(a, CreateLauncher))
    meta = create.pod["metadata"]
    assert meta["annotations"]["dual-pods.llm-d.ai/requester"] == "req-uid req"
    assert meta["labels"]["dual-pods.llm-d.ai/sleeping"] == "true"
    assert meta["finalizers"] == ["dual-pods.llm-d.ai/provider"]


def test_waits_for_starting_launcher_but_not_a_stuck_one() -> None:
    starting = lv(launcher_pod("a", ready=False, created_at=NOW - 10))
    actions = decide_server(with_launchers(starting))
    assert isinstance(actions[-1], Requeue)
    assert not any(isinstance(a, CreateLauncher) for a in actions)
    stuck = lv(launcher_pod("a", ready=False, labels={"dual-pods.llm-d.ai/launcher-stuck": "true"}))
    assert any(isinstance(a, CreateLauncher) for a in decide_server(with_launchers(stuck)))
    old = lv(launcher_pod("a", ip=None, created_at=NOW - 10_000))
    assert any(isinstance(a, CreateLauncher) for a in decide_server(with_launchers(old)))


def test_isc_lc_and_routing_problems_go_to_status() -> None:
    assert "InferenceServerConfig" in (
        status_of(decide_server(snapshot(isc=None, isc_error="boom"))) or ""
    )
    assert "LauncherConfig" in (status_of(decide_server(snapshot(lc=None))) or "")
    empty = requester(annotations={"dual-pods.llm-d.ai/inference-server-config": ""})
    assert "empty value" in (status_of(decide_server(snapshot(requester=empty))) or "")
    from tests.unit.core_fixtures import ISC

    bad = ISC.model_copy(deep=True)
    bad.spec.model_server_config.labels = {"kubernetes.io/x": "y"}
    assert "reserved prefix" in (status_of(decide_server(snapshot(isc=bad))) or "")


# --- bound path, launcher mode (§8.5) ------------------------------------------------------------


def bound(*instances: InstanceView, memory: ServerMemory | None = None, **pod: Any) -> list[Action]:
    provider = bound_launcher_pod(**pod)
    snap = with_launchers(
        lv(provider, *instances),
        providers=(provider,),
        requester=requester(finalizers=(FIN,), labels={"dual-pods.llm-d.ai/dual": "launcher-a"}),
        memory=memory or ServerMemory(gpu_uuids=GPUS),
    )
    return decide_server(snap)


def test_bound_absent_instance_is_created() -> None:
    actions = bound()
    create = next(a for a in actions if isinstance(a, CreateInstance))
    assert create.instance_id == IID and create.config["options"].endswith("--port 8005")


def test_a_refused_instance_is_a_failure_on_the_requester_not_a_retry() -> None:
    """A launcher that refuses the PUT (the reference: 409 for an unknown GPU UUID) → status."""
    (create,) = [a for a in bound() if isinstance(a, CreateInstance)]
    answer = 'PUT http://10.0.1.1:8001/v2/vllm/instances/I: HTTP 409: {"detail":"GPU-7?"}'
    transient = record_failure(ServerMemory(gpu_uuids=GPUS), create, now=NOW, error="timeout")
    assert transient.refusal is None and CreateInstance in map(type, bound(memory=transient))
    memory = record_failure(ServerMemory(gpu_uuids=GPUS), create, now=NOW, error=answer,
                            refused=True)  # fmt: skip
    actions = bound(memory=memory)
    assert kinds(actions)[:2] == ["Remember", "EmitEvent"]
    assert not any(isinstance(a, CreateInstance) for a in actions)
    [error] = json.loads(status_of(actions) or "{}")["Errors"]
    assert error == f'launcher Pod "launcher-a" refused to create instance {IID}: {answer}'
    event = next(a for a in actions if isinstance(a, EmitEvent))
    assert (event.type, event.reason) == ("Warning", "ServerFailed") and "GPU-7?" in event.message
    reported = record_success(memory, actions[0], now=NOW)
    assert kinds(bound(memory=reported))[-1] == "Requeue"  # kept visible, then deleted
    expired = dataclasses.replace(reported, failed_at=NOW - 1000)
    assert kinds(bound(memory=expired)) == ["DeleteRequester"]
    assert record_success(memory, create, now=NOW).refusal is None


def test_bound_absent_known_instance_deletes_requester_after_grace() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True, instance_created_at=NOW - 1)
    assert kinds(bound(memory=memory)) == ["Requeue"]
    memory = dataclasses.replace(memory, instance_created_at=NOW - 100)
    assert kinds(bound(memory=memory)) == ["UpdateProvider", "EmitEvent", "DeleteRequester"]


def test_bound_sleeping_instance_is_woken() -> None:
    actions = bound(instance(phase="sleeping"))
    assert Wake(ip="10.0.1.1", port=8005) in actions
    assert isinstance(actions[0], Remember)
    # The requester's side of the binding goes with the wake, in one Update.
    claimed = next(a for a in actions if isinstance(a, UpdateRequester))
    assert claimed.patch.labels == {"dual-pods.llm-d.ai/instance": IID}
    assert kinds(actions)[-2:] == ["Wake", "UpdateRequester"]


def test_memory_gate_queries_then_evicts_lru_sleeper() -> None:
    provider = bound_launcher_pod()
    other = launcher_pod("b", ip="10.0.1.2")
    snap = with_launchers(
        lv(provider, instance(phase="sleeping")),
        lv(
            other,
            instance("I-old", last_used=NOW - 900),
            instance("I-new", last_used=NOW - 1),
            instance("I-elsewhere", gpu_uuids=("GPU-9",), last_used=0),
        ),
        providers=(provider,),
        settings=Settings(memory_check=True),
        memory=ServerMemory(gpu_uuids=GPUS, instance_known=True),
    )
    assert isinstance(decide_server(snap)[-1], QueryMemoryUsage)
    full = dataclasses.replace(
        snap,
        memory=ServerMemory(
            gpu_uuids=GPUS, instance_known=True, memory_usage={"GPU-0": 70_000}, memory_usage_at=NOW
        ),
    )
    actions = decide_server(full)
    assert [a.instance_id for a in actions if isinstance(a, DeleteInstance)] == ["I-old"]
    fits = dataclasses.replace(
        snap,
        memory=ServerMemory(
            gpu_uuids=GPUS, instance_known=True, memory_usage={"GPU-0": 100}, memory_usage_at=NOW
        ),
    )
    assert any(isinstance(a, Wake) for a in decide_server(fits))


def test_memory_gate_asks_nothing_when_no_sleeper_shares_the_gpus() -> None:
    provider = bound_launcher_pod()
    elsewhere = launcher_pod("b", ip="10.0.1.2")
    snap = with_launchers(
        lv(provider, instance(phase="sleeping")),
        lv(elsewhere, instance("I-elsewhere", gpu_uuids=("GPU-9",))),
        providers=(provider,),
        settings=Settings(memory_check=True),
        memory=ServerMemory(gpu_uuids=GPUS, instance_known=True),
    )
    actions = decide_server(snap)
    assert not any(isinstance(a, QueryMemoryUsage) for a in actions)
    assert any(isinstance(a, Wake) for a in actions)


def test_repeated_wake_failures_delete_the_sleeper() -> None:
    memory = ServerMemory(
        gpu_uuids=GPUS, instance_known=True, wake_failures=3, last_wake_error="OOM"
    )
    actions = bound(instance(phase="sleeping"), memory=memory)
    assert any(isinstance(a, DeleteInstance) and a.reason == "wedged" for a in actions)


def test_ready_instance_applies_routing_and_relays_ready() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True, path="warm", instances_deleted=1)
    actions = bound(instance(phase="ready"), memory=memory)
    update = next(a for a in actions if isinstance(a, UpdateProvider))
    assert update.patch.labels == {"dual-pods.llm-d.ai/sleeping": "false", "route": "yes"}
    assert RelayReady(ip="10.0.0.1", port=8081, uid="req-uid") in actions
    observe = next(a for a in actions if isinstance(a, ObserveActuation))
    assert (observe.path, observe.instances_deleted, observe.seconds) == ("warm", 1, 30.0)


def test_routing_collision_is_reported_and_skipped() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    labels = {"dual-pods.llm-d.ai/launcher-config-name": "lc1", "route": "taken"}
    actions = bound(instance(phase="ready"), memory=memory, labels=labels)
    update = next(a for a in actions if isinstance(a, UpdateProvider))
    assert "route" not in update.patch.labels
    assert "collides" in (status_of(actions) or "")
    assert not any(isinstance(a, DeleteRequester) for a in actions)


def test_readiness_already_matching_is_only_recorded() -> None:
    provider = bound_launcher_pod(
        labels={
            "dual-pods.llm-d.ai/launcher-config-name": "lc1",
            "dual-pods.llm-d.ai/sleeping": "false",
            "route": "yes",
        }
    )
    snap = with_launchers(
        lv(provider, instance(phase="ready")),
        providers=(provider,),
        requester=requester(finalizers=(FIN,), server_ready=True),
        memory=ServerMemory(gpu_uuids=GPUS, instance_known=True),
    )
    actions = decide_server(snap)
    assert Remember(what="relayed", ready=True) in actions
    assert not any(isinstance(a, RelayReady) for a in actions)


def test_starting_instance_waits_then_fails_after_deadline() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True, instance_created_at=NOW - 10)
    actions = bound(instance(phase="starting"), memory=memory)
    assert isinstance(actions[-1], Requeue)
    late = dataclasses.replace(memory, instance_created_at=NOW - 10_000)
    assert kinds(bound(instance(phase="starting"), memory=late)) == ["QueryLogTail"]
    tail = dataclasses.replace(late, log_tail="")
    actions = bound(instance(phase="starting"), memory=tail)
    assert kinds(actions)[:2] == ["Remember", "EmitEvent"]
    assert "did not become ready" in (status_of(actions) or "")


def test_stopped_instance_reports_exit_code_then_requester_deleted() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    stopped = instance(running=False, exit_code=137, reason="CUDA OOM; last log lines:\nKilled")
    actions = bound(stopped, memory=memory)
    failure = next(a for a in actions if isinstance(a, Remember))
    assert "exit code 137" in failure.message and "CUDA OOM" in failure.message
    assert not any(isinstance(a, QueryLogTail) for a in actions), "fma's launcher said why"
    reported = record_success(memory, failure, now=NOW)
    actions = bound(instance(running=False), memory=reported)
    assert isinstance(actions[-1], Requeue) and "exit code 137" in (status_of(actions) or "")
    expired = dataclasses.replace(reported, failed_at=NOW - 1000)
    assert kinds(bound(instance(running=False), memory=expired)) == ["DeleteRequester"]


def test_a_reference_launchers_stopped_instance_gets_its_log_tail_read_first() -> None:
    """A reference launcher gives no reason: the controller reads the log's end itself."""
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    stopped = instance(running=False, exit_code=1)
    (query,) = bound(stopped, memory=memory)
    assert query == QueryLogTail(ip="10.0.1.1", instance_id=IID)
    memory = record_success(memory, query, now=NOW, result="loading weights\nKilled")
    actions = bound(stopped, memory=memory)
    failure = next(a for a in actions if isinstance(a, Remember))
    assert failure.message.endswith("last log lines:\nloading weights\nKilled")
    event = next(a for a in actions if isinstance(a, EmitEvent))
    assert "loading weights" in event.message and "Killed" in (status_of(actions) or "")


def test_reference_launcher_without_phase_uses_is_sleeping() -> None:
    memory = ServerMemory(gpu_uuids=GPUS, instance_known=True)
    actions = bound(instance(phase=None), memory=memory)
    assert QuerySleeping(ip="10.0.1.1", port=8005) in actions
    awake = dataclasses.replace(memory, sleeping=False)
    assert any(isinstance(a, RelayReady) for a in bound(instance(phase=None), memory=awake))


def test_bound_launcher_not_ready_waits_then_fails() -> None:
    assert isinstance(bound(ready=False, created_at=NOW - 10)[-1], Requeue)
    assert "did not become Ready" in (status_of(bound(ready=False, created_at=NOW - 10_000)) or "")


def test_bound_launcher_missing_annotation_is_reported() -> None:
    provider = bound_launcher_pod(annotations={"dual-pods.llm-d.ai/requester": "req-uid req"})
    actions = decide_server(snapshot(providers=(provider,)))
    assert "missing annotation" in (status_of(actions) or "")


# --- unbind (§8.6) --------------------------------------------------------------------------


def unbind(
    *instances: InstanceView, memory: ServerMemory | None = None, **pod: Any
) -> list[Action]:
    provider = bound_launcher_pod(**pod)
    snap = with_launchers(
        lv(provider, *instances),
        providers=(provider,),
        requester=requester(deleting=True, finalizers=(FIN,)),
        memory=memory or ServerMemory(gpu_uuids=GPUS, unbind_started_at=NOW - 1),
    )
    return decide_server(snap)


def test_unbind_starts_its_timer() -> None:
    assert unbind(memory=ServerMemory()) == [Remember(what="unbind-started")]


def test_unbind_sleeps_then_unbinds_and_releases_requester() -> None:
    actions = unbind(
        instance(phase="ready"),
        labels={"dual-pods.llm-d.ai/launcher-config-name": "lc1", "route": "yes"},
    )
    assert kinds(actions) == ["UpdateProvider", "Sleep", "UnbindProvider", "UpdateRequester"]
    unbinding = actions[2]
    assert isinstance(unbinding, UnbindProvider)
    assert unbinding.patch.annotations["dual-pods.llm-d.ai/requester"] is None
    assert unbinding.patch.labels["dual-pods.llm-d.ai/sleeping"] == "true"
    assert actions[3].patch.remove_finalizers == (FIN,)  # type: ignore[attr-defined]


def test_unbind_deletes_obsolete_failed_starting_and_wedged() -> None:
    def reason(*instances: InstanceView, memory: ServerMemory | None = None) -> str:
        return next(
            a.reason for a in unbind(*instances, memory=memory) if isinstance(a, DeleteInstance)
        )

    assert reason(instance(phase="ready", isc_name="gone")) == "obsolete"
    assert reason(instance(phase="ready", gpu_uuids=("GPU-7",))) == "obsolete"
    assert reason(instance(phase="starting")) == "failed"
    assert reason(instance(running=False)) == "failed"
    late = ServerMemory(gpu_uuids=GPUS, unbind_started_at=NOW - 1000)
    assert reason(instance(phase="ready"), memory=late) == "wedged"


def test_unbind_of_sleeping_or_gone_instance_just_unbinds() -> None:
    assert kinds(unbind(instance(phase="sleeping"))) == ["UnbindProvider", "UpdateRequester"]
    assert kinds(unbind()) == ["UnbindProvider", "UpdateRequester"]


def test_unbind_waits_for_instance_list_and_deletes_troubled_provider() -> None:
    provider = bound_launcher_pod()
    snap = snapshot(
        providers=(provider,), requester=None, memory=ServerMemory(unbind_started_at=NOW)
    )
    assert kinds(decide_server(snap)) == ["Requeue"]
    assert kinds(unbind(restarts=2, ready=False)) == ["DeleteProvider"]


# --- direct mode (§8.4) ------------------------------------------------------------------------

PATCH = """
metadata:
  labels:
    app: null
spec:
  containers:
  - name: inference-server
    image: vllm
    readinessProbe:
      httpGet:
        port: 8000
"""


def direct_requester(**overrides: Any) -> PodView:
    raw = {
        "metadata": {
            "name": "req",
            "uid": "req-uid",
            "namespace": "ns",
            "labels": {"app": "x"},
            "annotations": {"dual-pods.llm-d.ai/server-patch": PATCH},
        },
        "spec": {"containers": [{"name": "inference-server", "image": "stub"}]},
    }
    return requester(annotations={"dual-pods.llm-d.ai/server-patch": PATCH}, raw=raw, **overrides)


def direct_snapshot(**overrides: Any) -> ServerSnapshot:
    values: dict[str, object] = {
        "requester": direct_requester(),
        "gpu_map": {"n1": {"GPU-0": 0}},
        "isc": None,
        "lc": None,
    }
    values.update(overrides)
    return snapshot(**values)


def test_direct_gpu_map_problems() -> None:
    assert "gpu-map is not available" in (
        status_of(decide_server(direct_snapshot(gpu_map=None))) or ""
    )
    assert "is on Node n2" in (
        status_of(decide_server(direct_snapshot(gpu_map={"n2": {"GPU-0": 0}}))) or ""
    )
    assert "is not known" in (status_of(decide_server(direct_snapshot(gpu_map={}))) or "")


def test_direct_creates_then_reuses_sleeper() -> None:
    actions = decide_server(direct_snapshot())
    create = actions[0]
    assert kinds(actions) == ["CreateDirectProvider"], "the requester waits for the name"
    nominal = create.pod["metadata"]["annotations"]["dual-pods.llm-d.ai/nominal"]  # type: ignore[attr-defined]
    sleeper = launcher_pod(
        "r-dual-1", labels={}, annotations={"dual-pods.llm-d.ai/nominal": nominal}
    )
    terminating = launcher_pod(
        "r-dual-2", labels={}, annotations={"dual-pods.llm-d.ai/nominal": nominal}, deleting=True
    )
    actions = decide_server(direct_snapshot(direct_providers=(terminating, sleeper)))
    assert bind_target(actions) == "r-dual-1"
    bind = actions[0]
    assert isinstance(bind, BindProvider)
    # Labelled as a provider created bound is, so the wake needs no second write of it.
    assert bind.patch.labels["dual-pods.llm-d.ai/sleeping"] == "false"


def sleeper_on_gpu0(name: str, age: float, **overrides: Any) -> PodView:
    raw = {
        "spec": {
            "containers": [
                {
                    "name": "inference-server",
                    "env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "0"}],
                }
            ]
        }
    }
    return launcher_pod(
        name,
        labels={},
        annotations={"dual-pods.llm-d.ai/nominal": "x"},
        created_at=age,
        raw=raw,
        **overrides,
    )


def test_direct_sleeper_limit_deletes_oldest_and_waits_for_terminating() -> None:
    sleepers = tuple(sleeper_on_gpu0(f"s{i}", NOW - 100 * i) for i in range(1, 5))
    actions = decide_server(
        direct_snapshot(
            direct_providers=sleepers, settings=Settings(sleeper_limit=2, memory_check=False)
        )
    )
    assert sorted(a.pod.name for a in actions if isinstance(a, DeleteProvider)) == ["s3", "s4"]
    going = (sleeper_on_gpu0("s1", NOW, deleting=True),)
    assert kinds(decide_server(direct_snapshot(direct_providers=going))) == ["Requeue"]


def direct_bound(memory: ServerMemory, **overrides: Any) -> list[Action]:
    raw = {
        "spec": {
            "containers": [
                {"name": "inference-server", "readinessProbe": {"httpGet": {"port": "http"}}}
            ]
        }
    }
    values: dict[str, object] = {
        "labels": {},
        "annotations": {
            "dual-pods.llm-d.ai/requester": "req-uid req",
            "dual-pods.llm-d.ai/nominal": "x",
        },
        "raw": raw,
        "created_at": NOW - 10,
    }
    values.update(overrides)
    provider = launcher_pod("req-dual-x", **values)
    return decide_server(direct_snapshot(providers=(provider,), memory=memory))


def test_direct_bound_queries_wakes_and_relays() -> None:
    actions = direct_bound(ServerMemory(gpu_uuids=GPUS))
    assert QuerySleeping(ip="10.0.1.1", port=80) in actions
    assert Wake(ip="10.0.1.1", port=80) in direct_bound(ServerMemory(gpu_uuids=GPUS, sleeping=True))
    awake = direct_bound(ServerMemory(gpu_uuids=GPUS, sleeping=False))
    assert any(isinstance(a, RelayReady) for a in awake)
    assert any(isinstance(a, UpdateProvider) for a in awake)
    assert "did not start serving" in (
        status_of(direct_bound(ServerMemory(gpu_uuids=GPUS), created_at=NOW - 10_000)) or ""
    )


def test_direct_hot_path_writes_the_provider_once_and_the_requester_once() -> None:
    bound = {"dual-pods.llm-d.ai/sleeping": "false", "dual-pods.llm-d.ai/dual": "req"}
    woken = direct_bound(ServerMemory(gpu_uuids=GPUS, sleeping=False), labels=bound)
    assert not any(isinstance(a, UpdateProvider) for a in woken)
    written = [a for a in woken if isinstance(a, UpdateRequester)]
    assert len(written) == 1
    assert written[0].patch.add_finalizers == (FIN,)
    assert written[0].patch.labels["dual-pods.llm-d.ai/dual"] == "req-dual-x"


def test_requester_finalizer_is_held_from_the_bind_on() -> None:
    starting = direct_bound(ServerMemory(gpu_uuids=GPUS), ip=None, server_running=False)
    written = [a for a in starting if isinstance(a, UpdateRequester)]
    assert [a.patch.add_finalizers for a in written] == [(FIN,)]
    unbound = decide_server(direct_snapshot(requester=direct_requester(finalizers=(FIN,))))
    assert unbound == [UpdateRequester(pod=PodRef(name="req", uid="req-uid", resource_version="10"),
                                       patch=PodPatch(remove_finalizers=(FIN,)))]  # fmt: skip


def test_direct_unbind_deletes_a_provider_that_never_started() -> None:
    provider = launcher_pod(
        "req-dual-x",
        labels={"dual-pods.llm-d.ai/sleeping": "false"},
        annotations={"dual-pods.llm-d.ai/requester": "req-uid req"},
        ip=None,
        server_running=False,
    )
    snap = snapshot(
        providers=(provider,), requester=None, memory=ServerMemory(unbind_started_at=NOW)
    )
    actions = decide_server(snap)
    assert kinds(actions) == ["DeleteProvider"], "unbound, it would start awake for nobody"


def test_direct_unbind_sleeps_stamps_last_used_or_deletes_when_wedged() -> None:
    raw = {
        "spec": {
            "containers": [
                {"name": "inference-server", "readinessProbe": {"httpGet": {"port": 8000}}}
            ]
        }
    }
    provider = launcher_pod(
        "req-dual-x",
        labels={},
        annotations={
            "dual-pods.llm-d.ai/requester": "req-uid req",
            "dual-pods.llm-d.ai/nominal": "x",
        },
        raw=raw,
    )
    snap = snapshot(
        providers=(provider,), requester=None, memory=ServerMemory(unbind_started_at=NOW)
    )
    actions = decide_server(snap)
    assert kinds(actions) == ["Sleep", "UnbindProvider"]
    assert actions[1].patch.annotations["dual-pods.llm-d.ai/last-used"]  # type: ignore[attr-defined]
    wedged = dataclasses.replace(snap, memory=ServerMemory(unbind_started_at=NOW - 1000))
    assert kinds(decide_server(wedged)) == ["DeleteProvider"]


def test_relay_unready_when_server_goes_away() -> None:
    memory = ServerMemory(
        gpu_uuids=GPUS, instance_known=True, relayed_ready=True, instance_created_at=NOW
    )
    provider = bound_launcher_pod()
    snap = with_launchers(
        lv(provider, instance(phase="starting")),
        providers=(provider,),
        requester=requester(finalizers=(FIN,), server_ready=True),
        memory=memory,
    )
    assert RelayUnready(ip="10.0.0.1", port=8081, uid="req-uid") in decide_server(snap)


def test_memory_records() -> None:
    m = ServerMemory()
    m = record_success(m, CreateInstance(launcher=REF, ip="", instance_id="i", config={}), now=1)
    assert (m.path, m.instance_known, m.instance_created_at) == ("warm", True, 1)
    m = record_success(
        m, DeleteInstance(launcher=REF, ip="", instance_id="v", reason="reclaim"), now=2
    )
    assert m.instances_deleted == 1
    m = record_failure(m, Wake(ip="", port=1), now=3, error="OOM")
    assert (m.wake_failures, m.last_wake_error) == (1, "OOM")
    m = record_success(m, Wake(ip="", port=1), now=4)
    assert (m.wake_failures, m.sleeping) == (0, False)
    m = record_failure(m, QueryMemoryUsage(ip="", port=1), now=5, error="404")
    assert (m.memory_usage, m.memory_usage_at) == ({}, 5)
    assert record_success(m, EmitEvent(pod=REF, type="Normal", reason="r", message="m"), now=6) is m
    assert record_success(m, UpdatePod(pod=REF, patch=PodPatch()), now=6) is m
