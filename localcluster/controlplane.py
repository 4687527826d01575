"""A real Kubernetes v1.20 control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler.

Why real binaries rather than a fake API: resourceVersion conflicts, watches, finalizers, garbage
collection, admission webhooks and schema validation are where controllers break, and only the
real apiserver behaves like the real apiserver. Everything listens on 127.0.0.1 with TLS; every
identity authenticates with a client certificate from the cluster's own CA and is authorized by
RBAC, so permission mistakes show up here as they would in production.

Each cluster also reserves a /16 inside 127.0.0.0/8 for its node and Pod addresses (see
`pod_network`), guarded by a lock file so that two clusters on one machine never hand out the
same loopback address.

On request (`kube_proxy=`) the cluster also runs real kube-proxy, so that NodePort Services
answer on `127.0.0.1:<nodePort>` (see `localcluster.kubeproxy`); that needs a private network
namespace (`hack/in-netns.sh`), so it is off unless asked for.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import logging
import os
import random
import ssl
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal, Self

import httpx
import kubernetes.client
import kubernetes.config

from certs.authority import CertificateAuthority, KeyPair
from localcluster.binaries import etcd_binary, k8s_binary
from localcluster.kubeconfig import write_kubeconfig
from localcluster.kubeproxy import KubeProxy, KubeProxySettings, KubeProxyUnavailableError
from localcluster.processes import ManagedProcess, free_port, wait_until

_log = logging.getLogger(__name__)

SERVICE_CIDR: Final = "10.0.0.0/24"
# Controllers the local cluster cannot run: there is no cloud, no node IPAM, no volumes, and the
# hollow kubelet itself reports node health (so the node-lifecycle controller must not evict).
_DISABLED_CONTROLLERS: Final = (
    "nodeipam",
    "nodelifecycle",
    "cloud-node-lifecycle",
    "attachdetach",
    "persistentvolume-binder",
    "persistentvolume-expander",
    "route",
    "service",
)
_LOCK_DIR: Final = Path("/tmp/fma-localcluster-locks")
START_TIMEOUT_S: Final = 60.0
# kube-proxy's `--hostname-override` when none is given: a name no node has, so only
# `externalTrafficPolicy: Local` Services notice (they get no local endpoints).
DEFAULT_PROXY_NODE: Final = "fma-kube-proxy"
KubeProxyMode = bool | Literal["auto"]


class _NetworkLease:
    """An exclusive /16 of 127.0.0.0/8, held with flock for as long as the cluster runs."""

    def __init__(self) -> None:
        _LOCK_DIR.mkdir(parents=True, exist_ok=True)
        octets = list(range(16, 255))
        random.shuffle(octets)
        for octet in octets:
            handle = (_LOCK_DIR / f"net-127.{octet}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self._handle: IO[str] | None = handle
            self.network = ipaddress.IPv4Network(f"127.{octet}.0.0/16")
            return
        raise RuntimeError(f"no free /16 in 127.0.0.0/8: every lock under {_LOCK_DIR} is held")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class LocalCluster:
    """Starts, and always stops, the control-plane processes of one cluster under `workdir`.

    Use it as a context manager, or call `start` and `stop`. `stop` is idempotent and stops the
    processes in the safe order (clients before the apiserver, the apiserver before etcd).

    `kube_proxy`: False (default) runs none; True runs kube-proxy and fails to start where it
    cannot run (outside a private network namespace, without iptables, or when another cluster
    in this namespace runs one); "auto" runs it where it can and otherwise records why not in
    `kube_proxy_skip_reason`. `kube_proxy_node` is its `--hostname-override` (the node whose
    Pods count as local for `externalTrafficPolicy: Local`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        controller_manager: bool = True,
        scheduler: bool = True,
        extra_apiserver_args: tuple[str, ...] = (),
        kube_proxy: KubeProxyMode = False,
        kube_proxy_node: str = DEFAULT_PROXY_NODE,
    ) -> None:
        self.workdir = workdir.resolve()
        self._want_controller_manager = controller_manager
        self._want_scheduler = scheduler
        self._extra_apiserver_args = extra_apiserver_args
        self._kube_proxy_mode = kube_proxy
        self._kube_proxy_node = kube_proxy_node
        self._processes: list[ManagedProcess] = []
        self._network: _NetworkLease | None = None
        self.ca: CertificateAuthority | None = None
        self.apiserver_port = 0
        self.kube_proxy: KubeProxy | None = None
        """The running kube-proxy (None when the cluster runs none)."""
        self.kube_proxy_skip_reason: str | None = (
            None if kube_proxy else "kube-proxy was not requested (LocalCluster(kube_proxy=...))"
        )

    # ----- public facts about the running cluster -------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user `admin`, group `system:masters`)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def pod_network(self) -> ipaddress.IPv4Network:
        if self._network is None:
            raise RuntimeError("the cluster is not started")
        return self._network.network

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def api_client(self) -> kubernetes.client.ApiClient:
        """A fresh official-client ApiClient authenticated as admin."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for any identity, authenticated by a client certificate of our CA.

        RBAC then decides what that identity may do, exactly as on a real cluster.
        """
        if self.ca is None:
            raise RuntimeError("the cluster is not started")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        path = self.workdir / "kubeconfigs" / f"{safe}.kubeconfig"
        write_kubeconfig(path, self.server, self.ca.cert_pem, self.ca.issue_client(user, groups))
        return path

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        """Runs the kubectl built with the cluster against it, as admin; returns stdout."""
        result = subprocess.run(
            [str(k8s_binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input_text,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result.stdout

    # ----- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._network = _NetworkLease()
            self._claim_kube_proxy()  # before anything starts: its refusal is the cheap one
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_clients()
            if self.kube_proxy is not None:
                self.kube_proxy.start(self.kubeconfig_for("system:kube-proxy"))
        except BaseException:
            self.stop()
            raise
        _log.info(
            "local cluster ready at %s in %.1fs (kubeconfig %s)",
            self.server,
            time.monotonic() - started,
            self.kubeconfig,
        )

    def stop(self) -> None:
        # Reverse start order: kube-proxy and the controllers, then the apiserver, then etcd.
        # Stopping the apiserver and etcd at once would make the apiserver retry etcd for ~35 s.
        if self.kube_proxy is not None:
            self.kube_proxy.stop()
            self.kube_proxy = None
        while self._processes:
            process = self._processes.pop()
            process.stop(grace_seconds=10.0)
        if self._network is not None:
            self._network.release()
            self._network = None

    # ----- steps -------------------------------------------------------------------------

    def _claim_kube_proxy(self) -> None:
        """Takes this namespace's kube-proxy claim when asked to; "auto" records a refusal."""
        if not self._kube_proxy_mode:
            return
        settings = KubeProxySettings(
            cluster_cidr=self.pod_network, hostname=self._kube_proxy_node, log_dir=self.log_dir
        )
        proxy = KubeProxy(settings)
        try:
            proxy.claim()
        except KubeProxyUnavailableError as exc:
            if self._kube_proxy_mode is True:
                raise
            self.kube_proxy_skip_reason = str(exc)
            _log.info("no kube-proxy in this cluster: %s", exc)
            return
        self.kube_proxy = proxy
        self.kube_proxy_skip_reason = None

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority.create("fma-localcluster-ca")
        serving = self.ca.issue_serving(
            [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ["127.0.0.1", "10.0.0.1"],
        )
        # Service-account tokens are signed with a key of their own, as on a real cluster.
        sa = CertificateAuthority.create("fma-localcluster-service-accounts").keypair
        files = {
            "ca.crt": self.ca.cert_pem,
            "ca.key": self.ca.keypair.key_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "sa.key": sa.key_pem,
            "sa.pub": _public_pem(sa),
        }
        for name, data in files.items():
            (pki / name).write_bytes(data)
            (pki / name).chmod(0o600)
        admin = self.ca.issue_client("admin", ("system:masters",))
        (pki / "admin.pem").write_bytes(admin.cert_pem + admin.key_pem)
        (pki / "admin.pem").chmod(0o600)
        self.apiserver_port = free_port()
        write_kubeconfig(self.kubeconfig, self.server, self.ca.cert_pem, admin)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path=self.log_dir / f"{name}.log")
        process.start()
        self._processes.append(process)
        return process

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        process = self._spawn(
            "etcd",
            [
                str(etcd_binary()),
                f"--data-dir={data}",
                "--name=fma-localcluster",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=fma-localcluster=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_until(
            "etcd /health",
            lambda: _http_ok(f"{self._etcd_url}/health"),
            timeout=START_TIMEOUT_S,
            process=process,
        )

    def _start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        process = self._spawn(
            "kube-apiserver",
            [
                str(k8s_binary("kube-apiserver")),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                "--insecure-port=0",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # Loopback addresses are not valid Endpoints; nothing here needs that Service.
                "--endpoint-reconciler-type=none",
                # `kubectl logs` reaches the hollow kubelet at the node's InternalIP.
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
                *self._extra_apiserver_args,
            ],
        )
        wait_until(
            "kube-apiserver /readyz",
            self._apiserver_ready,
            timeout=START_TIMEOUT_S,
            interval=0.2,
            process=process,
        )

    def _apiserver_ready(self) -> bool:
        pki = self.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.pem"))
        return _http_ok(f"{self.server}/readyz", verify=ctx)

    def _start_clients(self) -> None:
        pki = self.workdir / "pki"
        waits: list[tuple[str, int, ManagedProcess]] = []
        if self._want_controller_manager:
            kubeconfig = self.kubeconfig_for("system:kube-controller-manager")
            port = free_port()
            process = self._spawn(
                "kube-controller-manager",
                [
                    str(k8s_binary("kube-controller-manager")),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={port}",
                    "--port=0",
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--controllers=*," + ",".join(f"-{c}" for c in _DISABLED_CONTROLLERS),
                    # Pods on a node the hollow kubelet removed are collected promptly.
                    "--terminated-pod-gc-threshold=100",
                ],
            )
            waits.append(("kube-controller-manager /healthz", port, process))
        if self._want_scheduler:
            kubeconfig = self.kubeconfig_for("system:kube-scheduler")
            port = free_port()
            process = self._spawn(
                "kube-scheduler",
                [
                    str(k8s_binary("kube-scheduler")),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={port}",
                    "--port=0",
                    "--leader-elect=false",
                ],
            )
            waits.append(("kube-scheduler /healthz", port, process))
        for name, port, process in waits:
            wait_until(
                name,
                functools.partial(_http_ok, f"https://127.0.0.1:{port}/healthz", verify=False),
                timeout=START_TIMEOUT_S,
                interval=0.2,
                process=process,
            )


def _public_pem(keypair: KeyPair) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return keypair.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _http_ok(url: str, *, verify: ssl.SSLContext | bool = True) -> bool:
    with contextlib.suppress(httpx.HTTPError, OSError):
        return httpx.get(url, verify=verify, timeout=2.0).status_code == 200
    return False


def default_workdir(name: str = "localcluster") -> Path:
    """A per-user scratch directory for clusters started by hand (CLI, demo)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return base / f"fma-{name}-{os.getpid()}"
