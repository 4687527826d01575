"""Launcher mode when things change or break: controller restart, ISC edit, a deleted launcher,
a killed instance, a cordoned node. Each test works on a node and with names of its own.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from localcluster.fma.manifests import requester_pod, requester_template
from tests.e2e import inspect as i

LC = "recovery-lc"


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    workdir = tmp_path_factory.mktemp("e2e-recovery")
    with fma_environment(cluster, workdir, nodes=5, gpus_per_node=2) as environment:
        environment.apply_launcher_config(LC, max_instances=2)
        environment.start_controller(*controller_args())
        yield environment


def start(env: FmaEnvironment, app: str, node: int, *, port: int = 8005) -> dict[str, Any]:
    """A Deployment of one requester for a model of its own on `node`; returns it when Ready."""
    env.apply_isc(app, lc=LC, port=port)
    env.create_deployment(app, requester_template(app, node=env.nodes[node], isc=app))
    return ready_requester(env, app)


def ready_requester(env: FmaEnvironment, app: str, *, not_uid: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = [
            p
            for p in i.requesters(env, app)
            if i.live(p) and i.ready(p) and i.meta(p)["uid"] != not_uid
        ]
        return found[0] if len(found) == 1 else None

    result: dict[str, Any] = env.wait(f"one Ready requester of {app}", check, timeout=40)
    return result


def provider(env: FmaEnvironment, requester: dict[str, Any]) -> dict[str, Any]:
    found = i.providers_of(env, requester)
    assert len(found) == 1, [i.meta(p)["name"] for p in found]
    return found[0]


def idle(metrics: str) -> bool:
    """Some work was done and nothing waits in the queue."""
    done = i.metric(metrics, "fma_dpc_innerqueue_work_duration_seconds_count")
    return done > 0 and i.metric(metrics, "fma_dpc_innerqueue_depth") == 0


def test_controller_restart_recovers_without_duplicates(env: FmaEnvironment) -> None:
    controller = env.controllers[0]
    env.apply_isc("restart", lc=LC, port=8005)
    env.create_deployment(
        "restart", requester_template("restart", node=env.nodes[0], isc="restart")
    )
    env.wait("a requester of restart", lambda: i.requesters(env, "restart"))
    assert controller.restart() == 0  # mid-way: the requester is starting, the launcher maybe too
    assert "released lease" in controller.log()
    requester = ready_requester(env, "restart")
    bound = provider(env, requester)
    assert len(i.launchers(env, env.nodes[0])) == 1
    controller.restart()  # with the pair bound and Ready: memory comes back from the API
    env.wait("the new controller's passes", lambda: idle(controller.metrics()))
    assert i.ready(i.pod(env, i.meta(requester)["name"]) or {})
    assert provider(env, requester)["metadata"]["uid"] == bound["metadata"]["uid"]
    assert i.metric(controller.metrics(), "fma_actuation_seconds_count") == 0
    env.scale("restart", 0)  # unbinding works from the recovered state
    env.wait("restart scaled down", lambda: not i.requesters(env, "restart"))
    assert i.binding(i.launchers(env, env.nodes[0])[0]) is None
    assert not i.violations(env)


def test_isc_change_deletes_the_obsolete_sleeper(env: FmaEnvironment) -> None:
    start(env, "edited", 1)
    env.scale("edited", 0)
    env.wait("edited scaled down", lambda: not i.requesters(env, "edited"))
    (launcher,) = i.launchers(env, env.nodes[1])
    assert len(i.instances(launcher)) == 1
    env.apply_isc("edited", lc=LC, port=8005, extra_options="--max-model-len 512")
    env.wait("the obsolete sleeper deleted", lambda: not i.instances(launcher))
    env.scale("edited", 1)
    requester = ready_requester(env, "edited")
    # The emptied launcher may be gone: with no LPP covering the node, the populator deletes
    # unbound launchers that hold no sleeper (contracts §10), so the new instance can be cold.
    (instance,) = i.instances(provider(env, requester))
    assert "--max-model-len 512" in instance["options"]


def test_deleted_launcher_replaces_the_requester(env: FmaEnvironment) -> None:
    requester = start(env, "orphan", 2)
    launcher = provider(env, requester)
    env.core.delete_namespaced_pod(i.meta(launcher)["name"], env.namespace)
    replacement = ready_requester(env, "orphan", not_uid=i.meta(requester)["uid"])
    assert provider(env, replacement)["metadata"]["uid"] != i.meta(launcher)["uid"]
    env.wait("the old launcher gone", lambda: i.pod(env, i.meta(launcher)["name"]) is None)
    assert not i.violations(env)


def test_killed_instance_replaces_the_requester(env: FmaEnvironment) -> None:
    requester = start(env, "crashy", 3)
    launcher = provider(env, requester)
    (instance,) = i.instances(launcher)
    os.kill(instance["pid"], signal.SIGKILL)
    replacement = ready_requester(env, "crashy", not_uid=i.meta(requester)["uid"])
    # Usually the same launcher gets a fresh instance; the emptied launcher may also have been
    # removed by the populator first (no LPP covers the node), and then a new one serves.
    live = [x for x in i.instances(provider(env, replacement)) if x["status"] == "running"]
    assert len(live) == 1 and live[0]["pid"] != instance["pid"]
    events = env.core.list_namespaced_event(
        env.namespace, field_selector=f"involvedObject.uid={i.meta(requester)['uid']}"
    )
    assert "ServerFailed" in {e.reason for e in events.items}


def test_cordon_deletes_only_requesters_without_provider(env: FmaEnvironment) -> None:
    node = env.nodes[4]
    requester = start(env, "cordoned", 4)
    env.cordon(node)
    try:
        stray = env.create_pod(requester_pod("stray", node=node, isc="cordoned", pin=True))
        env.wait("the stray requester deleted", lambda: i.pod(env, "stray") is None)
        assert i.ready(i.pod(env, i.meta(requester)["name"]) or {})  # the bound pair stays
        assert provider(env, requester)
        assert stray["metadata"]["uid"]
    finally:
        env.cordon(node, unschedulable=False)


def test_a_standby_replica_takes_over_when_the_leader_stops(env: FmaEnvironment) -> None:
    leader = env.controllers[0]
    standby = env.start_controller(*controller_args(), name="controller-1")  # ready: standby
    assert "standby" in standby.log() or "waiting for lease" in standby.log()
    assert i.metric(standby.metrics(), "leader_election_master_status") == 0
    assert leader.stop() == 0  # releases the Lease
    env.wait(
        "the standby leading",
        lambda: i.metric(standby.metrics(), "leader_election_master_status") == 1,
    )
    requester = start(env, "takeover", 0, port=8006)
    assert len(i.providers_of(env, requester)) == 1
    leader.start()  # back as the standby, for the teardown
