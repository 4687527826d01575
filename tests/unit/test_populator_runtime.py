"""The launcher-populator runtime against the in-memory apiserver, on virtual time.

Counts follow the policies and the Nodes; excess goes emptiest first; stale templates are
replaced; bound launchers are counted and kept; a missing or malformed LC means hands-off;
expectations stop duplicate creates, and an expired one LISTs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.core import InstanceView, build_launcher_template
from controller.populator import LauncherKey
from crds.models import LauncherConfig
from kube import ApiError, EventRecorder, EventSettings, KubeEventSink
from tests.unit.populator_support import (
    NS,
    TEMPLATE_HASH,
    World,
    lc,
    lpp,
    make_ready,
    node,
    settle,
)
from tests.virtualtime import run_virtual

LPPS = "launcherpopulationpolicies"
LCS = "launcherconfigs"


def world(**settings: Any) -> World:
    w = World(**settings)
    w.fake.put("nodes", node("n1", gpu="yes"))
    w.fake.put("nodes", node("n2", gpu="yes"))
    w.fake.put("nodes", node("n3"))
    w.fake.put(LCS, lc())
    return w


def set_count(w: World, count: int, name: str = "p") -> None:
    w.fake.put(LPPS, lpp(name, {"lc1": count}, gpu="yes"))


def test_one_launcher_per_selected_node_with_status_and_metrics() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 1)
        async with w.running():
            await settle()
            pods = w.launchers()
            pinned = sorted(p["spec"]["nodeSelector"]["kubernetes.io/hostname"] for p in pods)
            assert pinned == ["n1", "n2"]
            assert all(p["metadata"]["name"].startswith("launcher-lc1-") for p in pods)
            assert w.count("lc1", "unbound") == 2
            assert w.count("lc1", "stale") == 0
            assert w.status(LCS, "lc1") == {"observedGeneration": 1}
            assert w.status(LPPS, "p") == {"observedGeneration": 1}
            samples = w.metrics.registry.get_sample_value(
                "fma_launcher_create_seconds_count",
                {"exported_namespace": NS, "lcfg_name": "lc1", "success": "true"},
            )
            assert samples == 2

    run_virtual(main)


def test_key_work_waits_for_the_initial_build() -> None:
    """Before the LPP informer synced, an existing launcher is not taken for uncovered."""

    async def main() -> None:
        w = world()
        set_count(w, 1)
        stored = LauncherConfig.model_validate(w.fake.get(LCS, "lc1", NS))
        existing = build_launcher_template(stored).for_node("n1")
        existing["metadata"]["name"] = "launcher-lc1-old"
        make_ready(existing, 0)
        w.fake.put("pods", existing)
        source = w.informers[LPPS].source
        real_list = source.list_page
        failures = [ApiError(500, "InternalError", "not yet", None)]

        async def flaky(*, limit: int, continue_token: str | None) -> Any:
            if failures:
                raise failures.pop()
            return await real_list(limit=limit, continue_token=continue_token)

        source.list_page = flaky  # type: ignore[method-assign]
        async with w.running():
            await settle(0.5)
            assert w.writes() == []
            assert w.populator.health() == (False, "waiting for the informers")
            await settle(2)
            assert w.populator.health() == (True, "table built")
            assert "launcher-lc1-old" in w.names(node_name="n1")
            assert len(w.names()) == 2

    run_virtual(main)


def test_raise_then_lower_deletes_launchers_without_instances_first() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 1)
        async with w.running():
            await settle()
            set_count(w, 2)
            await settle()
            assert len(w.names(node_name="n1")) == 2 and len(w.names(node_name="n2")) == 2
            busy, idle = w.launchers(node_name="n1")
            w.instances.by_uid[busy["metadata"]["uid"]] = (InstanceView(id="I1"),)
            w.instances.by_uid[idle["metadata"]["uid"]] = ()
            set_count(w, 1)
            await settle()
            assert w.names(node_name="n1") == [busy["metadata"]["name"]]
            assert len(w.names(node_name="n2")) == 1
            assert w.count("lc1", "unbound") == 2

    run_virtual(main)


def test_template_change_replaces_stale_unbound_launchers_and_keeps_bound_ones() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 2)
        async with w.running():
            await settle()
            first, second = w.names(node_name="n1")
            w.bind(first)
            await settle()
            old_hash = w.launchers(node_name="n1")[0]["metadata"]["annotations"][TEMPLATE_HASH]
            w.fake.put(LCS, lc(image="launcher:2"))
            await settle(2)
            names = w.names(node_name="n1")
            assert first in names and second not in names and len(names) == 2
            hashes = {
                p["metadata"]["name"]: p["metadata"]["annotations"][TEMPLATE_HASH]
                for p in w.launchers(node_name="n1")
            }
            assert hashes[first] == old_hash
            assert all(h != old_hash for n, h in hashes.items() if n != first)
            assert w.count("lc1", "bound") == 1
            assert w.count("lc1", "stale") == 0

    run_virtual(main)


def test_bound_launchers_count_and_are_never_deleted() -> None:
    async def main() -> None:
        w = world()
        w.fake.put(LPPS, lpp("p", {"lc1": 1}, gpu="yes"))
        async with w.running():
            await settle()
            (bound,) = w.names(node_name="n1")
            w.bind(bound)
            await settle()
            assert w.names(node_name="n1") == [bound], "the bound one counts"
            set_count(w, 2)
            await settle()
            assert len(w.names(node_name="n1")) == 2, "max(policy, bound)"
            set_count(w, 0)
            await settle()
            assert w.names(node_name="n1") == [bound]
            w.fake.remove(LPPS, "p", NS)
            await settle()
            assert w.names(node_name="n1") == [bound] and w.names(node_name="n2") == []
            assert w.count("lc1", "bound") == 1 and w.count("lc1", "unbound") == 0

    run_virtual(main)


def test_malformed_or_missing_lc_is_hands_off_with_status_errors() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 1)
        async with w.running():
            await settle()
            before = w.names()
            writes = len([x for x in w.writes() if "/pods" in x[1]])
            w.fake.put(LCS, lc(container="oops"))
            set_count(w, 3)
            await settle(2)
            assert w.names() == before
            assert w.status(LCS, "lc1") == {
                "observedGeneration": 2,
                "errors": ['container "inference-server" not found'],
            }
            assert w.status(LPPS, "p")["errors"] == [
                'LauncherConfig "lc1" referenced in CountForLauncher is malformed: '
                'container "inference-server" not found'
            ]
            w.fake.remove(LCS, "lc1", NS)
            await settle(2)
            assert w.names() == before
            assert len([x for x in w.writes() if "/pods" in x[1]]) == writes
            assert w.status(LPPS, "p")["errors"] == [
                'LauncherConfig "lc1" referenced in CountForLauncher does not exist'
            ]
            assert w.count("lc1", "unbound") == 2, "series stay while launchers remain"
            for name in before:
                w.fake.remove("pods", name, NS)  # the garbage collector, LC gone
            await settle()
            assert w.count("lc1", "unbound") is None, "LC and launchers gone: no series"
            w.fake.put(LCS, lc())
            await settle()
            assert len(w.names()) == 6 and "errors" not in w.status(LPPS, "p")

    run_virtual(main)


def test_nodes_joining_and_leaving_the_selector_move_the_launchers() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 1)
        async with w.running():
            await settle()
            w.fake.put("nodes", node("n3", gpu="yes"))
            w.fake.put("nodes", node("n1", gpu="no"))
            await settle()
            assert w.names(node_name="n1") == []
            assert len(w.names(node_name="n3")) == 1
            heartbeat = node("n2", gpu="yes")
            heartbeat["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
            writes = len(w.writes())
            w.fake.put("nodes", heartbeat)
            await settle()
            assert len(w.writes()) == writes, "a status-only Node change costs nothing"
            kept = w.names(node_name="n2")
            w.fake.remove("nodes", "n2")
            await settle()
            assert w.names(node_name="n2") == kept, "a gone Node is hands-off"

    run_virtual(main)


def test_expectations_stop_duplicate_creates_and_an_expired_one_lists() -> None:
    async def main() -> None:
        w = world(expectation_timeout_s=5.0)
        w.fake.put(LPPS, lpp("p", {"lc1": 1}, gpu="none"))
        async with w.running():
            await settle()
            w.fake.lose_events = {"pods"}  # the cache will never show what we create
            set_count(w, 1)
            w.populator.queue.add(LauncherKey("n1", "lc1"))
            await settle(0.1)
            assert len(w.names(node_name="n1")) == 1
            for _ in range(3):
                w.populator.queue.add(LauncherKey("n1", "lc1"))
                await settle(1)
            assert len(w.names(node_name="n1")) == 1, "pending: no second create"
            lists = [p for m, p in w.fake.requests if m == "GET" and p.endswith("/pods")]
            assert lists == []
            await settle(3)
            lists = [p for m, p in w.fake.requests if m == "GET" and p.endswith("/pods")]
            assert lists, "expired: the key LISTs its Pods"
            assert len(w.names(node_name="n1")) == 1

    run_virtual(main)


def test_delete_conflict_means_not_deleted_and_the_key_runs_again() -> None:
    async def main() -> None:
        w = world()
        set_count(w, 1)
        async with w.running():
            await settle()
            w.fake.fail("DELETE", "/pods/", 409)
            set_count(w, 0)
            await asyncio.sleep(0.01)
            assert not w.fake.failures, "the injected conflict was met"
            await settle(2)
            assert w.names() == []

    run_virtual(main)


def test_failed_create_is_measured_and_retried() -> None:
    async def main() -> None:
        w = World()
        w.fake.put("nodes", node("n1", gpu="yes"))
        w.fake.put(LCS, lc())
        set_count(w, 1)
        w.fake.fail("POST", "/pods", 500, "InternalError")
        async with w.running():
            await settle(2)
            assert len(w.names()) == 1

            def created(success: str) -> float | None:
                labels = {"exported_namespace": NS, "lcfg_name": "lc1", "success": success}
                return w.metrics.registry.get_sample_value(
                    "fma_launcher_create_seconds_count", labels
                )

            assert created("false") == 1 and created("true") == 1

    run_virtual(main)


def test_populator_makes_the_informers_it_was_not_given_and_checks_its_event_source() -> None:
    w = World()
    partial = {k: v for k, v in w.informers.items() if k != LPPS}
    populator = type(w.populator)(w.client, partial, w.settings, w.metrics)
    assert list(populator.own_informers) == [LPPS]
    assert populator.informers["pods"] is w.informers["pods"]
    assert populator.events.settings.component == "launcher-populator"
    wrong = EventRecorder(KubeEventSink(w.client), EventSettings(component="dual-pods-controller"))
    with pytest.raises(ValueError, match="launcher-populator"):
        type(w.populator)(w.client, w.informers, w.settings, w.metrics, wrong)


def test_a_launcher_pod_the_apiserver_rejects_is_reported_on_the_lc() -> None:
    async def main() -> None:
        w = World()
        w.fake.put("nodes", node("n1", gpu="yes"))
        w.fake.put(LCS, lc())
        async with w.running():
            await settle()
            w.fake.fail("POST", "/pods", 422, "Invalid")
            set_count(w, 1)
            await settle(0.1)
            assert w.status(LCS, "lc1")["errors"] == [
                "the apiserver rejects launcher Pods built from spec.podTemplate: injected 422"
            ]
            await settle(1)
            assert len(w.names()) == 1, "retried with backoff, and accepted this time"
            assert w.status(LCS, "lc1") == {"observedGeneration": 1}

    run_virtual(main)


def test_uncovered_launchers_holding_sleepers_stay_for_a_while() -> None:
    async def main() -> None:
        w = world(keep_sleepers_s=600.0)
        w.fake.put(LPPS, lpp("p", {"lc1": 3}, gpu="yes"))
        async with w.running():
            await settle()
            sleeper, _empty, unknown = w.launchers(node_name="n1")
            used = InstanceView(id="I1", phase="sleeping", last_used=w.wall() - 100)
            w.instances.by_uid[sleeper["metadata"]["uid"]] = (used,)
            w.instances.by_uid[unknown["metadata"]["uid"]] = None
            w.fake.remove(LPPS, "p", NS)
            await settle(1)
            names = {pod["metadata"]["name"] for pod in (sleeper, unknown)}
            assert set(w.names(node_name="n1")) == names
            assert w.names(node_name="n2") == [], "nothing to keep there"
            w.instances.by_uid[unknown["metadata"]["uid"]] = ()  # its stream listed: empty
            w.populator.launcher_changed(unknown["metadata"]["uid"])
            await settle(1)
            assert w.names(node_name="n1") == [sleeper["metadata"]["name"]]
            await settle(497)
            assert w.names(node_name="n1") == [sleeper["metadata"]["name"]]
            await settle(2)
            assert w.names(node_name="n1") == [], "deleted once its sleeper went unused 600 s"

    run_virtual(main)
