"""Recency survives a controller restart (reference-differences B2), end to end.

The controller used to keep launcher instances' last-use times only in memory, so after a
restart every sleeper looked equally fresh and the reclaim's victim depended on the run. Now
each unbind records the time on the launcher Pod (`fma.llm-d.ai/instances-last-used`), and the
reclaim reads it: fill a launcher to `maxInstances` with sleepers used in a known order, restart
the controller, ask for a new model, and the least recently used one as recorded before the
restart is the one that goes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from localcluster.fma.manifests import requester_template
from tests.e2e import inspect as i

LC = "recency-lc"
LAST_USED = "fma.llm-d.ai/instances-last-used"
MODELS = {"m1": 8005, "m2": 8006, "m3": 8007, "m4": 8008}


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    with fma_environment(cluster, tmp_path_factory.mktemp("e2e-recency"), nodes=1) as environment:
        environment.apply_launcher_config(LC, max_instances=3)
        for name, port in MODELS.items():
            environment.apply_isc(name, lc=LC, port=port)
        environment.start_controller(*controller_args())
        yield environment


def the_launcher(env: FmaEnvironment) -> dict[str, Any]:
    launchers = [p for p in i.launchers(env, env.nodes[0]) if i.live(p)]
    assert len(launchers) == 1, [i.meta(p)["name"] for p in launchers]
    return launchers[0]


def by_model(launcher: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """ISC name → (instance ID, phase) of the launcher's instances."""
    return {
        (inst.get("annotations") or {}).get("isc-name", ""): (
            inst["instance_id"],
            inst.get("phase", ""),
        )
        for inst in i.instances(launcher)
    }


def use_then_sleep(env: FmaEnvironment, model: str) -> None:
    """Serve `model` once (a Deployment of one requester), then scale it to 0 and wait until
    its instance sleeps and the launcher is unbound."""
    if model in _deployments(env):
        env.scale(model, 1)
    else:
        env.create_deployment(model, requester_template(model, node=env.nodes[0], isc=model))
    i.ready_requester(env, model, timeout=60)
    env.scale(model, 0)
    env.wait(f"requester of {model} gone", lambda: not i.requesters(env, model), timeout=60)
    env.wait(
        f"{model} asleep in an unbound launcher",
        lambda: (
            i.binding(launcher := the_launcher(env)) is None
            and by_model(launcher).get(model, ("", ""))[1] == "sleeping"
        ),
        timeout=60,
    )


def _deployments(env: FmaEnvironment) -> set[str]:
    found = env.apps.list_namespaced_deployment(env.namespace).items
    return {d.metadata.name for d in found}


def test_the_reclaim_after_a_restart_evicts_the_least_recently_used_as_recorded(
    env: FmaEnvironment,
) -> None:
    # m1, m2, m3 fill the launcher (maxInstances 3); m1 is used again, so m2 is the least
    # recently used, and neither the oldest instance nor the first seen.
    for model in ("m1", "m2", "m3", "m1"):
        use_then_sleep(env, model)
    launcher = the_launcher(env)
    ids = {model: iid for model, (iid, _) in by_model(launcher).items()}
    assert set(ids) == {"m1", "m2", "m3"}
    recorded = json.loads(i.meta(launcher)["annotations"][LAST_USED])
    assert set(recorded) == set(ids.values())
    assert min(recorded, key=lambda iid: (recorded[iid], iid)) == ids["m2"]

    env.controllers[0].restart()
    env.create_deployment("m4", requester_template("m4", node=env.nodes[0], isc="m4"))
    i.ready_requester(env, "m4", timeout=60)
    after = by_model(the_launcher(env))
    assert set(after) == {"m1", "m3", "m4"}, after
    assert after["m1"][0] == ids["m1"] and after["m3"][0] == ids["m3"]
    assert not i.violations(env)
