"""Direct mode end to end (contracts §1.4, §8.4): a server patch makes the requester's provider a
plain vLLM Pod (here the stand-in image); it sleeps when the requester goes, is reused hot, and
the per-GPU sleeper limit (`--sleeper-limit 1`) evicts the oldest sleeper before a new provider
is created. The tests are the steps of one story on one single-GPU node, in file order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from localcluster.fma.manifests import direct_server_patch, requester_template
from tests.e2e import inspect as i

NOMINAL = "dual-pods.llm-d.ai/nominal"
SLEEPING = "dual-pods.llm-d.ai/sleeping"


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    workdir = tmp_path_factory.mktemp("e2e-direct")
    with fma_environment(cluster, workdir, nodes=1) as environment:
        environment.start_controller(*controller_args("--sleeper-limit", "1"))
        yield environment


def deploy(env: FmaEnvironment, app: str, model: str) -> None:
    patch = direct_server_patch(model=model)
    env.create_deployment(app, requester_template(app, node=env.nodes[0], server_patch=patch))


def providers(env: FmaEnvironment) -> dict[str, dict[str, Any]]:
    """Direct providers by nominal hash."""
    return {
        i.meta(p)["annotations"][NOMINAL]: p
        for p in i.pods(env)
        if NOMINAL in (i.meta(p).get("annotations") or {}) and i.live(p)
    }


def scale_down(env: FmaEnvironment, app: str) -> None:
    env.scale(app, 0)
    env.wait(f"{app} scaled down", lambda: not i.requesters(env, app))


def test_cold_start_creates_a_bound_provider(env: FmaEnvironment) -> None:
    deploy(env, "alpha", "model-alpha")
    requester = i.ready_requester(env, "alpha", 40)
    (provider,) = providers(env).values()
    assert i.binding(provider) == (i.meta(requester)["uid"], i.meta(requester)["name"])
    env_vars = {e["name"]: e.get("value") for e in provider["spec"]["containers"][0]["env"]}
    assert env_vars["CUDA_VISIBLE_DEVICES"] == "0"
    text = env.controllers[0].metrics()
    assert i.metric(text, "fma_actuation_seconds_count", {"path": "cold"}) == 1


def test_scale_down_leaves_a_sleeping_provider(env: FmaEnvironment) -> None:
    scale_down(env, "alpha")
    (provider,) = providers(env).values()
    assert i.binding(provider) is None
    assert i.meta(provider)["labels"][SLEEPING] == "true"
    assert not i.violations(env)


def test_scale_up_reuses_the_sleeper_hot(env: FmaEnvironment) -> None:
    (before,) = providers(env).values()
    env.scale("alpha", 1)
    requester = i.ready_requester(env, "alpha", 40)
    (after,) = providers(env).values()
    assert i.meta(after)["uid"] == i.meta(before)["uid"]
    assert i.binding(after) == (i.meta(requester)["uid"], i.meta(requester)["name"])
    text = env.controllers[0].metrics()
    assert i.metric(text, "fma_actuation_seconds_count", {"path": "hot"}) == 1


def test_sleeper_limit_evicts_the_oldest_sleeper(env: FmaEnvironment) -> None:
    scale_down(env, "alpha")
    alpha = set(providers(env))
    deploy(env, "beta", "model-beta")
    i.ready_requester(env, "beta", 40)
    scale_down(env, "beta")
    beta = set(providers(env)) - alpha
    assert len(providers(env)) == 2  # one sleeper per model; the limit applies on creation
    deploy(env, "gamma", "model-gamma")
    i.ready_requester(env, "gamma", 40)
    env.wait("alpha's sleeper evicted", lambda: not alpha & set(providers(env)))
    left = set(providers(env))
    assert beta <= left and len(left) == 2
