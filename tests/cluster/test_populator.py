"""The launcher-populator on the real control plane, with hollow GPU nodes running real launchers.

The module runs in one end-to-end environment (`localcluster/fma/environment.py`: a namespace,
hollow GPU nodes, the controllers' identity bound to `controller/rbac.yaml`). Each test starts
its own `python -m controller.populator` as that identity, so missing RBAC rules show up here;
the hollow kubelet runs the launcher Pods it creates as `fma-launcher --mock-gpus` processes (the
`ghcr.io/llm-d/fma:<tag>` image resolves to the repository's virtualenv), so "Ready" means a
launcher answering its readiness probe. The scheduler, the garbage collector and the
apiserver's preconditions are the real ones. Each test removes its objects when it ends.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import kubernetes.config
import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from localcluster.controlplane import LocalCluster
from localcluster.fma.environment import FmaEnvironment, fma_environment
from localcluster.processes import ManagedProcess, free_port, wait_until
from tests.waiting import eventually

GROUP, VERSION = "fma.llm-d.ai", "v1alpha1"
LCS, LPPS = "launcherconfigs", "launcherpopulationpolicies"
LC_LABEL = "dual-pods.llm-d.ai/launcher-config-name"
NODE_LABEL = "dual-pods.llm-d.ai/node-name"
STUCK = "dual-pods.llm-d.ai/launcher-stuck"
TEMPLATE_HASH = "dual-pods.llm-d.ai/launcher-populator-template-hash"
LAUNCHER = {
    "name": "inference-server",
    "image": "ghcr.io/llm-d/fma:test",
    "command": [
        "fma-launcher", "--mock-gpus", "--host", "$(POD_IP)",
        "--instance-entry", "localcluster.testing.fake_instance:serve",
    ],
    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
}  # fmt: skip


@dataclass(frozen=True)
class Nodes:
    a: str
    b: str
    c: str
    """Not labelled `gpu=yes`: outside the policies' selector until a test labels it."""


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    workdir = tmp_path_factory.mktemp("populator")
    with fma_environment(
        cluster, workdir, nodes=3, gpus_per_node=2, node_labels={"gpu": "yes"}
    ) as environment:
        cluster.kubectl("label", "node", environment.nodes[2], "gpu-")
        yield environment


@pytest.fixture
def nodes(env: FmaEnvironment) -> Nodes:
    return Nodes(*env.nodes)


@pytest.fixture
def namespace(env: FmaEnvironment) -> str:
    return env.namespace


@pytest.fixture
def api_client(env: FmaEnvironment) -> Any:
    return env.api


@pytest.fixture
def core_v1(env: FmaEnvironment) -> Any:
    return env.core


@dataclass
class Populator:
    process: ManagedProcess
    port: int

    def counts(self, lc: str) -> dict[str, float]:
        """`fma_launcher_pod_count{lcfg_name=lc}` by phase, as scraped now."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {
            sample.labels["phase"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "fma_launcher_pod_count"
            for sample in family.samples
            if sample.labels["lcfg_name"] == lc
        }


@pytest.fixture
def populator(env: FmaEnvironment, tmp_path: Path) -> Iterator[Populator]:
    """The populator as the controllers' identity; afterwards no LPP, LC or launcher is left."""
    port = free_port()
    argv = [
        sys.executable, "-m", "controller.populator", "-n", env.namespace,
        "--kubeconfig", str(env.controller_kubeconfig),
        "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        "--stuck-scheduling-threshold", "4s", "--leader-elect",
    ]  # fmt: skip
    process = ManagedProcess("populator", argv, log_path=tmp_path / "populator.log")
    process.start()
    try:
        wait_until("the populator ready", lambda: _ready(port), timeout=30, process=process)
        yield Populator(process, port)
    finally:
        process.stop(grace_seconds=10)
        print(process.log_tail(60))
        _clean(env)


def _clean(env: FmaEnvironment) -> None:
    api = custom(env.api)
    for plural in (LPPS, LCS):
        for obj in api.list_namespaced_custom_object(GROUP, VERSION, env.namespace, plural)[
            "items"
        ]:
            name = obj["metadata"]["name"]
            api.delete_namespaced_custom_object(GROUP, VERSION, env.namespace, plural, name)
    for pod in launchers(env.core, env.namespace):
        with contextlib.suppress(ApiException):  # the garbage collector may be first
            env.core.delete_namespaced_pod(pod.metadata.name, env.namespace, grace_period_seconds=1)
    eventually("no launcher left", lambda: not launchers(env.core, env.namespace), 60)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ----- objects -----------------------------------------------------------------------------------


def custom(api_client: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api_client)


def lc_body(name: str, /, **container: Any) -> dict[str, Any]:
    spec = {"containers": [{**copy.deepcopy(LAUNCHER), **container}]}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LauncherConfig",
        "metadata": {"name": name},
        "spec": {"maxInstances": 2, "podTemplate": {"spec": spec}},
    }


def lpp_body(name: str, counts: dict[str, int], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LauncherPopulationPolicy",
        "metadata": {"name": name},
        "spec": {
            "enhancedNodeSelector": {"labelSelector": {"matchLabels": labels}},
            "countForLauncher": [
                {"launcherConfigName": k, "launcherCount": v} for k, v in counts.items()
            ],
        },
    }


def create(api_client: Any, namespace: str, plural: str, body: dict[str, Any]) -> None:
    custom(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def patch(api_client: Any, namespace: str, plural: str, name: str, body: dict[str, Any]) -> None:
    custom(api_client).patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)


def status(api_client: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj = custom(api_client).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return dict(obj.get("status") or {})


def set_count(api_client: Any, namespace: str, lc: str, count: int) -> None:
    entries = [{"launcherConfigName": lc, "launcherCount": count}]
    patch(api_client, namespace, LPPS, "policy", {"spec": {"countForLauncher": entries}})


def launchers(core: Any, namespace: str, node: str | None = None) -> list[Any]:
    selector = "app.kubernetes.io/component=launcher" + (f",{NODE_LABEL}={node}" if node else "")
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return sorted(pods, key=lambda p: p.metadata.name)


def live(core: Any, namespace: str, node: str | None = None) -> list[Any]:
    return [p for p in launchers(core, namespace, node) if not p.metadata.deletion_timestamp]


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def expect_ready(core: Any, namespace: str, per_node: dict[str, int], timeout: float = 60) -> None:
    """Exactly these numbers of launchers, all Ready, and no other launcher Pod left."""

    def check() -> bool:
        pods = launchers(core, namespace)
        if any(p.metadata.deletion_timestamp for p in pods):
            return False
        by_node = {n: [p for p in pods if p.metadata.labels[NODE_LABEL] == n] for n in per_node}
        return len(pods) == sum(per_node.values()) and all(
            len(by_node[n]) == count and all(is_ready(p) for p in by_node[n])
            for n, count in per_node.items()
        )

    eventually(f"Ready launchers {per_node}", check, timeout)


def names(pods: list[Any]) -> set[str]:
    return {p.metadata.name for p in pods}


def as_controller(env: FmaEnvironment) -> Any:
    """An API client with the controllers' identity (the one fma's admission rules exempt)."""
    client = kubernetes.config.new_client_from_config(str(env.controller_kubeconfig))
    return kubernetes.client.CoreV1Api(client)


def add_instance(pod: Any) -> None:
    """Start an instance in a launcher through its API (a fake vLLM, its own port)."""
    url = f"http://{pod.status.pod_ip}:8001/v2/vllm/instances/busy"
    body = {"options": f"--port {free_port()}"}
    httpx.put(url, json=body, timeout=30).raise_for_status()


# ----- scenarios ---------------------------------------------------------------------------------


def test_counts_follow_the_policy_and_excess_goes_emptiest_first(
    nodes: Nodes, populator: Populator, namespace: str, api_client: Any, core_v1: Any
) -> None:
    create(api_client, namespace, LCS, lc_body("lc"))
    create(
        api_client,
        namespace,
        LPPS,
        lpp_body("policy", {"lc": 1}, gpu="yes"),
    )
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1, nodes.c: 0})
    assert status(api_client, namespace, LCS, "lc") == {"observedGeneration": 1}
    assert status(api_client, namespace, LPPS, "policy") == {"observedGeneration": 1}
    eventually("the unbound count", lambda: populator.counts("lc").get("unbound") == 2)

    set_count(api_client, namespace, "lc", 2)
    expect_ready(core_v1, namespace, {nodes.a: 2, nodes.b: 2})
    assert status(api_client, namespace, LPPS, "policy") == {"observedGeneration": 2}
    for pod in launchers(core_v1, namespace):
        assert pod.spec.node_selector == {"kubernetes.io/hostname": pod.spec.node_name}
    # Without instance knowledge the oldest would go first: give that one an instance.
    busy = min(
        launchers(core_v1, namespace, nodes.a),
        key=lambda p: (p.metadata.creation_timestamp, p.metadata.name),
    )
    add_instance(busy)
    time.sleep(1)  # the populator follows the launcher's watch stream: let the event arrive

    set_count(api_client, namespace, "lc", 1)
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1})
    assert names(launchers(core_v1, namespace, nodes.a)) == {busy.metadata.name}
    eventually("the unbound count", lambda: populator.counts("lc").get("unbound") == 2)

    # No policy left: the empty launcher goes, the one holding an instance stays (E2).
    custom(api_client).delete_namespaced_custom_object(GROUP, VERSION, namespace, LPPS, "policy")
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 0})
    assert names(launchers(core_v1, namespace)) == {busy.metadata.name}


def test_stale_unbound_launchers_are_replaced_and_bound_ones_kept(
    env: FmaEnvironment,
    nodes: Nodes,
    populator: Populator,
    namespace: str,
    api_client: Any,
    core_v1: Any,
) -> None:
    create(api_client, namespace, LCS, lc_body("lc"))
    create(
        api_client,
        namespace,
        LPPS,
        lpp_body("policy", {"lc": 1}, gpu="yes"),
    )
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1})
    (bound,) = launchers(core_v1, namespace, nodes.a)
    (unbound,) = launchers(core_v1, namespace, nodes.b)
    annotation = {"dual-pods.llm-d.ai/requester": "0000-uid requester-0"}
    as_controller(env).patch_namespaced_pod(
        bound.metadata.name, namespace, {"metadata": {"annotations": annotation}}
    )
    eventually("the bound count", lambda: populator.counts("lc").get("bound") == 1)

    variables = [*LAUNCHER["env"], {"name": "TEMPLATE_VERSION", "value": "2"}]
    patch(api_client, namespace, LCS, "lc", {"spec": lc_body("lc", env=variables)["spec"]})

    def replaced() -> bool:
        pods = launchers(core_v1, namespace, nodes.b)
        return len(pods) == 1 and pods[0].metadata.uid != unbound.metadata.uid

    eventually("the stale launcher replaced", replaced)
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1})
    assert names(launchers(core_v1, namespace, nodes.a)) == {bound.metadata.name}
    (replacement,) = launchers(core_v1, namespace, nodes.b)
    assert replacement.metadata.name != unbound.metadata.name
    new_hash = replacement.metadata.annotations[TEMPLATE_HASH]
    assert new_hash != unbound.metadata.annotations[TEMPLATE_HASH]
    assert status(api_client, namespace, LCS, "lc") == {"observedGeneration": 2}

    set_count(api_client, namespace, "lc", 0)
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 0})
    assert names(launchers(core_v1, namespace)) == {bound.metadata.name}
    eventually(
        "bound 1, unbound 0",
        lambda: (c := populator.counts("lc")).get("bound") == 1 and c.get("unbound") == 0,
    )


def test_missing_or_malformed_lc_is_hands_off(
    nodes: Nodes, populator: Populator, namespace: str, api_client: Any, core_v1: Any
) -> None:
    create(api_client, namespace, LCS, lc_body("lc"))
    create(
        api_client,
        namespace,
        LPPS,
        lpp_body("policy", {"lc": 1}, gpu="yes"),
    )
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1})
    before = names(launchers(core_v1, namespace))

    patch(api_client, namespace, LCS, "lc", {"spec": lc_body("lc", name="not-the-server")["spec"]})
    set_count(api_client, namespace, "lc", 2)
    malformed = 'container "inference-server" not found'
    eventually(
        "the LC status error",
        lambda: status(api_client, namespace, LCS, "lc").get("errors") == [malformed],
    )
    eventually(
        "the LPP status error",
        lambda: (
            status(api_client, namespace, LPPS, "policy").get("errors")
            == [f'LauncherConfig "lc" referenced in CountForLauncher is malformed: {malformed}']
        ),
    )
    time.sleep(3)  # nothing may happen: give a wrong create or delete the time to show
    assert names(launchers(core_v1, namespace)) == before

    custom(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, LCS, "lc", propagation_policy="Orphan"
    )
    eventually(
        "the LPP status error",
        lambda: (
            status(api_client, namespace, LPPS, "policy").get("errors")
            == ['LauncherConfig "lc" referenced in CountForLauncher does not exist']
        ),
    )
    time.sleep(3)
    assert names(live(core_v1, namespace)) == before

    create(api_client, namespace, LCS, lc_body("lc"))  # a new UID: the old launchers are stale
    expect_ready(core_v1, namespace, {nodes.a: 2, nodes.b: 2})
    assert not names(launchers(core_v1, namespace)) & before
    assert "errors" not in status(api_client, namespace, LPPS, "policy")


def test_an_unschedulable_launcher_becomes_stuck(
    nodes: Nodes, populator: Populator, namespace: str, api_client: Any, core_v1: Any
) -> None:
    huge = lc_body("huge", resources={"limits": {"cpu": "1000"}, "requests": {"cpu": "1000"}})
    create(api_client, namespace, LCS, huge)
    create(
        api_client,
        namespace,
        LPPS,
        lpp_body("policy", {"huge": 1}, gpu="yes"),
    )

    def stuck() -> bool:
        pods = launchers(core_v1, namespace)
        return len(pods) == 2 and all((p.metadata.labels or {}).get(STUCK) == "true" for p in pods)

    eventually("two stuck launchers", stuck, timeout=30)
    pods = launchers(core_v1, namespace)
    assert all(p.spec.node_name is None for p in pods)
    for pod in pods:
        selector = f"involvedObject.name={pod.metadata.name},reason=LauncherStuck"

        def events(selector: str = selector) -> list[Any]:
            return list(core_v1.list_namespaced_event(namespace, field_selector=selector).items)

        eventually("the LauncherStuck Event", lambda: bool(events()))  # written after the label
        (event,) = events()
        assert event.type == "Warning" and event.source.component == "launcher-populator"
        assert event.message == (
            "Launcher is stuck (stuck_scheduling); leaving it in place for investigation"
        )
    eventually("the stuck count", lambda: populator.counts("huge").get("stuck_scheduling") == 2)
    time.sleep(2)
    assert names(launchers(core_v1, namespace)) == names(pods), "stuck ones are not replaced"


def test_node_label_changes_move_the_launchers(
    env: FmaEnvironment,
    nodes: Nodes,
    populator: Populator,
    namespace: str,
    api_client: Any,
    core_v1: Any,
) -> None:
    create(api_client, namespace, LCS, lc_body("lc"))
    create(
        api_client,
        namespace,
        LPPS,
        lpp_body("policy", {"lc": 1}, gpu="yes"),
    )
    expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 1, nodes.c: 0})
    try:
        env.cluster.kubectl("label", "node", nodes.c, "gpu=yes")
        env.cluster.kubectl("label", "node", nodes.b, "gpu=no", "--overwrite")
        expect_ready(core_v1, namespace, {nodes.a: 1, nodes.b: 0, nodes.c: 1})
    finally:
        env.cluster.kubectl("label", "node", nodes.c, "gpu-")
        env.cluster.kubectl("label", "node", nodes.b, "gpu=yes", "--overwrite")
