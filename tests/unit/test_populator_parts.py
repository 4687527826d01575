"""The populator's parts with plain objects: policy keeper, expectations, counts, flags, keys."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

import controller.populator
from controller.core import HANDS_OFF
from controller.populator import (
    Expectations,
    LauncherKey,
    PolicyKeeper,
    instance_view,
    key_of,
    parse_duration,
)
from controller.populator._cli import parse_args
from controller.populator._counts import PodCounts
from tests.unit.populator_support import lc, lpp, node

K1 = LauncherKey("n1", "lc1")


def test_keeper_reports_nothing_before_the_build_then_everything() -> None:
    keeper = PolicyKeeper()
    assert not keeper.set_node("n1", node("n1", gpu="yes"))
    assert not keeper.set_lc("lc1", lc())
    assert not keeper.set_lpp("p", lpp("p", {"lc1": 2, "ghost": 1}, gpu="yes"))
    assert keeper.desired(K1) is None
    changes = keeper.build()
    assert changes.keys == {K1, LauncherKey("n1", "ghost")}
    assert changes.lc_status == {"lc1"} and changes.lpp_status == {"p"}
    assert keeper.desired(K1) == 2
    assert keeper.desired(LauncherKey("n1", "ghost")) == HANDS_OFF
    assert keeper.lpp_errors("p") == [
        'LauncherConfig "ghost" referenced in CountForLauncher does not exist'
    ]
    assert keeper.lpp_errors("unknown") is None


def test_keeper_changes_follow_each_kind_of_event() -> None:
    keeper = PolicyKeeper()
    keeper.set_node("n1", node("n1", gpu="yes"))
    keeper.set_lc("lc1", lc())
    keeper.set_lpp("p", lpp("p", {"lc1": 1}, gpu="yes"))
    keeper.build()
    more = keeper.set_lpp("p", lpp("p", {"lc1": 3}, gpu="yes"))
    assert more.keys == {K1} and more.lpp_status == {"p"}
    same = keeper.set_lc("lc1", lc())
    assert same.lcs == set() and same.keys == set() and same.lc_status == {"lc1"}
    edited = keeper.set_lc("lc1", lc(image="launcher:2"))
    assert edited.lcs == {"lc1"} and edited.keys == set()
    broken = keeper.set_lc("lc1", lc(container="x"))
    assert broken.lcs == {"lc1"} and broken.keys == {K1} and broken.lpp_status == {"p"}
    assert keeper.desired(K1) == HANDS_OFF
    keeper.set_lc("lc1", lc())
    heartbeat = node("n1", gpu="yes")
    heartbeat["status"]["conditions"] = [{"type": "Ready"}]
    assert not keeper.set_node("n1", heartbeat)
    moved = keeper.set_node("n1", node("n1", gpu="no"))
    assert moved.keys == {K1} and keeper.desired(K1) is None
    keeper.set_node("n1", node("n1", gpu="yes"))
    assert keeper.set_node("n1", None).keys == {K1}
    assert keeper.keys_of("lc1") == set()


def test_keeper_reports_objects_the_models_reject() -> None:
    keeper = PolicyKeeper()
    keeper.build()
    bad_lpp = lpp("p", {"lc1": 1})
    bad_lpp["spec"]["countForLauncher"].append({"launcherConfigName": "lc1", "launcherCount": 2})
    assert keeper.set_lpp("p", bad_lpp).lpp_status == {"p"}
    errors = keeper.lpp_errors("p")
    assert errors is not None and "duplicate launcherConfigName" in errors[0]
    bad_lc = lc()
    bad_lc["spec"]["maxInstances"] = "two"
    keeper.set_lc("lc1", bad_lc)
    build = keeper.build_of("lc1")
    assert build is not None and build.template is None
    assert build.error is not None and build.error.startswith("spec.maxInstances:")


def pod(uid: str, rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": uid, "namespace": "ns", "uid": uid, "resourceVersion": rv, **meta}}


def test_expectations_are_met_by_the_cache_and_expire() -> None:
    now = [0.0]
    exp = Expectations(5.0, lambda: now[0])
    exp.expect(K1, "a", "create", cached=None)
    exp.expect(K1, "b", "delete", cached=pod("b"))
    exp.expect(K1, "c", "patch", version="7", cached=pod("c", "7"))
    assert exp.state(K1) == ("pending", 5.0)
    exp.observe(pod("a"))
    exp.observe(pod("b", "2"))
    assert exp.pending(K1) == 2, "an update without deletionTimestamp does not meet a delete"
    exp.observe(pod("b", "3", deletionTimestamp="2024-01-01T00:00:00Z"))
    exp.observe(pod("c", "8"))
    assert exp.state(K1) == ("satisfied", 0.0)
    exp.expect(K1, "d", "create", cached=None)
    now[0] = 4.0
    assert exp.state(K1) == ("pending", 1.0)
    now[0] = 5.0
    assert exp.state(K1)[0] == "expired"
    exp.reset(K1)
    assert exp.state(K1)[0] == "satisfied"


def test_expectations_already_met_when_recorded_are_not_kept() -> None:
    exp = Expectations(5.0, lambda: 0.0)
    exp.expect(K1, "a", "create", cached=pod("a"))
    exp.expect(K1, "b", "delete", cached=None)
    exp.expect(K1, "c", "delete", cached=pod("other-uid-same-name"))
    exp.expect(K1, "d", "patch", version="1", cached=pod("d", "2"))
    exp.expect(K1, "e", "create", cached=None)
    exp.observe(pod("e"), gone=True)
    assert exp.state(K1)[0] == "satisfied"


def test_counts_sum_over_nodes_and_drop_the_series_of_a_gone_lc() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("count", "", ("lcfg_name", "phase"), registry=registry)
    exists = {"lc1"}
    counts = PodCounts(gauge, lambda name: name in exists)

    def value(phase: str) -> float | None:
        return registry.get_sample_value("count", {"lcfg_name": "lc1", "phase": phase})

    counts.report(K1, {"unbound": 2, "bound": 1})
    counts.report(LauncherKey("n2", "lc1"), {"unbound": 1})
    assert (value("unbound"), value("bound"), value("stale")) == (3, 1, 0)
    exists.clear()
    counts.report(K1, {})
    assert value("unbound") == 1
    counts.report(LauncherKey("n2", "lc1"), {})
    assert value("unbound") is None and value("bound") is None
    counts.refresh("never-seen")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("2m", 120.0), ("7m30s", 450.0), ("1.5h", 5400.0), ("250ms", 0.25), ("3", 3.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1s", "s", "5x", "1m 2s", "nan"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_flags_follow_the_reference() -> None:
    options = parse_args(["-n", "ns"])
    assert options.settings.expectation_timeout_s == 5.0
    assert options.settings.stuck_scheduling_threshold_s == 120.0
    assert options.settings.stuck_starting_threshold_s == 450.0
    assert options.metrics.port == 8002
    assert options.settings.thresholds.keep_sleepers_s == 1800.0
    custom = parse_args(
        ["--namespace", "x", "--expectation-timeout", "1s", "--stuck-scheduling-threshold", "3s"]
    )
    assert custom.settings.expectation_timeout_s == 1.0
    assert custom.settings.thresholds.stuck_scheduling_threshold_s == 3.0


def test_launcher_keys_come_from_the_launcher_labels() -> None:
    labels = {
        "app.kubernetes.io/component": "launcher",
        "dual-pods.llm-d.ai/launcher-config-name": "lc1",
        "dual-pods.llm-d.ai/node-name": "n1",
    }
    assert key_of({"metadata": {"labels": labels}}) == K1
    assert key_of({"metadata": {"labels": {**labels, "app.kubernetes.io/component": "x"}}}) is None
    assert key_of({"metadata": {}}) is None
    assert K1.label_selector == (
        "app.kubernetes.io/component=launcher,dual-pods.llm-d.ai/launcher-config-name=lc1,"
        "dual-pods.llm-d.ai/node-name=n1"
    )


def test_instance_view_reads_the_launcher_api() -> None:
    view = instance_view(
        {
            "status": "stopped",
            "instance_id": "I1",
            "phase": "failed",
            "gpu_uuids": ["GPU-0"],
            "annotations": {"isc-name": "isc", "inference-port": "8005"},
            "exit_code": 2,
            "reason": "bad option",
        }
    )
    assert (view.id, view.running, view.phase, view.port, view.isc_name) == (
        "I1",
        False,
        "failed",
        8005,
        "isc",
    )
    assert view.gpu_uuids == ("GPU-0",) and view.exit_code == 2 and view.stopped
    plain = instance_view({"status": "running", "instance_id": "I2", "options": "--port 1"})
    assert plain.phase is None and plain.port is None and not plain.stopped


def test_public_surface() -> None:
    exported = list(controller.populator.__all__)
    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    assert all(hasattr(controller.populator, name) for name in exported)
