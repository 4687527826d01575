"""Launcher-populator decisions (contracts §10, reference-differences E2)."""

from __future__ import annotations

from typing import Any

from controller.core import (
    HANDS_OFF,
    DeletePod,
    EmitEvent,
    LauncherView,
    NodeView,
    PolicyTable,
    PopulationDecision,
    PopulatorSettings,
    UpdatePod,
    build_changed,
    build_lcs,
    decide_population,
    launcher_phase,
    lc_status_errors,
    policy_table,
    status_patch,
)
from crds.models import LauncherConfig, LauncherPopulationPolicy
from tests.unit.core_fixtures import LC, NOW, TEMPLATE, instance, launcher_pod

BAD_LC = LauncherConfig.model_validate(
    {
        "metadata": {"name": "bad"},
        "spec": {"maxInstances": 1, "podTemplate": {"spec": {"containers": [{"name": "x"}]}}},
    }
)
BUILDS = build_lcs([LC, BAD_LC])
GPU_NODE = NodeView(
    name="n1", labels={"gpu": "yes", "zone": "a"}, allocatable={"nvidia.com/gpu": "8"}
)
CPU_NODE = NodeView(name="n2", labels={"zone": "a"}, allocatable={})


def lpp(
    name: str,
    counts: dict[str, int],
    selector: dict[str, object],
    resources: dict[str, object] | None = None,
) -> LauncherPopulationPolicy:
    spec: dict[str, object] = {
        "enhancedNodeSelector": {
            "labelSelector": selector,
            **({"allocatableResources": resources} if resources else {}),
        },
        "countForLauncher": [
            {"launcherConfigName": k, "launcherCount": v} for k, v in counts.items()
        ],
    }
    return LauncherPopulationPolicy.model_validate({"metadata": {"name": name}, "spec": spec})


def test_lc_status() -> None:
    assert lc_status_errors(BUILDS["lc1"]) is None
    assert lc_status_errors(BUILDS["bad"]) == ['container "inference-server" not found']
    assert lc_status_errors(BUILDS["lc1"], rejection="spec: invalid") == [
        "the apiserver rejects launcher Pods built from spec.podTemplate: spec: invalid"
    ]
    assert lc_status_errors(BUILDS["bad"], rejection="x") == [
        'container "inference-server" not found'
    ]


def test_policy_table_max_selectors_and_hands_off() -> None:
    table = policy_table(
        [
            lpp("p1", {"lc1": 2}, {"matchLabels": {"zone": "a"}}),
            lpp(
                "p2",
                {"lc1": 3, "bad": 1, "missing": 1},
                {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                {"nvidia.com/gpu": {"min": 4, "max": "16"}},
            ),
            lpp(
                "p3",
                {"lc1": -5},
                {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["no"]}]},
            ),
            lpp("broken", {"lc1": 9}, {"matchExpressions": [{"key": "gpu", "operator": "Near"}]}),
        ],
        BUILDS,
        [GPU_NODE, CPU_NODE, NodeView(name="gone", labels={"zone": "a"}, deleting=True)],
    )
    assert table.desired[("n1", "lc1")] == 3
    assert table.desired[("n2", "lc1")] == 2
    assert table.desired[("n1", "bad")] == HANDS_OFF
    assert table.desired[("n1", "missing")] == HANDS_OFF
    assert ("gone", "lc1") not in table.desired
    assert table.lpp_errors["p1"] == []
    assert any("does not exist" in e for e in table.lpp_errors["p2"])
    assert any("is malformed" in e for e in table.lpp_errors["p2"])
    assert "not a valid label selector operator" in table.lpp_errors["broken"][0]


def current(name: str, **overrides: Any) -> LauncherView:
    annotations = {"dual-pods.llm-d.ai/launcher-populator-template-hash": TEMPLATE.template_hash}
    values: dict[str, object] = {
        "annotations": annotations,
        "labels": {},
        "scheduled_at": NOW - 900,
    }
    values.update(overrides)
    instances = values.pop("instances", ())
    return LauncherView(pod=launcher_pod(name, **values), instances=instances)  # type: ignore[arg-type]


def decide(
    desired: int | None, *launchers: LauncherView, node: NodeView | None = GPU_NODE
) -> PopulationDecision:
    return decide_population(
        node=node, lc_name="lc1", desired=desired, build=BUILDS["lc1"], launchers=launchers, now=NOW
    )


def test_creates_missing_launchers() -> None:
    decision = decide(3, current("a"))
    assert len(decision.create) == 2
    assert decision.create[0]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "n1"}  # type: ignore[index]


def test_hands_off_missing_node_and_no_policy() -> None:
    assert decide(HANDS_OFF, current("a")).actions == ()
    assert decide(2, node=None).create == ()
    uncovered = decide(None, current("a"))
    assert [a.pod.name for a in uncovered.actions if isinstance(a, DeletePod)] == ["a"]


def test_stale_replaced_bound_kept_and_counted() -> None:
    bound = current("b", annotations={"dual-pods.llm-d.ai/requester": "u r"})
    stale = current("s", annotations={"dual-pods.llm-d.ai/launcher-populator-template-hash": "old"})
    decision = decide(1, bound, stale)
    assert [a.pod.name for a in decision.actions] == ["s"]  # type: ignore[attr-defined]
    assert decision.phase_counts == {"bound": 1, "stale": 1}
    assert decide(0, bound).actions == ()


def test_excess_deletes_emptiest_then_least_recently_used() -> None:
    busy = current("a", instances=(instance("I1", last_used=NOW - 1),))
    idle_old = current("b", instances=(instance("I2", last_used=NOW - 500),))
    empty = current("c", instances=())
    unknown = LauncherView(pod=current("d").pod, instances=None)
    decision = decide(2, busy, idle_old, empty, unknown)
    assert [a.pod.name for a in decision.actions] == ["c", "b"]  # type: ignore[attr-defined]


def test_stuck_labels_events_and_recovery() -> None:
    settings = PopulatorSettings()
    scheduling = current("a", ready=False, scheduled_at=None, created_at=NOW - 1000)
    starting = current("b", ready=False, scheduled_at=NOW - 1000)
    recovered = current("c", labels={"dual-pods.llm-d.ai/launcher-stuck": "true"})
    young = current("d", ready=False, scheduled_at=None, created_at=NOW - 10)
    assert launcher_phase(scheduling, TEMPLATE.template_hash, NOW, settings) == "stuck_scheduling"
    assert launcher_phase(starting, TEMPLATE.template_hash, NOW, settings) == "stuck_starting"
    decision = decide(4, scheduling, starting, recovered, young)
    updates = {
        a.pod.name: a.patch.labels["dual-pods.llm-d.ai/launcher-stuck"]
        for a in decision.actions
        if isinstance(a, UpdatePod)
    }
    assert updates == {"a": "true", "b": "true", "c": None}
    events = [a.message for a in decision.actions if isinstance(a, EmitEvent)]
    assert events == [
        "Launcher is stuck (stuck_scheduling); leaving it in place for investigation",
        "Launcher is stuck (stuck_starting); leaving it in place for investigation",
    ]
    assert decision.requeue_after == 110.0
    assert decision.phase_counts == {"stuck_scheduling": 1, "stuck_starting": 1, "unbound": 2}


def test_deleting_pods_make_it_wait() -> None:
    decision = decide(3, current("a", deleting=True))
    assert decision.create == () and decision.requeue_after == 1.0


def test_status_patch_only_when_generation_or_errors_differ() -> None:
    assert status_patch(None, generation=1, errors=None) == {
        "observedGeneration": 1,
        "errors": None,
    }
    assert status_patch({"observedGeneration": 1}, generation=1, errors=[]) is None
    assert status_patch({"observedGeneration": 1, "errors": []}, generation=1, errors=None) is None
    assert status_patch({"observedGeneration": 1}, generation=2, errors=None) == {
        "observedGeneration": 2,
        "errors": None,
    }
    assert status_patch({"observedGeneration": 2}, generation=2, errors=["e"]) == {
        "observedGeneration": 2,
        "errors": ["e"],
    }
    assert (
        status_patch({"observedGeneration": 2, "errors": ["e"]}, generation=2, errors=["e"]) is None
    )


def test_build_changed_compares_existence_validity_and_hash() -> None:
    other = build_lcs(
        [LC.model_copy(update={"metadata": LC.metadata.model_copy(update={"uid": "new-uid"})})]
    )["lc1"]
    assert not build_changed(None, None)
    assert build_changed(None, BUILDS["lc1"])
    assert build_changed(BUILDS["lc1"], None)
    assert not build_changed(BUILDS["lc1"], build_lcs([LC])["lc1"])
    assert build_changed(BUILDS["lc1"], other), "a new LC UID changes the template hash"
    assert build_changed(BUILDS["lc1"], BUILDS["bad"])


def test_changed_keys_between_tables() -> None:
    old = PolicyTable({("n1", "a"): 1, ("n1", "b"): 2}, {})
    new = PolicyTable({("n1", "a"): 1, ("n1", "b"): HANDS_OFF, ("n2", "a"): 0}, {})
    assert old.changed_keys(new) == {("n1", "b"), ("n2", "a")}
    assert new.changed_keys(PolicyTable({}, {})) == set(new.desired)


def test_uncovered_keys_keep_launchers_holding_sleepers_when_asked() -> None:
    keep = PopulatorSettings(keep_sleepers_s=600.0)
    empty = current("a", instances=())
    recent = current("b", instances=(instance("I1", last_used=NOW - 100),))
    old = current("c", instances=(instance("I2", last_used=NOW - 700),))
    unknown = LauncherView(pod=current("d").pod, instances=None)
    undated = current("e", instances=(instance("I3", last_used=None, created_at=None),))
    pods = (empty, recent, old, unknown, undated)

    def deleted(desired: int | None, settings: PopulatorSettings) -> list[str]:
        decision = decide_population(
            node=GPU_NODE,
            lc_name="lc1",
            desired=desired,
            build=BUILDS["lc1"],
            launchers=pods,
            now=NOW,
            settings=settings,
        )
        return sorted(a.pod.name for a in decision.actions if isinstance(a, DeletePod))

    assert deleted(None, PopulatorSettings(keep_sleepers_s=0)) == ["a", "b", "c", "d", "e"], "ref"
    assert deleted(None, keep) == ["a", "c"]
    assert deleted(0, keep) == ["a", "b", "c", "d", "e"], "an LPP asking for 0 is obeyed"
    decision = decide_population(
        node=GPU_NODE,
        lc_name="lc1",
        desired=None,
        build=BUILDS["lc1"],
        launchers=(recent,),
        now=NOW,
        settings=keep,
    )
    assert decision.actions == () and decision.requeue_after == 500.0
