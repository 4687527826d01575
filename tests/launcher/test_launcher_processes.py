"""The launcher over real HTTP with real forked children running a cheap fake entry.

What is checked here does not depend on vLLM: ids and status codes, the child's environment and
log, phases and their events, failures with exit codes and reasons, the start timeout, stopping
without orphans (each launcher here is stopped with SIGTERM and its process tree checked; one is
SIGKILLed), control authentication, and watch resumption with 410.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from controlauth import ControlToken
from localcluster.processes import free_port, wait_until
from tests.controlkit import control_kit
from tests.launcher.support import Launcher, process_tree_gone, running_launcher


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    with running_launcher(tmp_path_factory.mktemp("launcher"), "--start-timeout", "20") as it:
        yield it


def test_post_picks_a_uuid4_and_the_child_gets_env_and_gpus(launcher: Launcher) -> None:
    port = free_port()
    body = {
        "options": f"--port {port}",
        "gpu_uuids": ["GPU-5", "GPU-2"],
        "env_vars": {"FMA_TEST_VALUE": "a b"},
        "annotations": {"isc-name": "x"},
    }
    response = launcher.http.post("/v2/vllm/instances", json=body)
    assert response.status_code == 201
    state = response.json()
    assert uuid.UUID(state["instance_id"]).version == 4
    assert list(state)[:7] == [
        "status",
        "instance_id",
        "revision",
        "options",
        "gpu_uuids",
        "env_vars",
        "annotations",
    ]
    assert state["env_vars"] == {"FMA_TEST_VALUE": "a b", "CUDA_VISIBLE_DEVICES": "5,2"}
    assert (state["status"], state["phase"]) == ("running", "starting")
    launcher.wait_phase(state["instance_id"], "ready", timeout=20)
    log = launcher.http.get(f"/v2/vllm/instances/{state['instance_id']}/log").text
    assert "fake-instance env CUDA_VISIBLE_DEVICES=5,2" in log
    assert "fake-instance env VLLM_SERVER_DEV_MODE=1" in log
    assert "fake-instance env FMA_TEST_VALUE=a b" in log
    assert launcher.http.delete(f"/v2/vllm/instances/{state['instance_id']}").status_code == 200


def test_put_duplicate_is_409_and_delete_leaves_nothing(launcher: Launcher) -> None:
    port = free_port()
    created = launcher.put("dup", f"--port {port} --startup-delay 0.5")
    assert created.status_code == 201
    assert launcher.put("dup", f"--port {port}").status_code == 409
    ready = launcher.wait_phase("dup", "ready", timeout=20)
    pid = ready["pid"]
    log_file = next(launcher.log_dir.glob("launcher-*-vllm-dup.log"))
    deleted = launcher.http.delete("/v2/vllm/instances/dup")
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["status"] == "stopped"
    assert body["revision"] > ready["revision"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not log_file.exists()
    assert launcher.http.get("/v2/vllm/instances/dup").status_code == 404


def test_sleep_and_wake_show_as_phases_and_updated_events(launcher: Launcher) -> None:
    port = free_port()
    start = launcher.http.get("/v2/vllm/instances").json()["revision"]
    assert launcher.put("sleepy", f"--port {port}").status_code == 201
    launcher.wait_phase("sleepy", "ready", timeout=20)
    httpx.post(f"http://127.0.0.1:{port}/sleep?level=1").raise_for_status()
    launcher.wait_phase("sleepy", "sleeping", timeout=10)
    httpx.post(f"http://127.0.0.1:{port}/wake_up").raise_for_status()
    launcher.wait_phase("sleepy", "ready", timeout=10)
    launcher.http.delete("/v2/vllm/instances/sleepy").raise_for_status()
    full = launcher.watch_lines({"since": start, "updates": "true"}, until="DELETED")
    phases = [e["object"]["phase"] for e in full]
    transitions = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert transitions == ["starting", "ready", "sleeping", "ready"], phases
    assert full[0]["type"] == "CREATED" and full[-1]["type"] == "DELETED"
    assert {e["type"] for e in full[1:-1]} == {"UPDATED"}
    revisions = [e["object"]["revision"] for e in full]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    plain = launcher.watch_lines({"since": start}, count=2)
    assert [e["type"] for e in plain] == ["CREATED", "DELETED"]  # no UPDATED without opt-in


def test_log_growth_is_announced_with_its_size(launcher: Launcher) -> None:
    """What lets the controller relay the log without polling it (`log_size` on UPDATED)."""
    port = free_port()
    start = launcher.http.get("/v2/vllm/instances").json()["revision"]
    assert launcher.put("chatty", f"--port {port} --log-lines 50").status_code == 201
    launcher.wait_phase("chatty", "ready", timeout=20)
    launcher.http.delete("/v2/vllm/instances/chatty").raise_for_status()
    events = launcher.watch_lines({"since": start, "updates": "true"}, until="DELETED")
    sizes = [e["object"]["log_size"] for e in events if e["type"] == "UPDATED"]
    assert sizes and sizes == sorted(sizes) and sizes[-1] > 0
    grew = [e for e in events if e["type"] == "UPDATED" and e["object"]["phase"] == "starting"]
    assert grew, "growth is announced before the phase changes, too"


def test_an_instance_that_exits_at_once_is_failed_with_code_and_reason(launcher: Launcher) -> None:
    started = time.monotonic()
    assert launcher.put("crash", "--exit-code 3 --log-lines 2").status_code == 201
    state = launcher.wait_phase("crash", "failed", timeout=10)
    assert time.monotonic() - started < 10
    assert (state["status"], state["exit_code"]) == ("stopped", 3)
    assert state["reason"].startswith("vLLM exited with code 3; last log lines:")
    assert "exiting with code 3 as asked" in state["reason"]
    listed = launcher.http.get("/v2/vllm/instances").json()
    assert any(i["instance_id"] == "crash" for i in listed["instances"])  # stays until DELETE
    stopped = launcher.watch_lines({"since": state["revision"] - 1}, count=1)
    assert stopped[0]["type"] == "STOPPED"
    assert stopped[0]["object"]["exit_code"] == 3
    launcher.http.delete("/v2/vllm/instances/crash").raise_for_status()


def test_an_instance_that_never_gets_healthy_fails_after_the_start_timeout(tmp_path: Path) -> None:
    with running_launcher(tmp_path, "--start-timeout", "1.5", "--stop-grace", "2") as short:
        port = free_port()
        started = time.monotonic()
        assert short.put("stuck", f"--port {port} --never-healthy").status_code == 201
        state = short.wait_phase("stuck", "failed", timeout=10)
        assert 1.5 <= time.monotonic() - started < 10
        assert "did not answer /health within the start timeout of 1.5s" in state["reason"]

        def stopped() -> bool:
            return bool(short.get("stuck")["status"] == "stopped")

        wait_until("the timed-out instance to be stopped", stopped, timeout=10)
        assert short.get("stuck")["exit_code"] == -signal.SIGTERM
        metrics = short.http.get("/metrics").text
        assert 'fma_launcher_instance_failures_total{cause="start_timeout"} 1.0' in metrics
        assert 'fma_launcher_instances{phase="failed"} 1.0' in metrics


def test_delete_all_and_watch_410(tmp_path: Path) -> None:
    with running_launcher(tmp_path, "--watch-buffer", "3") as small:
        for name in ("a", "b"):
            assert small.put(name, f"--port {free_port()}").status_code == 201
        everything = small.http.delete("/v2/vllm/instances").json()
        assert everything["status"] == "all_stopped"
        stopped = sorted(everything["stopped_instances"], key=lambda state: state["instance_id"])
        assert [(s["instance_id"], s["status"]) for s in stopped] == [
            ("a", "stopped"),
            ("b", "stopped"),
        ]
        assert everything["total_stopped"] == 2
        # Revisions 1..4 happened (plus UPDATED ones if the children got ready); 3 are kept.
        current = small.http.get("/v2/vllm/instances").json()["revision"]
        gone = small.http.get("/v2/vllm/instances/watch", params={"since": 0})
        assert gone.status_code == 410
        assert gone.json()["detail"] == (
            f"Requested revision 0 is no longer available. Oldest available: {current - 3}."
        )
        kept = small.watch_lines({"since": current - 3, "updates": "true"}, count=3)
        assert [e["object"]["revision"] for e in kept] == [current - 2, current - 1, current]
        assert kept[-1]["type"] == "DELETED"


def test_only_the_controller_creates_and_deletes_instances(tmp_path: Path) -> None:
    """A caller without the controller's token (a tenant's Pod) is refused and changes nothing;
    the controller's signed calls work; a token for another launcher is refused."""
    kit = control_kit(tmp_path / "control")
    with running_launcher(tmp_path, control=kit) as guarded:
        instances = guarded.url + "/v2/vllm/instances"
        body = {"options": f"--port {free_port()}"}
        assert httpx.put(instances + "/x", json=body).status_code == 401
        other = ControlToken(kit.auth.signer, "another-launcher")
        assert httpx.put(instances + "/x", json=body, auth=other).status_code == 401
        assert httpx.get(instances).json()["total_instances"] == 0  # reads open, nothing made
        assert guarded.put("x", body["options"]).status_code == 201
        for method in ("DELETE", "POST"):
            refused = httpx.request(method, instances, json=body if method == "POST" else None)
            assert refused.status_code == 401, method
        assert guarded.get("x")["phase"] in ("starting", "ready")  # still there
        assert guarded.http.delete(instances + "/x").status_code == 200


def test_instances_die_with_a_killed_launcher(tmp_path: Path) -> None:
    with running_launcher(tmp_path) as doomed:
        pids = []
        for name in ("one", "two"):
            assert doomed.put(name, f"--port {free_port()}").status_code == 201
            pids.append(doomed.get(name)["pid"])
        forkserver = [p.pid for p in doomed.descendants() if p.pid not in pids]
        os.kill(doomed.pid, signal.SIGKILL)  # no cleanup at all: the kernel must do it
        wait_until(
            "instances to die with their launcher", process_tree_gone(pids + forkserver), timeout=15
        )
