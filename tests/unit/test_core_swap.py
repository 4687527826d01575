"""Swap in the controller (issue 16): the ranking hot > swap > warm > cold, and the executor's
swap with its fall-back to warm inside the same action (pure core + mock transports).

`InstanceView.swap_key` is what the launcher's InstanceState says of a sleeper's options
(`contract.launcher.swap_key`); `_Keyed` adds it here so the ranking is pinned on its own.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, fields
from typing import Any

import httpx
import pytest

from contract.launcher import VllmConfig, swap_key
from controller.core import InstanceView, PodRef, ServerMemory
from controller.core._actions import SwapInstance
from controller.core._choose import Desired, rank, swap_plan, swap_source
from controller.core._routing import RoutingMetadata
from controller.reconciler import PassContext, ServerKey
from tests.unit.core_fixtures import GPUS, NOW, launcher_pod, lv
from tests.unit.reconciler_support import NOW as EXEC_NOW
from tests.unit.reconciler_support import FakeStreams, executor, pod, state
from tests.virtualtime import run_virtual

SERVED = "--served-model-name chat --max-model-len 512 --port 8005"
WANT_CONFIG = VllmConfig(options=f"--model /models/b {SERVED}", gpu_uuids=list(GPUS))
WANT = Desired("isc-b", "Inew", 8005, WANT_CONFIG, RoutingMetadata({}, {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Keyed(InstanceView):
    swap_key: str | None = None


def sleeper(iid: str, options: str = f"--model /models/a {SERVED}", **over: Any) -> InstanceView:
    """A sleeper as the launcher reports it: its env carries CUDA_VISIBLE_DEVICES."""
    gpus = over.pop("gpu_uuids", GPUS)
    stored = VllmConfig(
        options=options, gpu_uuids=list(gpus), env_vars={"CUDA_VISIBLE_DEVICES": "0"}
    )
    values: dict[str, Any] = {
        "id": iid,
        "phase": "sleeping",
        "isc_name": "isc-a",
        "port": 8005,
        "gpu_uuids": tuple(gpus),
        "created_at": NOW - 500,
        "last_used": NOW - 400,
        "swap_key": swap_key(stored),
    }
    values.update(over)
    return _Keyed(**values)


def test_swap_ranks_below_hot_and_above_warm() -> None:
    empty = lv(launcher_pod("l-empty"))
    swappable = lv(launcher_pod("l-swap"), sleeper("Iold"))
    hot = lv(launcher_pod("l-hot"), sleeper("Inew", options=WANT_CONFIG.options))
    plan = rank([empty, swappable], WANT, max_instances=2)
    assert plan is not None and plan.launcher.name == "l-swap" and plan.victims == ()
    plan = rank([empty, swappable, hot], WANT, max_instances=2)
    assert plan is not None and plan.launcher.name == "l-hot"


def test_a_full_launcher_with_a_swappable_sleeper_needs_no_victims() -> None:
    """The source holds the desired port and is replaced, so nothing else has to go."""
    full = lv(launcher_pod("l-full"), sleeper("Iold"), sleeper("Iother", port=8006))
    plan = rank([full], WANT, max_instances=2)
    assert plan is not None and plan.victims == ()


def test_what_is_not_swap_compatible_goes_warm() -> None:
    empty = lv(launcher_pod("l-empty"))
    cases = [
        sleeper("Iold", options=f"--model /models/a {SERVED.replace('chat', 'other')}"),
        sleeper("Iold", options=f"--model /models/a {SERVED} --enforce-eager"),
        sleeper("Iold", gpu_uuids=("GPU-1",)),
        sleeper("Iold", running=False),
        sleeper("Iold", swap_key=None),  # an older launcher: unknown
        InstanceView(id="Iold", phase="sleeping", port=8005, gpu_uuids=GPUS),
    ]
    for inst in cases:
        assert swap_source([inst], "Inew", WANT_CONFIG) is None, inst
        plan = rank([empty, lv(launcher_pod("l-a"), inst)], WANT, max_instances=2)
        assert plan is not None and plan.launcher.name == "l-empty", inst


def test_a_sleeper_whose_launcher_has_not_probed_its_sleep_yet_is_swapped() -> None:
    """The controller sleeps vLLM itself and the launcher's `phase` follows on its next probe;
    an unbound launcher holds only sleepers, so a `ready` one there is asleep (the launcher
    asks vLLM before it swaps). One starting or failed is not a source."""
    lagging = sleeper("Iold", phase="ready")
    assert swap_source([lagging], "Inew", WANT_CONFIG) is lagging
    for phase in ("starting", "failed"):
        assert swap_source([sleeper("Iold", phase=phase)], "Inew", WANT_CONFIG) is None


def test_a_hub_model_or_no_served_name_is_never_swapped() -> None:
    """Without `--served-model-name` vLLM serves the path as the name: paths differ, so do
    the keys."""
    bare = VllmConfig(options="--model /models/b --port 8005", gpu_uuids=list(GPUS))
    assert (
        swap_source([sleeper("Iold", options="--model /models/a --port 8005")], "I", bare) is None
    )
    assert swap_key(VllmConfig(options="--port 8005")) is None


def test_the_bound_path_finds_the_source_from_the_committed_config() -> None:
    launcher = lv(launcher_pod(), sleeper("Iold"), sleeper("Ix", port=8006))
    source = swap_plan(launcher, "Inew", WANT_CONFIG.to_json())
    assert source is not None and source.id == "Iold"
    assert swap_plan(launcher, "Inew", {"options": 3}) is None


# --- the executor ---------------------------------------------------------------------------

CTX = PassContext(item=ServerKey("req-uid", "req"), decided_at=EXEC_NOW - 1, isc_name="isc-b")
LAUNCHER = PodRef(name="l", uid="l-uid")
IP = "10.0.1.1"
SWAP = SwapInstance(
    launcher=LAUNCHER,
    ip=IP,
    instance_id="Inew",
    source_id="Iold",
    config=WANT_CONFIG.to_json(),
)


def _cluster() -> Any:
    streams = FakeStreams(
        {
            "l-uid": {
                "Iold": {
                    "instance_id": "Iold",
                    "status": "running",
                    "phase": "sleeping",
                    "revision": 3,
                    "annotations": {"isc-name": "isc-a", "inference-port": "8005"},
                }
            }
        }
    )
    return state(pods=[pod("req", uid="req-uid"), pod("l", uid="l-uid")], streams=streams)


def _run(answers: Any) -> tuple[Any, list[httpx.Request], list[tuple[str, str, str]]]:
    result: dict[str, Any] = {}

    async def main() -> None:
        ctx = PassContext(
            item=CTX.item, decided_at=CTX.decided_at, isc_name="isc-b", target=pod("req")
        )
        async with executor(_cluster(), peers=answers) as w:
            outcome = await w.executor.run([SWAP], ServerMemory(), ctx)
            task = asyncio.create_task(w.recorder.run())
            await w.recorder.flush()
            task.cancel()
            sink = w.recorder.sink
            events = sink.events  # type: ignore[attr-defined]
            result["out"] = (
                outcome,
                list(w.peers.requests),
                [(e["type"], e["reason"], e["message"]) for e in events],
            )
            result["held"] = w.book

    run_virtual(main)
    out: tuple[Any, list[httpx.Request], list[tuple[str, str, str]]] = result["out"]
    return out


def test_a_swap_is_one_signed_post_and_names_the_reused_instance() -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"instance_id": "Inew", "status": "running"})

    outcome, requests, events = _run(answers)
    assert outcome.failure is None and outcome.memory.instance_known
    assert [(r.method, r.url.path) for r in requests] == [("POST", "/v2/vllm/instances/Iold/swap")]
    body = json.loads(requests[0].content)
    assert body == {**WANT_CONFIG.to_json(), "new_instance_id": "Inew"}
    assert events == [
        (
            "Normal",
            "InstanceSwapped",
            'vLLM instance Inew reuses the engine of sleeping instance Iold in launcher Pod "l": '
            "new weights swapped in, no new process",
        )
    ]


def test_a_refused_swap_goes_warm_in_the_same_action() -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/swap"):
            detail = "Instance Iold is not swap-compatible with the request: weights differ"
            return httpx.Response(422, json={"detail": detail})
        if request.method == "DELETE":
            return httpx.Response(200, json={"instance_id": "Iold", "revision": 4})
        return httpx.Response(201, json={"instance_id": "Inew", "status": "running"})

    outcome, requests, events = _run(answers)
    assert outcome.failure is None and outcome.memory.path == "warm"
    assert [(r.method, r.url.path) for r in requests] == [
        ("POST", "/v2/vllm/instances/Iold/swap"),
        ("DELETE", "/v2/vllm/instances/Iold"),
        ("PUT", "/v2/vllm/instances/Inew"),
    ]
    assert json.loads(requests[2].content) == WANT_CONFIG.to_json()
    (kind, reason, message), *_ = events
    assert (kind, reason) == ("Warning", "SwapFailed")
    assert "weights differ" in message and message.endswith("starting it fresh (warm)")


def test_a_failed_swap_whose_sleeper_is_gone_creates_the_instance() -> None:
    """A 502: the launcher deleted the broken sleeper already; the DELETE's 404 counts as
    done. A reference launcher (no such path: 404) ends the same way."""
    for status in (502, 404):

        def answers(request: httpx.Request, status: int = status) -> httpx.Response:
            if request.url.path.endswith("/swap"):
                return httpx.Response(status, json={"detail": "reload_weights failed"})
            if request.method == "DELETE":
                return httpx.Response(404, json={"detail": "Instance Iold not found"})
            return httpx.Response(201, json={"instance_id": "Inew", "status": "running"})

        outcome, requests, _events = _run(answers)
        assert outcome.failure is None, status
        assert [r.method for r in requests] == ["POST", "DELETE", "PUT"]


def test_a_swap_is_slow() -> None:
    from controller.reconciler._executor import Executor

    assert Executor.slow([SWAP])


# --- the bound path (needs `InstanceView.swap_key`, filled from the launcher's state) --------

_WIRED = "swap_key" in {f.name for f in fields(InstanceView)}


@pytest.mark.skipif(not _WIRED, reason="InstanceView.swap_key is not wired yet (issue 16)")
def test_the_bound_path_swaps_instead_of_deleting_the_sleeper_on_its_port() -> None:
    from controller.core import decide_server, record_success
    from tests.unit.core_fixtures import (
        CONFIG_HASH,
        bound_launcher_pod,
        requester,
        with_launchers,
    )

    want = Desired("isc1", "Inew", 8005, WANT_CONFIG, RoutingMetadata({}, {}))
    annotations = {
        "dual-pods.llm-d.ai/launcher-config-hash": CONFIG_HASH,
        "dual-pods.llm-d.ai/requester": "req-uid req",
        **want.bind_annotations(),
    }
    provider = bound_launcher_pod(annotations=annotations)
    memory = ServerMemory(gpu_uuids=GPUS)
    snap = with_launchers(
        lv(provider, InstanceView(**{**_plain(sleeper("Iold"))})),
        providers=(provider,),
        requester=requester(
            finalizers=("dual-pods.llm-d.ai/requester",),
            labels={"dual-pods.llm-d.ai/dual": "launcher-a"},
        ),
        memory=memory,
    )
    actions = decide_server(snap)
    swaps = [x for x in actions if isinstance(x, SwapInstance)]
    assert [(s.source_id, s.instance_id) for s in swaps] == [("Iold", "Inew")], actions
    assert not [x for x in actions if type(x).__name__ == "DeleteInstance"]
    after = record_success(memory, swaps[0], now=NOW, result="swap")
    assert (after.path, after.instance_known, after.sleeping) == ("swap", True, False)
    assert record_success(memory, swaps[0], now=NOW, result="warm").path == "warm"


def _plain(inst: InstanceView) -> dict[str, Any]:
    return {f.name: getattr(inst, f.name) for f in fields(inst)}
