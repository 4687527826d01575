"""fma's CRDs on the real apiserver: examples pass, bad input gets a 422 naming the field."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.rest import ApiException

from crds import EXAMPLE_FILES, GROUP, VERSION
from localcluster.controlplane import LocalCluster

pytestmark = pytest.mark.usefixtures("crds_installed")

_PLURALS = {
    "InferenceServerConfig": "inferenceserverconfigs",
    "LauncherConfig": "launcherconfigs",
    "LauncherPopulationPolicy": "launcherpopulationpolicies",
}


def _example(kind: str) -> dict[str, Any]:
    for path in EXAMPLE_FILES:
        obj = yaml.safe_load(path.read_text())
        if obj["kind"] == kind:
            return dict(obj)
    raise AssertionError(f"no example of kind {kind}")


def _create(api: kubernetes.client.ApiClient, namespace: str, obj: dict[str, Any]) -> Any:
    return kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, _PLURALS[obj["kind"]], obj
    )


def _rejection(api: kubernetes.client.ApiClient, namespace: str, obj: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as rejected:
        _create(api, namespace, obj)
    assert rejected.value.status == 422, rejected.value.body
    return str(rejected.value.body)


@pytest.mark.parametrize("kind", sorted(_PLURALS))
def test_examples_are_accepted(
    api_client: kubernetes.client.ApiClient, namespace: str, kind: str
) -> None:
    created = _create(api_client, namespace, _example(kind))
    assert created["metadata"]["uid"]


def test_short_names_and_printer_columns(cluster: LocalCluster, namespace: str) -> None:
    for path in EXAMPLE_FILES:
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    isc = cluster.kubectl("get", "-n", namespace, "isc")
    assert "vllm-launcher" in isc
    assert "8005" in isc
    assert "4" in cluster.kubectl("get", "-n", namespace, "lcfg")
    assert "gpu-nodes" in cluster.kubectl("get", "-n", namespace, "lpp")


def test_kubectl_explain_describes_fields(cluster: LocalCluster) -> None:
    try:
        text = cluster.kubectl("explain", "isc.spec.modelServerConfig.port")
    except subprocess.CalledProcessError as exc:  # pragma: no cover - diagnostic
        raise AssertionError(exc.stderr) from exc
    assert "FIELD:    port <integer>" in text
    assert "DESCRIPTION:" in text
    assert len(text.split("DESCRIPTION:")[1].strip()) > 20


def test_missing_launcher_config_name_is_rejected(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    isc = _example("InferenceServerConfig")
    del isc["spec"]["launcherConfigName"]
    assert "spec.launcherConfigName: Required value" in _rejection(api_client, namespace, isc)


def test_port_zero_is_rejected(api_client: kubernetes.client.ApiClient, namespace: str) -> None:
    isc = _example("InferenceServerConfig")
    isc["spec"]["modelServerConfig"]["port"] = 0
    body = _rejection(api_client, namespace, isc)
    assert "spec.modelServerConfig.port" in body
    assert "should be greater than or equal to 1" in body


def test_max_instances_zero_is_rejected(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    lc = _example("LauncherConfig")
    lc["spec"]["maxInstances"] = 0
    body = _rejection(api_client, namespace, lc)
    assert "spec.maxInstances" in body
    assert "should be greater than or equal to 1" in body


def test_duplicate_count_for_launcher_key_is_rejected(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    lpp = _example("LauncherPopulationPolicy")
    entry = lpp["spec"]["countForLauncher"][0]
    lpp["spec"]["countForLauncher"].append(copy.deepcopy(entry) | {"launcherCount": 2})
    body = _rejection(api_client, namespace, lpp)
    assert "spec.countForLauncher[1]: Duplicate value" in body
    assert entry["launcherConfigName"] in body
