"""Requester templates and the objects they name, for the dual-pods benchmarks.

Built on the end-to-end tests' manifests (`localcluster/fma/manifests.py`): the same requester
container (readinessProbe `GET /ready` on 8080, periodSeconds 1, failureThreshold 1), launcher
config and ISC. Requesters are not pinned to nodes: the scheduler spreads them by free GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from contract import keys
from localcluster.fma import manifests
from localcluster.kubelet.podspec import PROBE_PERIOD_SCALE

APP: Final = "bench"
LC: Final = "bench-lc"
VLLM_IMAGE: Final = manifests.VLLM_IMAGE


def requester_template(
    *, isc: str | None = None, server_patch: str | None = None, probe_period_scale: float = 1.0
) -> dict[str, Any]:
    """Launcher mode with `isc`, direct mode with `server_patch`. A `probe_period_scale` below
    1 makes the hollow kubelet probe the requester's readiness that much more often."""
    if isc is not None:
        annotations = {keys.ISC_ANNOTATION: isc}
    else:
        annotations = {keys.SERVER_PATCH: server_patch or ""}
    if probe_period_scale != 1.0:
        annotations[PROBE_PERIOD_SCALE] = str(probe_period_scale)
    return {
        "metadata": {"labels": {"app": APP}, "annotations": annotations},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [manifests.requester_container()],
        },
    }


def launcher_config(kubeconfig: Path, *, max_instances: int = 2) -> dict[str, Any]:
    """Launchers that fork the stand-in; `kubeconfig` lets them read `gpu-map`. They probe
    their instances' sleep state at the launcher's default period (1 s), not the end-to-end
    tests' 0.1 s: twenty launchers polling ten times a second load a 2-core machine."""
    return manifests.launcher_config(
        LC, max_instances=max_instances, kubeconfig=kubeconfig, extra_args=["--probe-interval", "1"]
    )


def isc(name: str, *, port: int, wake_delay: float) -> dict[str, Any]:
    """A stand-in model whose wake-up takes `wake_delay` seconds."""
    return manifests.inference_server_config(
        name, lc=LC, port=port, model=name, extra_options=f"--wake-delay {wake_delay}"
    )


def direct_server_patch(*, wake_delay: float, port: int = 8000) -> str:
    """Direct mode: the provider is a stand-in Pod (`vllm/vllm-openai`, see the image map)."""
    return f"""\
metadata:
  labels:
    app: null
spec:
  containers:
  - name: inference-server
    image: {VLLM_IMAGE}
    command: null
    args: ["--model", "bench", "--port", "{port}", "--enable-sleep-mode",
           "--startup-delay", "0.2", "--wake-delay", "{wake_delay}",
           "--disable-uvicorn-access-log"]
    env:
    - name: VLLM_SERVER_DEV_MODE
      value: "1"
    readinessProbe:
      httpGet: {{path: /health, port: {port}}}
      periodSeconds: 1
"""
