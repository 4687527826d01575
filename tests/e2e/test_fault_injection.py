"""Fault injection: SIGKILL the controller at random points of bind/unbind cycles.

Each cycle picks new replica counts for two Deployments of requesters (one per two-GPU node),
waits a random moment so that the controller is in the middle of binding, waking, creating,
sleeping or unbinding, SIGKILLs it (no lease release, no clean-up, HTTP calls and writes cut
anywhere) and starts it again. After each recovery it checks that:

- every requester eventually becomes Ready, with exactly the wanted number per Deployment;
- each requester has exactly one provider (never two);
- no instance is awake in an unbound launcher (vLLM awake ⇒ bound);
- no finalizer is left on a Pod whose partner is gone.

`FMA_FAULT_KILLS` sets the number of kills (default 50, about 3 minutes; raise it for a longer
benchmark run), `FMA_FAULT_SEED` the random seed (default: random, printed on failure).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import httpx
import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import (
    ControllerProcess,
    FmaEnvironment,
    controller_args,
    fma_environment,
)
from localcluster.fma.manifests import requester_template
from tests.e2e import inspect as i

KILLS = int(os.environ.get("FMA_FAULT_KILLS", "50"))
SEED = int(os.environ.get("FMA_FAULT_SEED", str(random.randrange(1 << 30))))
LC = "fault-lc"
APPS = ("fault-a", "fault-b")
MAX_DELAY_S = 1.2
CONVERGE_S = 60.0


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    workdir = tmp_path_factory.mktemp("e2e-fault")
    with fma_environment(cluster, workdir, nodes=2, gpus_per_node=2) as environment:
        environment.apply_launcher_config(LC, max_instances=2)
        for index, app in enumerate(APPS):
            environment.apply_isc(app, lc=LC, port=8005 + index)
            template = requester_template(app, node=environment.nodes[index], isc=app)
            environment.create_deployment(app, template, replicas=0)
        environment.start_controller(*controller_args())
        yield environment


def converged(env: FmaEnvironment, wanted: dict[str, int]) -> bool:
    """Exactly the wanted requesters, all Ready and none terminating, each with one provider."""
    everything = i.pods(env)
    bound: dict[str, int] = {}
    for pod in everything:
        pair = i.binding(pod)
        if pair is not None:
            bound[pair[0]] = bound.get(pair[0], 0) + 1
    for app, count in wanted.items():
        mine = [p for p in everything if (i.meta(p).get("labels") or {}).get("app") == app]
        if len(mine) != count:
            return False
        if not all(i.live(p) and i.ready(p) and bound.get(i.meta(p)["uid"]) == 1 for p in mine):
            return False
    return True


def recover(env: FmaEnvironment, wanted: dict[str, int], cycle: int) -> None:
    where = f"cycle {cycle} (seed {SEED}, wanted {wanted})"
    env.wait(f"convergence after {where}", lambda: converged(env, wanted), timeout=CONVERGE_S)
    try:
        env.wait(f"no invariant broken after {where}", lambda: not i.violations(env), timeout=5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nviolations: {i.violations(env)}") from None


@pytest.mark.timeout(120 + 6 * KILLS)
def test_controller_killed_at_random_points_recovers(env: FmaEnvironment) -> None:
    rng = random.Random(SEED)
    controller = env.controllers[0]
    wanted = dict.fromkeys(APPS, 0)
    started = time.monotonic()
    paths: dict[str, float] = {}
    for cycle in range(KILLS):
        wanted = _next_counts(rng, wanted)
        for app, count in wanted.items():
            env.scale(app, count)
        time.sleep(rng.uniform(0.0, MAX_DELAY_S))
        _tally(paths, controller)
        controller.kill()
        controller.start(wait=False)
        recover(env, wanted, cycle)
    _tally(paths, controller)
    elapsed = time.monotonic() - started
    print(f"{KILLS} kills in {elapsed:.0f}s (seed {SEED}); actuations by path: {paths}")
    assert controller.starts == KILLS + 1


def _next_counts(rng: random.Random, current: dict[str, int]) -> dict[str, int]:
    """New replica counts (0-2 per Deployment), at least one of them different."""
    while True:
        counts = {app: rng.randint(0, 2) for app in current}
        if counts != current:
            return counts


def _tally(paths: dict[str, float], controller: ControllerProcess) -> None:
    """Adds the actuations the controller process observed (each process is tallied once)."""
    try:
        text = controller.metrics()
    except httpx.HTTPError:
        return
    for path in ("hot", "warm", "cold"):
        seen = i.metric(text, "fma_actuation_seconds_count", {"path": path})
        paths[path] = paths.get(path, 0.0) + seen
