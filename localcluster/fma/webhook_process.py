"""The webhook on the local cluster: a real `fma-webhook serve` process over TLS, registered with
the control plane by `fma-webhook register` (end-to-end tests, the demo).

Everything cluster-scoped that this creates (the two webhook configurations, the ClusterRole and
its binding) is named uniquely and deleted on exit: a configuration left behind with
`failurePolicy: Fail` would refuse every custom-resource write of the tests that follow.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import yaml
from kubernetes.client.rest import ApiException

from contract import auth
from localcluster.binaries import k8s_binary
from localcluster.controlplane import LocalCluster
from localcluster.fma.controller_process import issue_control_credential
from localcluster.processes import ManagedProcess, free_port, wait_until

CONTROLLERS_ACCOUNT = "fma-fma-controllers"
WEBHOOK_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["replicasets", "statefulsets"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["fma.llm-d.ai"],
        "resources": ["inferenceserverconfigs", "launcherconfigs"],
        "verbs": ["list", "watch"],
    },
]


def kubectl_as(
    kubeconfig: Path, *args: str, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl as the identity of `kubeconfig`; the caller checks the outcome."""
    return subprocess.run(
        [str(k8s_binary("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=input_text,
        check=False,
        timeout=60,
    )


def token_kubeconfig(cluster: LocalCluster, path: Path, token: str) -> Path:
    """A kubeconfig authenticating with a bearer token (a ServiceAccount's)."""
    source = yaml.safe_load(cluster.kubeconfig.read_text())
    source["users"] = [{"name": "token", "user": {"token": token}}]
    source["contexts"][0]["context"]["user"] = "token"
    path.write_text(yaml.safe_dump(source))
    path.chmod(0o600)
    return path


class Webhook:
    """One webhook process and its registration, for the lifetime of a test module."""

    def __init__(
        self,
        cluster: LocalCluster,
        workdir: Path,
        *,
        control_dir: Path | None = None,
        extra_controllers: tuple[str, ...] = (),
    ) -> None:
        """`control_dir`: the controllers' control credential (default: one of its own, made
        on start); the webhook reads only its CA bundle, as the chart mounts only that key.
        `extra_controllers`: more usernames allowed to write controller-owned Pod fields (the
        chart's `webhook.extraControllerUsernames`)."""
        self.extra_controllers = extra_controllers
        self.cluster = cluster
        self.workdir = workdir
        self.control_dir = control_dir or workdir / "control"
        self.api = cluster.api_client()
        self.suffix = secrets.token_hex(3)
        self.namespace = f"fma-system-{self.suffix}"
        self.name = f"fma-webhook-e2e-{self.suffix}"
        self.controller_username = f"system:serviceaccount:{self.namespace}:{CONTROLLERS_ACCOUNT}"
        self.port = free_port()
        self.certs = workdir / "certs"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # ----- set-up ---------------------------------------------------------------------------

    def start(self) -> None:
        core = kubernetes.client.CoreV1Api(self.api)
        core.create_namespace({"metadata": {"name": self.namespace}})
        core.create_namespaced_service_account(
            self.namespace, {"metadata": {"name": CONTROLLERS_ACCOUNT}}
        )
        self._make_certificates()
        self.process = ManagedProcess(
            "fma-webhook", self._serve_argv(), log_path=self.workdir / "fma-webhook.log"
        )
        self.process.start()
        self.wait_ready()
        self._register()

    def _make_certificates(self) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "certs.cli",
                "create",
                f"--dir={self.certs}",
                "--dns-name=localhost",
                "--ip-address=127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _serve_argv(self) -> list[str]:
        """The webhook runs as a ServiceAccount-like user holding only the RBAC it needs."""
        user = f"system:serviceaccount:{self.namespace}:fma-webhook"
        rbac = kubernetes.client.RbacAuthorizationV1Api(self.api)
        rbac.create_cluster_role({"metadata": {"name": self.name}, "rules": WEBHOOK_RULES})
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": self.name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.name,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
        kubeconfig = self.cluster.kubeconfig_for(user, ("system:serviceaccounts",))
        return [
            sys.executable,
            "-m",
            "webhook.cli",
            "serve",
            f"--tls-cert={self.certs / 'tls.crt'}",
            f"--tls-key={self.certs / 'tls.key'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={self.namespace}",
            "--requester-image=ghcr.io/llm-d/fma:e2e",
            f"--controller-username={self.controller_username}",
            *(f"--controller-username={user}" for user in self.extra_controllers),
            "--cert-reload-interval=0.5",
            f"--control-trust-file={issue_control_credential(self.control_dir) / auth.CA_FILE}",
        ]

    def _register(self) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "webhook.cli",
                "register",
                f"--ca-bundle={self.certs / 'ca.crt'}",
                f"--url={self.url}",
                f"--name={self.name}",
                f"--webhook-namespace={self.namespace}",
                f"--kubeconfig={self.cluster.kubeconfig}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    # ----- while running ----------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        return httpx.Client(base_url=self.url, verify=verify, timeout=5)

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError), self._client() as client:
            return client.get("/readyz").status_code == 200
        return False

    def wait_ready(self) -> None:
        wait_until("fma-webhook /readyz", self.ready, timeout=60, process=self.process)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the running server's /metrics (0 when absent)."""
        with self._client() as client:
            text = client.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The webhook process is down inside the block, and back (ready) after it."""
        assert self.process is not None
        self.process.stop(grace_seconds=10)
        try:
            yield
        finally:
            self.process.start()
            self.wait_ready()

    def controller_kubeconfig(self) -> Path:
        """A kubeconfig with the controllers' ServiceAccount token (from its token Secret)."""
        core = kubernetes.client.CoreV1Api(self.api)

        def token_secret() -> bool:
            account = core.read_namespaced_service_account(CONTROLLERS_ACCOUNT, self.namespace)
            return bool(account.secrets)

        wait_until("the controllers' ServiceAccount token", token_secret, timeout=30, interval=0.2)
        account = core.read_namespaced_service_account(CONTROLLERS_ACCOUNT, self.namespace)
        secret = core.read_namespaced_secret(account.secrets[0].name, self.namespace)
        token = base64.b64decode(secret.data["token"]).decode()
        return token_kubeconfig(self.cluster, self.workdir / "controllers.kubeconfig", token)

    # ----- tear-down ----------------------------------------------------------------------------

    def close(self) -> None:
        admission = kubernetes.client.AdmissionregistrationV1Api(self.api)
        rbac = kubernetes.client.RbacAuthorizationV1Api(self.api)
        for delete in (
            admission.delete_mutating_webhook_configuration,
            admission.delete_validating_webhook_configuration,
            rbac.delete_cluster_role_binding,
            rbac.delete_cluster_role,
        ):
            with contextlib.suppress(ApiException):
                delete(self.name)
        if self.process is not None:
            self.process.stop(grace_seconds=10)
        with contextlib.suppress(ApiException):
            kubernetes.client.CoreV1Api(self.api).delete_namespace(self.namespace)
        self.api.close()


def apply_json(
    kubeconfig: Path, namespace: str, obj: dict[str, Any], *verb: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl <verb> -f -` of one object as the identity of `kubeconfig`."""
    return kubectl_as(
        kubeconfig,
        *(verb or ("apply",)),
        "-n",
        namespace,
        "-o",
        "json",
        "-f",
        "-",
        input_text=json.dumps(obj),
    )
