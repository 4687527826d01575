"""Stuck launchers (contracts §10, §2.7): label, `LauncherStuck` Event, metric, exact timing.

A launcher that is not scheduled within the scheduling threshold, or not Ready within the
starting threshold after it was scheduled, is labelled `launcher-stuck: "true"`, gets a Warning
Event and counts as `stuck_*`; it is neither replaced nor deleted. The populator comes back at
the moment a Pod would become stuck, without any event to wake it. Recovery removes the label.
"""

from __future__ import annotations

import pytest

from tests.unit.populator_support import (
    NS,
    STUCK,
    World,
    lc,
    lpp,
    make_ready,
    node,
    settle,
)
from tests.virtualtime import run_virtual


def world(**settings: float) -> World:
    w = World(auto_ready=False, **settings)
    w.fake.put("nodes", node("n1", gpu="yes"))
    w.fake.put("launcherconfigs", lc())
    w.fake.put("launcherpopulationpolicies", lpp("p", {"lc1": 1}, gpu="yes"))
    return w


def stuck_events(w: World) -> list[str]:
    return [e["message"] for e in w.fake.events if e["reason"] == "LauncherStuck"]


def test_unscheduled_launcher_becomes_stuck_at_its_threshold_and_recovers() -> None:
    async def main() -> None:
        w = world(stuck_scheduling_threshold_s=30.0)
        async with w.running():
            await settle()
            (name,) = w.names()
            assert w.count("lc1", "unbound") == 1
            await settle(25)
            assert STUCK not in w.fake.get("pods", name, NS)["metadata"].get("labels", {})
            await settle(10)
            pod = w.fake.get("pods", name, NS)
            assert pod["metadata"]["labels"][STUCK] == "true"
            assert stuck_events(w) == [
                "Launcher is stuck (stuck_scheduling); leaving it in place for investigation"
            ]
            assert w.fake.events[0]["source"] == {"component": "launcher-populator"}
            assert w.count("lc1", "stuck_scheduling") == 1
            assert w.count("lc1", "unbound") == 0
            assert w.names() == [name], "a stuck launcher is not replaced"
            w.fake.update("pods", name, lambda p: make_ready(p, w.wall()), NS)
            await settle()
            assert STUCK not in w.fake.get("pods", name, NS)["metadata"]["labels"]
            assert w.count("lc1", "unbound") == 1
            assert w.count("lc1", "stuck_scheduling") == 0
            assert len(stuck_events(w)) == 1

    run_virtual(main)


def test_the_stuck_moment_needs_no_event() -> None:
    """The pass that labels the Pod runs at creation + threshold (+ a small margin)."""

    async def main() -> None:
        w = world(stuck_scheduling_threshold_s=30.0)
        async with w.running():
            await settle(60)
            (name,) = w.names()
            times = {
                method: at
                for at, (method, path) in zip(w.fake.request_times, w.fake.requests, strict=True)
                if path.endswith(f"/pods/{name}") or (method == "POST" and path.endswith("/pods"))
            }
            created = float(int(times["POST"]))  # creationTimestamp has whole seconds
            assert times["PATCH"] - created == pytest.approx(30.05)

    run_virtual(main)


def test_scheduled_but_never_ready_launcher_is_stuck_starting() -> None:
    async def main() -> None:
        w = world(stuck_starting_threshold_s=60.0)
        async with w.running():
            await settle()
            (name,) = w.names()
            w.fake.update("pods", name, lambda p: make_ready(p, w.wall(), ready=False), NS)
            await settle(59)
            assert w.count("lc1", "unbound") == 1
            await settle(2)
            assert w.fake.get("pods", name, NS)["metadata"]["labels"][STUCK] == "true"
            assert w.count("lc1", "stuck_starting") == 1
            assert stuck_events(w) == [
                "Launcher is stuck (stuck_starting); leaving it in place for investigation"
            ]

    run_virtual(main)


def test_status_is_written_only_when_it_changes() -> None:
    async def main() -> None:
        w = world()
        async with w.running():
            await settle()

            def status_writes() -> int:
                return len(
                    [p for m, p in w.fake.requests if m == "PATCH" and p.endswith("/status")]
                )

            assert status_writes() == 2
            w.fake.update(
                "launcherconfigs",
                "lc1",
                lambda obj: obj["metadata"].setdefault("labels", {}).update(team="a"),
                NS,
            )
            await settle()
            assert status_writes() == 2, "same generation, same errors: no write"
            w.fake.put("launcherconfigs", lc(image="launcher:2"))
            await settle()
            assert status_writes() == 3
            assert w.status("launcherconfigs", "lc1") == {"observedGeneration": 2}

    run_virtual(main)


def test_an_invalid_selector_is_reported_on_the_lpp() -> None:
    async def main() -> None:
        w = world()
        bad = lpp("bad", {"lc1": 5})
        bad["spec"]["enhancedNodeSelector"]["labelSelector"] = {
            "matchExpressions": [{"key": "gpu", "operator": "Near"}]
        }
        w.fake.put("launcherpopulationpolicies", bad)
        async with w.running():
            await settle()
            errors = w.status("launcherpopulationpolicies", "bad")["errors"]
            assert errors == ["'Near' is not a valid label selector operator"]
            assert len(w.names()) == 1

    run_virtual(main)
