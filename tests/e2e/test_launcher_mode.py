"""Launcher mode end to end: cold, sleep, hot, warm and reclaim on one node, in that order.

The tests of this module are the steps of one story on node 0 and run in file order: each
starts from the state the previous one left (a Deployment `chat`, its launcher, sleeping
instances). The real apiserver, scheduler and controller-manager run the Deployments, the
hollow kubelet runs the requester stubs and launchers as processes, launchers fork the vLLM
stand-in, and `fma-controller` runs as a process with its own identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import (
    ControllerProcess,
    FmaEnvironment,
    controller_args,
    fma_environment,
)
from localcluster.fma.manifests import requester_template
from localcluster.kubelet import gpu_uuid
from tests.e2e import inspect as i

LC = "story-lc"
INSTANCE_ID = "dual-pods.llm-d.ai/instance-id"


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    with fma_environment(cluster, tmp_path_factory.mktemp("e2e-launcher"), nodes=1) as environment:
        environment.apply_launcher_config(LC, max_instances=2)
        for name, port in (("model-a", 8005), ("model-b", 8006), ("model-c", 8007)):
            environment.apply_isc(name, lc=LC, port=port, labels={"llm-d.ai/model": name})
        environment.start_controller(*controller_args())
        yield environment


@pytest.fixture(scope="module")
def controller(env: FmaEnvironment) -> ControllerProcess:
    return env.controllers[0]


def gone(env: FmaEnvironment, app: str) -> bool:
    return not i.requesters(env, app)


def only_launcher(env: FmaEnvironment) -> dict[str, Any]:
    launchers = [p for p in i.launchers(env, env.nodes[0]) if i.live(p)]
    assert len(launchers) == 1, [i.meta(p)["name"] for p in launchers]
    return launchers[0]


def instance_phases(launcher: dict[str, Any]) -> dict[str, str]:
    return {inst["instance_id"]: inst.get("phase", "") for inst in i.instances(launcher)}


def test_cold_start_creates_a_bound_launcher(
    env: FmaEnvironment, controller: ControllerProcess
) -> None:
    env.create_deployment("chat", requester_template("chat", node=env.nodes[0], isc="model-a"))
    requester = i.ready_requester(env, "chat", timeout=40)
    launcher = only_launcher(env)
    assert i.binding(launcher) == (i.meta(requester)["uid"], i.meta(requester)["name"])
    labels = i.meta(launcher)["labels"]
    assert labels["dual-pods.llm-d.ai/sleeping"] == "false"
    assert labels["llm-d.ai/model"] == "model-a"  # routing labels once serving
    assert i.metric(controller.metrics(), "fma_actuation_seconds_count", {"path": "cold"}) == 1


def test_scale_to_zero_sleeps_the_instance_and_keeps_the_launcher(env: FmaEnvironment) -> None:
    launcher = only_launcher(env)
    env.scale("chat", 0)
    env.wait("requester of chat gone", lambda: gone(env, "chat"))
    launcher = only_launcher(env)
    assert i.binding(launcher) is None
    assert "llm-d.ai/model" not in i.meta(launcher)["labels"]
    assert not i.meta(launcher).get("finalizers")
    env.wait(
        "the instance asleep",
        lambda: list(instance_phases(only_launcher(env)).values()) == ["sleeping"],
    )
    assert not i.violations(env)


def test_scale_to_one_reuses_launcher_and_gpu_hot(
    env: FmaEnvironment, controller: ControllerProcess
) -> None:
    launcher = only_launcher(env)
    (sleeper,) = instance_phases(launcher)
    env.scale("chat", 1)
    requester = i.ready_requester(env, "chat")
    again = only_launcher(env)
    assert i.meta(again)["uid"] == i.meta(launcher)["uid"]
    assert i.meta(again)["annotations"][INSTANCE_ID] == sleeper
    gpu = gpu_uuid(env.nodes[0], 0)
    assert i.meta(requester)["annotations"]["dual-pods.llm-d.ai/accelerators"] == gpu
    assert i.metric(controller.metrics(), "fma_actuation_seconds_count", {"path": "hot"}) == 1


def test_second_model_shares_the_launcher_warm(
    env: FmaEnvironment, controller: ControllerProcess
) -> None:
    env.scale("chat", 0)
    env.wait("requester of chat gone", lambda: gone(env, "chat"))
    launcher = only_launcher(env)
    env.create_deployment("code", requester_template("code", node=env.nodes[0], isc="model-b"))
    i.ready_requester(env, "code")
    again = only_launcher(env)
    assert i.meta(again)["uid"] == i.meta(launcher)["uid"]
    assert len(instance_phases(again)) == 2
    assert i.metric(controller.metrics(), "fma_actuation_seconds_count", {"path": "warm"}) == 1


def test_max_instances_reclaims_the_least_recently_used_sleeper(
    env: FmaEnvironment, controller: ControllerProcess
) -> None:
    env.scale("code", 0)
    env.wait("requester of code gone", lambda: gone(env, "code"))
    # The launcher learns the sleep from its next probe of the instance (a moment after the
    # controller's sleep call returned and the requester went), so wait for both phases.
    before = env.wait(
        "two sleepers reported by the launcher",
        lambda: (p if len(p := instance_phases(only_launcher(env))) == 2
                 and set(p.values()) == {"sleeping"} else None),
    )  # fmt: skip
    env.create_deployment("docs", requester_template("docs", node=env.nodes[0], isc="model-c"))
    i.ready_requester(env, "docs")
    after = instance_phases(only_launcher(env))
    assert len(after) == 2, after
    kept = set(before) & set(after)
    assert len(kept) == 1  # the least recently used sleeper (model-a's) was deleted
    text = controller.metrics()
    assert i.metric(text, "fma_actuation_seconds_count", {"instancesDeleted": "1"}) == 1


def test_no_invariant_is_broken(env: FmaEnvironment, tmp_path: Path) -> None:
    assert not i.violations(env)
