"""`helm install` of charts/fma into the real local control plane (Kubernetes 1.20.2).

The local cluster has no kubelet for images and no cert-manager, so:
- the chart is installed in self-managed certificate mode with hooks disabled (`--no-hooks`);
  the hook objects are sent to the apiserver as a server-side dry run, which runs the same
  validation and admission without creating Jobs that no kubelet would run;
- the certificate step runs here, in-process, exactly as the renewal CronJob's containers would:
  their rendered command lines (`fma-certs ensure ...` and `fma-certs ensure-control ...`, then
  files/sync_ca_bundle.py), with the CronJob's ServiceAccount identity, so the chart's RBAC is
  what is tested;
- the webhook runs as a local process with the Deployment's rendered arguments and the webhook
  ServiceAccount's identity, and must become ready behind the certificate the step issued;
- so does the controller, with the control credential the step issued in the files its
  Deployment mounts.
Uninstalling then leaves nothing carrying the release's label, and the Secrets `fma-certs` wrote
are garbage-collected with the Service that owns them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import secrets
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kubernetes.client
import pytest
import yaml
from cryptography import x509
from kubernetes.client.rest import ApiException

import certs.cli
from contract import auth
from controlauth.chain import TrustAnchors, verify_chain
from localcluster.controlplane import LocalCluster
from localcluster.processes import ManagedProcess, free_port, wait_until
from tests.chart import support
from tests.waiting import eventually, wait_value

pytestmark = pytest.mark.cluster

KUBE_VERSION: Final = "v1.20.2"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
CONFIGURATION_KINDS: Final = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")


@dataclass(frozen=True)
class Installation:
    cluster: LocalCluster
    release: str
    namespace: str
    served: str
    values: dict[str, Any]
    rendered: support.Rendered
    manifest: list[dict[str, Any]]

    @property
    def fullname(self) -> str:
        return f"{self.release}-fma"

    def account(self, name: str) -> Path:
        """A kubeconfig acting as ServiceAccount `name` of the release namespace."""
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}")
        return self.cluster.kubeconfig_for(f"system:serviceaccount:{self.namespace}:{name}", groups)

    def secret_data(self, name: str) -> dict[str, bytes]:
        """The decoded data of Secret `name` of the release namespace."""
        data = self.get("secret", name, self.namespace)["data"]
        return {key: base64.b64decode(value) for key, value in data.items()}

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        where = ["-n", namespace] if namespace else []
        result: dict[str, Any] = json.loads(
            self.cluster.kubectl("get", kind, name, *where, "-o", "json")
        )
        return result


@contextlib.contextmanager
def _installed(cluster: LocalCluster) -> Iterator[Installation]:
    """A fresh release in namespaces of its own; always uninstalled and cleaned up after."""
    suffix = secrets.token_hex(3)
    release, namespace, served = f"chart-{suffix}", f"fma-chart-{suffix}", f"served-{suffix}"
    values = {**support.VALUE_SETS["self-managed"], "servedNamespace": served}
    for name in (namespace, served):
        cluster.kubectl("create", "namespace", name)
    try:
        info = support.install(
            cluster.kubeconfig, values, release=release, namespace=namespace, disable_hooks=True
        )
        assert info["status"] == "deployed", info
        rendered = support.render(
            values, kube_version=KUBE_VERSION, namespace=namespace, release=release
        )
        manifest = [doc for doc in yaml.safe_load_all(info["manifest"]) if doc]
        yield Installation(cluster, release, namespace, served, values, rendered, manifest)
    finally:
        support.uninstall(
            cluster.kubeconfig, release=release, namespace=namespace, disable_hooks=True
        )
        # A configuration left behind with failurePolicy Fail would refuse the CR writes of
        # every later test: make sure, whatever happened above.
        selector = f"{INSTANCE_LABEL}={release}"
        cluster.kubectl("delete", ",".join(CONFIGURATION_KINDS), "-l", selector, check=False)
        cluster.kubectl("delete", "namespace", namespace, served, "--wait=false", check=False)


def _run_certificate_step(installation: Installation) -> dict[str, Any]:
    """The renewal CronJob's containers, run here as its ServiceAccount: the `fma-certs` init
    containers (the webhook's certificate, the controller's control credential), then the sync."""
    cronjob = installation.rendered.get("CronJob", f"{installation.fullname}-certs-renew")
    spec = support.pod_spec(cronjob)
    assert spec is not None
    kubeconfig = f"--kubeconfig={installation.account(spec['serviceAccountName'])}"
    assert [c["name"] for c in spec["initContainers"]] == ["ensure", "ensure-control"]
    changed = []
    for ensure in spec["initContainers"]:
        assert ensure["command"] == ["fma-certs"]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert certs.cli.main([*ensure["args"], kubeconfig]) == 0, ensure["name"]
        changed.append(json.loads(printed.getvalue())["changed"])
    sync = support.container(cronjob, "sync-ca-bundle")
    assert sync["command"][0] == "python"
    result = subprocess.run(
        [sys.executable, *sync["command"][1:], *sync["args"], kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    report["certificatesChanged"] = changed
    return report


@pytest.fixture(scope="module")
def installed(cluster: LocalCluster) -> Iterator[Installation]:
    with _installed(cluster) as installation:
        first = _run_certificate_step(installation)
        assert all(first["certificatesChanged"]) and all(first["changed"].values()), first
        yield installation


def test_the_release_is_rendered_for_the_cluster_and_every_object_is_stored(
    installed: Installation,
) -> None:
    # Helm rendered what the offline render for 1.20 gives (policy/v1beta1, batch/v1beta1, no
    # matchConditions), and the apiserver stored each object.
    def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objects}

    assert by_key(installed.manifest) == by_key(installed.rendered.resources)
    assert len(installed.manifest) == len(installed.rendered.resources)
    for obj in installed.manifest:
        stored = installed.get(
            obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
        )
        assert stored["metadata"]["labels"][INSTANCE_LABEL] == installed.release
    for crd in support.chart_crds():
        conditions = installed.get("crd", crd["metadata"]["name"])["status"]["conditions"]
        assert {"type": "Established", "status": "True"} in [
            {"type": c["type"], "status": c["status"]} for c in conditions
        ]


def test_the_hook_objects_are_accepted(installed: Installation) -> None:
    hooks = installed.rendered.hooks
    assert {o["kind"] for o in hooks} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Job",
    }
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": hooks})
    out = installed.cluster.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-", input_text=body
    )
    assert len(out.split()) == len(hooks)


def _rendered_configuration(installed: Installation, kind: str) -> dict[str, Any]:
    """The chart's webhook configuration of `kind` (as `kubectl` spells it, in lower case)."""
    [configuration] = [
        o
        for o in installed.rendered.resources
        if o["kind"].lower() == kind and o["metadata"]["name"] == f"{installed.fullname}-webhook"
    ]
    return configuration


def test_the_certificate_step_fills_every_ca_bundle_and_hands_the_secrets_over(
    installed: Installation,
) -> None:
    namespace, name = installed.namespace, f"{installed.fullname}-webhook"
    serving = installed.get("secret", f"{name}-tls", namespace)
    bundle = serving["data"]["ca.crt"]
    assert b"BEGIN CERTIFICATE" in base64.b64decode(bundle)
    for kind in CONFIGURATION_KINDS:
        webhooks = installed.get(kind, name)["webhooks"]
        assert len(webhooks) == len(_rendered_configuration(installed, kind)["webhooks"])
        assert all(w["clientConfig"]["caBundle"] == bundle for w in webhooks)
    service_uid = installed.get("service", name, namespace)["metadata"]["uid"]
    control = f"{installed.fullname}-control"
    for secret in (f"{name}-tls", f"{name}-tls-ca", control, f"{control}-ca"):
        owners = installed.get("secret", secret, namespace)["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"]) for o in owners] == [("Service", service_uid)]
    again = _run_certificate_step(installed)
    assert not any(again["certificatesChanged"]) and not any(again["changed"].values()), again


def test_the_certificate_step_issues_the_control_credential_the_controller_mounts(
    installed: Installation,
) -> None:
    name = f"{installed.fullname}-control"
    secret = installed.get("secret", name, installed.namespace)
    assert secret["type"] == "kubernetes.io/tls"
    data = installed.secret_data(name)
    assert sorted(data) == sorted((auth.CA_FILE, auth.CERT_FILE, auth.KEY_FILE))
    chain = x509.load_pem_x509_certificates(data[auth.CERT_FILE])
    anchors = TrustAnchors.from_pem(data[auth.CA_FILE], source=name)
    verify_chain(chain, anchors, chain[0].not_valid_before_utc + dt.timedelta(minutes=10))
    # The CA key lives in a Secret of its own, which no Pod mounts.
    assert sorted(installed.secret_data(f"{name}-ca")) == ["tls.crt", "tls.key"]
    deployments = {d["metadata"]["name"]: d for d in installed.rendered.of_kind("Deployment")}
    mounted = {
        (deployment, volume["secret"]["secretName"], str(volume["secret"].get("items", "")))
        for deployment, obj in deployments.items()
        for volume in (support.pod_spec(obj) or {})["volumes"]
        if volume["name"].startswith("control")
    }
    assert mounted == {
        (f"{installed.fullname}-controller", name, ""),
        (f"{installed.fullname}-webhook", name, str([{"key": "ca.crt", "path": "ca.crt"}])),
    }


def test_an_upgrade_keeps_the_patched_ca_bundle(installed: Installation) -> None:
    """The templates leave `caBundle` out, so Helm's merge keeps what the certificate step
    wrote while it changes what the chart owns."""
    name = f"{installed.fullname}-webhook"
    before = {kind: installed.get(kind, name)["webhooks"] for kind in CONFIGURATION_KINDS}
    values = {**installed.values, "webhook": {"timeoutSeconds": 7}}
    info = support.upgrade(
        installed.cluster.kubeconfig,
        values,
        release=installed.release,
        namespace=installed.namespace,
        disable_hooks=True,
    )
    assert (info["status"], info["revision"]) == ("deployed", 2)
    for kind in CONFIGURATION_KINDS:
        after = installed.get(kind, name)["webhooks"]
        assert [w["timeoutSeconds"] for w in after] == [7] * len(before[kind])
        assert [w["clientConfig"] for w in after] == [w["clientConfig"] for w in before[kind]]
        assert all(w["clientConfig"]["caBundle"] for w in after)


@pytest.mark.parametrize(
    ("account", "verb", "resource", "where", "allowed"),
    [
        ("controllers", "create", "pods", "served", True),
        ("controllers", "delete", "pods", "served", True),
        (
            "controllers",
            "patch",
            "launcherconfigs.fma.llm-d.ai --subresource=status",
            "served",
            True,
        ),
        ("controllers", "update", "leases.coordination.k8s.io", "served", True),
        ("controllers", "create", "events.events.k8s.io", "served", True),
        ("controllers", "watch", "nodes", "", True),
        ("controllers", "update", "inferenceserverconfigs.fma.llm-d.ai", "served", False),
        ("controllers", "get", "secrets", "served", False),
        ("controllers", "create", "pods", "release", False),
        ("controllers", "update", "nodes", "", False),
        ("webhook", "watch", "namespaces", "", True),
        ("webhook", "list", "replicasets.apps", "", True),
        ("webhook", "watch", "launcherconfigs.fma.llm-d.ai", "", True),
        ("webhook", "get", "pods", "served", False),
        ("webhook", "create", "inferenceserverconfigs.fma.llm-d.ai", "served", False),
        ("webhook", "list", "secrets", "release", False),
        ("certs", "create", "secrets", "release", True),
        ("certs", "update", "secrets/{fullname}-webhook-tls", "release", True),
        ("certs", "update", "secrets/{fullname}-control", "release", True),
        ("certs", "update", "secrets/{fullname}-control-ca", "release", True),
        ("certs", "get", "secrets/other", "release", False),
        ("certs", "list", "secrets", "release", False),
        ("certs", "patch", "validatingwebhookconfigurations/{fullname}-webhook", "", True),
        ("certs", "patch", "validatingwebhookconfigurations/someone-else", "", False),
        ("certs", "create", "secrets", "served", False),
    ],
)
def test_each_account_may_do_what_it_needs_and_no_more(
    installed: Installation, account: str, verb: str, resource: str, where: str, allowed: bool
) -> None:
    accounts = {
        "controllers": f"{installed.release}-fma-controllers",
        "webhook": f"{installed.fullname}-webhook",
        "certs": f"{installed.fullname}-certs",
    }
    user = f"system:serviceaccount:{installed.namespace}:{accounts[account]}"
    namespace = {"served": ["-n", installed.served], "release": ["-n", installed.namespace]}
    args = [
        "auth",
        "can-i",
        verb,
        *resource.format(fullname=installed.fullname).split(),
        f"--as={user}",
        *namespace.get(where, []),
    ]
    answer = installed.cluster.kubectl(*args, check=False).strip()
    assert answer == ("yes" if allowed else "no"), " ".join(args)


def _status(port: int, ca_pem: bytes, server_name: str, path: str) -> int:
    """GET over TLS, trusting only `ca_pem` and checking the name the apiserver checks."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        request = f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        return int(tls.recv(64).split()[1])


def test_the_webhook_serves_with_the_charts_arguments_rbac_and_certificate(
    installed: Installation, tmp_path: Path
) -> None:
    name = f"{installed.fullname}-webhook"
    argv, port = _run_here(
        installed, name, tmp_path, listen=("--port", "--host"), identity=installed.account
    )
    process = ManagedProcess("fma-webhook", argv, log_path=tmp_path / "webhook.log")
    bundle = installed.get("validatingwebhookconfiguration", name)["webhooks"][0]
    ca_pem = base64.b64decode(bundle["clientConfig"]["caBundle"])
    server_name = f"{name}.{installed.namespace}.svc"  # what the apiserver dials
    process.start()
    try:

        def ready() -> bool:
            with contextlib.suppress(OSError):
                return _status(port, ca_pem, server_name, "/readyz") == 200
            return False

        wait_until(
            "fma-webhook /readyz behind the chart's certificate", ready, timeout=60, process=process
        )
        assert _status(port, ca_pem, server_name, "/healthz") == 200
    finally:
        process.stop(grace_seconds=10)


def _run_here(
    installed: Installation,
    deployment_name: str,
    tmp_path: Path,
    *,
    listen: tuple[str, str],
    identity: Callable[[str], Path],
) -> tuple[list[str], int]:
    """The command line of the Deployment's (only) container, run here: its rendered arguments,
    with each mounted Secret's path replaced by a folder under `tmp_path` holding what the
    kubelet would put there (the Secret's keys, or its `items`), listening on a free port of
    127.0.0.1 (`listen`: the port and host flags), as the Pod's ServiceAccount (`identity`
    makes a kubeconfig for it). Returns the command line and the port."""
    deployment = installed.rendered.get("Deployment", deployment_name)
    spec = support.pod_spec(deployment)
    assert spec is not None
    [container] = spec["containers"]
    volumes = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    args = list(container["args"])
    for mount in container["volumeMounts"]:
        secret = volumes.get(mount["name"])
        if secret is None:
            continue
        folder = tmp_path / mount["name"]
        folder.mkdir()
        data = installed.secret_data(secret["secretName"])
        items = secret.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            (folder / item["path"]).write_bytes(data[item["key"]])
        args = [a.replace(f"={mount['mountPath']}", f"={folder}") for a in args]
    port_flag, host_flag = listen
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / container["command"][0]),
        *[a for a in args if not a.startswith(f"{port_flag}=")],
        f"{port_flag}={port}",
        f"{host_flag}=127.0.0.1",
        f"--kubeconfig={identity(spec['serviceAccountName'])}",
    ]
    return argv, port


def _token_kubeconfig(installed: Installation, account: str, tmp_path: Path) -> Path:
    """A kubeconfig acting as ServiceAccount `account` with its own token, as in a Pod.
    (`Installation.account` cannot serve here: a certificate's CN holds at most 64 characters,
    and `system:serviceaccount:<namespace>:<release>-fma-controllers` is longer.)"""

    def token_secret() -> str | None:
        sa = installed.get("serviceaccount", account, installed.namespace)
        return next((s["name"] for s in sa.get("secrets") or []), None)

    token = installed.secret_data(wait_value(f"a token of {account}", token_secret))["token"]
    server = yaml.safe_load(installed.cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": account, "user": {"token": token.decode()}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": account}}],
        "current-context": "local",
    }
    path = tmp_path / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_controller_runs_with_the_charts_arguments_and_control_credential(
    installed: Installation, tmp_path: Path
) -> None:
    """The controller reads its control credential at start and refuses to run without it, so a
    ready controller is one that loaded the credential the certificate step issued."""
    argv, port = _run_here(
        installed,
        f"{installed.fullname}-controller",
        tmp_path,
        listen=("--metrics-port", "--metrics-host"),
        identity=lambda account: _token_kubeconfig(installed, account, tmp_path),
    )
    assert f"--control-credentials-dir={tmp_path / 'control'}" in argv
    refused = subprocess.run(
        [a.replace(str(tmp_path / "control"), str(tmp_path / "missing")) for a in argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0 and "--control-credentials-dir" in refused.stderr
    process = ManagedProcess("fma-controller", argv, log_path=tmp_path / "controller.log")
    process.start()
    try:

        def ready() -> bool:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer,
            ):
                return bool(answer.status == 200)
            return False

        wait_until(
            "fma-controller /readyz with the chart's credential", ready, timeout=60, process=process
        )
    finally:
        process.stop(grace_seconds=10)


def _labelled(cluster: LocalCluster, release: str) -> list[str]:
    """`kind/name` of every object of any listable kind, in any namespace, carrying the
    release's label (kinds without their API group: `deployment.apps/x` -> `deployment/x`)."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    out = cluster.kubectl(
        "get", ",".join(kinds), "-A", "-l", f"{INSTANCE_LABEL}={release}", "-o", "name"
    )
    names = []
    for line in out.split():
        kind, name = line.split("/", 1)
        names.append(f"{kind.split('.', 1)[0]}/{name}")
    return names


def test_uninstall_leaves_nothing_behind(cluster: LocalCluster) -> None:
    with _installed(cluster) as installation:
        _run_certificate_step(installation)
        release, namespace = installation.release, installation.namespace
        # The release's objects, and the ReplicaSets and Pods of its Deployments.
        names = {f"{o['kind']}/{o['metadata']['name']}".lower() for o in installation.manifest}
        assert names <= set(_labelled(cluster, release))
        support.uninstall(
            cluster.kubeconfig, release=release, namespace=namespace, disable_hooks=True
        )
        eventually("no object labelled with the release", lambda: not _labelled(cluster, release))
        core = kubernetes.client.CoreV1Api(installation.cluster.api_client())

        def secrets_left() -> list[str]:
            try:
                items = core.list_namespaced_secret(namespace).items
            except ApiException:
                return ["<namespace unreadable>"]
            default_token = "kubernetes.io/service-account-token"
            return [
                s.metadata.name
                for s in items
                if not (
                    s.type == default_token
                    and (s.metadata.annotations or {}).get("kubernetes.io/service-account.name")
                    == "default"
                )
            ]

        # The fma-certs Secrets go with their owner, the Service; Helm's release record too.
        eventually("the certificate Secrets garbage-collected", lambda: not secrets_left())
        core.api_client.close()
