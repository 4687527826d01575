"""docs/e2e-kind.sh stays runnable although kind cannot run here (no Docker daemon).

- the script is valid bash and passes shellcheck;
- it applies only the manifests of docs/e2e-kind/, and all of them;
- its `helm` command renders charts/fma (values schema and templates) for a current Kubernetes;
- the webhook's pure logic does to the manifests what the script checks on kind: the ordinary
  vLLM Deployment becomes a launcher-mode requester for the ISC `tiny`, the hand-written
  requester is left alone, and the custom resources pass validation;
- the manifests run the script's scenario on the local cluster with `fma-controller`: cold start,
  scale to 0 (the instance sleeps, the launcher stays), scale to 1 (hot wake: bound to the same
  launcher Pod, no second `InstanceCreated` Event).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import kubernetes.client
import pytest
import yaml

from crds.models import InferenceServerConfig
from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from tests.chart import support
from tests.docs import helm_shim
from tests.docs.markdown import DOCS, REPO
from tests.e2e import inspect as i
from tests.unit.validation_support import CONTEXT, request
from webhook.mutation import MutationContext, MutationSettings, mutate_pod
from webhook.validation import validate_custom_resource

SCRIPT: Final = DOCS / "e2e-kind.sh"
MANIFESTS: Final = DOCS / "e2e-kind"
SLEEPING: Final = "dual-pods.llm-d.ai/sleeping"


def manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((MANIFESTS / name).read_text())
    return loaded


def pod_of(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The Pod a ReplicaSet would create from the Deployment's template."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "generateName": "x-", "namespace": namespace},
        "spec": template["spec"],
    }


def test_script_is_valid_bash() -> None:
    result = subprocess.run(
        ["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: `bash hack/setup.sh` installs it (Debian package)"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_script_applies_exactly_the_tested_manifests() -> None:
    used = set(re.findall(r"\$MANIFESTS/([\w.-]+)", SCRIPT.read_text()))
    assert used == {p.name for p in MANIFESTS.glob("*.yaml")}


def test_the_launchers_run_fmas_image_plus_the_stand_in() -> None:
    """fma's image has no stand-in (tests/unit/test_packaging.py): the script builds one on top
    of it, from localcluster/, for the LauncherConfig's `--instance-entry`."""
    text = SCRIPT.read_text()
    assert 'STANDIN_IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG-standin"' in text
    assert '-f "$ROOT/docs/e2e-kind/standin-launcher.Dockerfile" "$ROOT/localcluster"' in text
    assert 'kind load docker-image "$IMAGE" "$STANDIN_IMAGE"' in text
    dockerfile = (MANIFESTS / "standin-launcher.Dockerfile").read_text()
    assert "FROM ${FMA_IMAGE}" in dockerfile and "COPY . /app/localcluster" in dockerfile
    [server] = manifest("launcherconfig.yaml")["spec"]["podTemplate"]["spec"]["containers"]
    assert server["image"] == "ghcr.io/llm-d/fma:e2e-standin"
    assert "--instance-entry=localcluster.vllm_standin.cli:launcher_instance" in server["args"]


def helm_argv() -> list[str]:
    """The script's helm command line, expanded by bash with the script's default settings."""
    text = SCRIPT.read_text()
    assignments = [
        line
        for line in text.splitlines()
        if re.match(r"[A-Z_]+=", line) and not line.startswith(("ROOT=", "STARTED="))
    ]
    command = next(
        line for line in text.replace("\\\n", " ").splitlines() if line.startswith("helm ")
    )
    script = "\n".join(
        [f"ROOT={REPO}", *assignments, "printf '%s\\n' " + command.removeprefix("helm ")]
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_helm_command_of_the_script_renders_the_chart() -> None:
    command = helm_shim.parse(helm_argv())
    assert command.verb == "upgrade"
    assert {"--install", "--create-namespace", "--wait"} <= command.flags
    name, chart = command.positionals
    assert Path(chart).resolve() == support.CHART_DIR
    rendered = support.render(
        command.values, kube_version="v1.29.0", namespace=command.namespace, release=name
    )
    deployment = rendered.get("Deployment", "fma-controller")
    image = support.container(deployment, "controller")["image"]
    assert image == "ghcr.io/llm-d/fma:e2e"
    assert f"--namespace={command.values['servedNamespace']}" in support.argv(
        support.container(deployment, "controller")
    )


def test_vllm_deployment_becomes_a_launcher_mode_requester() -> None:
    isc = InferenceServerConfig.model_validate(
        {**manifest("inferenceserverconfig.yaml"), "metadata": {"name": "tiny", "namespace": "e2e"}}
    )
    context = MutationContext(
        namespace="e2e",
        namespace_labels={"fma.llm-d.ai/inject": "enabled"},
        iscs=[isc],
        settings=MutationSettings(requester_image="ghcr.io/llm-d/fma:e2e"),
    )
    result = mutate_pod(pod_of(manifest("vllm-deployment.yaml"), "e2e"), context)
    assert result.mode == "launcher", result
    assert not result.warnings
    annotations = result.patch[0]["value"]
    assert annotations["dual-pods.llm-d.ai/inference-server-config"] == "tiny"


def test_requester_deployment_is_left_alone_by_the_webhook() -> None:
    context = MutationContext(namespace="e2e", namespace_labels={"fma.llm-d.ai/inject": "enabled"})
    result = mutate_pod(pod_of(manifest("requester.yaml"), "e2e"), context)
    assert result.skip_code == "not_vllm"
    assert not result.warnings


@pytest.mark.parametrize("name", ["inferenceserverconfig.yaml", "launcherconfig.yaml"])
def test_custom_resources_pass_the_validating_webhook(name: str) -> None:
    obj = manifest(name)
    verdict = validate_custom_resource(request(obj["kind"], obj, name="x"), CONTEXT)
    assert verdict.allowed, verdict.message


def _apply(cluster: LocalCluster, namespace: str, name: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(MANIFESTS / name))


def _ready_requester(env: FmaEnvironment) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = [p for p in i.requesters(env, "tiny") if i.live(p) and i.ready(p)]
        return found[0] if found else None

    result: dict[str, Any] = env.wait("a Ready requester of tiny", check, timeout=90)
    return result


def _launcher(env: FmaEnvironment) -> dict[str, Any]:
    (launcher,) = [p for p in i.launchers(env) if i.live(p)]
    return launcher


@pytest.mark.cluster
def test_kind_scenario_runs_on_the_local_cluster(cluster: LocalCluster, tmp_path: Path) -> None:
    with fma_environment(cluster, tmp_path, nodes=1, gpus_per_node=2) as env:
        for name in ("inferenceserverconfig.yaml", "launcherconfig.yaml", "requester.yaml"):
            _apply(cluster, env.namespace, name)
        controller = env.start_controller(*controller_args())

        cold = _ready_requester(env)  # cold: a launcher created for it
        assert i.binding(_launcher(env)) == (i.meta(cold)["uid"], i.meta(cold)["name"])

        env.scale("tiny", 0)
        env.wait("the requester gone", lambda: not i.requesters(env, "tiny"), timeout=60)
        env.wait(
            "the launcher kept, asleep",
            lambda: i.meta(_launcher(env))["labels"].get(SLEEPING) == "true",
        )

        env.scale("tiny", 1)
        hot = _ready_requester(env)
        assert i.binding(_launcher(env)) == (i.meta(hot)["uid"], i.meta(hot)["name"])
        assert i.metric(controller.metrics(), "fma_actuation_seconds_count", {"path": "hot"}) == 1
        # What the script checks: the requester's dual label names the launcher, and the one
        # InstanceCreated Event is still the cold start's.
        launcher = i.meta(_launcher(env))["name"]
        assert i.meta(hot)["labels"]["dual-pods.llm-d.ai/dual"] == launcher
        core = kubernetes.client.CoreV1Api(env.api)
        created = core.list_namespaced_event(env.namespace, field_selector="reason=InstanceCreated")
        assert len(created.items) == 1
