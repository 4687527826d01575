"""The apiserver for Pods of the real node, as a cluster gives it: `kubernetes.default.svc`.

Why this is needed: every in-cluster client (fma's webhook, controller, certificate Jobs and
launchers, anything calling `load_incluster_config`) dials `KUBERNETES_SERVICE_HOST`, the
ClusterIP of Service `default/kubernetes` (10.0.0.1:443). The local apiserver listens on
127.0.0.1 only, which inside a Pod is the Pod's own loopback, and it runs with
`--endpoint-reconciler-type=none` (a loopback address is not a valid Endpoints address), so the
Service has no endpoints and the ClusterIP leads nowhere.

`InClusterApiserver` closes that gap the way a node would see it, without touching the control
plane's flags:

- a TCP relay listens on the node's bridge address (the Pods' gateway, in their subnet) on a
  free port and forwards each connection, bytes unchanged, to the apiserver on 127.0.0.1. TLS
  stays end to end: the apiserver's serving certificate already names 10.0.0.1 and
  `kubernetes.default.svc`, so the Pod's ServiceAccount CA and token work as on a real cluster,
  and RBAC applies to them;
- an EndpointSlice of Service `default/kubernetes` names that address and port, so kube-proxy
  DNATs 10.0.0.1:443 to the relay. The slice carries a `managed-by` of its own: neither the
  EndpointSlice controller (the Service has no selector) nor the mirroring controller (there is
  no Endpoints object) touches it.

Pods also need a route to the Service CIDR: the node's CNI configuration gives them only the Pod
subnet (host-local IPAM without `routes`), so a connection to any ClusterIP fails in the Pod with
"Network is unreachable". `ServiceRoutedNode` is a `RealNode` whose CNI configuration adds a
route for the Service CIDR through the bridge (the Pods' gateway, in the private namespace where
kube-proxy's rules DNAT it); nothing else changes, and as before no route leads out of the
machine.

The relay is threads in this process (a few long-lived watch connections, not a data path), and
nothing listens beyond the private network namespace the real node lives in. `close` deletes the
slice and ends every relayed connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from localcluster.controlplane import SERVICE_CIDR
from localcluster.realnode.node import RealNode

if TYPE_CHECKING:
    from localcluster.controlplane import LocalCluster

_log = logging.getLogger(__name__)

SLICE_NAME: Final = "kubernetes-fma-realnode"
MANAGED_BY: Final = "realnode.fma.llm-d.ai"
_CHUNK: Final = 65536


class ServiceRoutedNode(RealNode):
    """A real node whose Pods can reach ClusterIPs (see the module docstring)."""

    def _make_network(self) -> None:
        super()._make_network()
        for conflist in (self.workdir / "cni" / "net.d").glob("*.conflist"):
            config = json.loads(conflist.read_text())
            for plugin in config["plugins"]:
                if plugin.get("type") == "bridge":
                    plugin["ipam"].setdefault("routes", []).append({"dst": SERVICE_CIDR})
            conflist.write_text(json.dumps(config, indent=2))


class TcpRelay:
    """Forwards every connection accepted on `listen` to `target`, both directions, until
    `close`. Each connection costs two threads; `close` shuts every socket down."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self._server.settimeout(0.5)  # so the accept loop sees `close` promptly
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.connections = 0
        """Connections accepted so far (a test can tell that Pods used the relay)."""
        self._acceptor = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError as exc:
                _log.warning("relay: cannot reach %s: %s", self.target, exc)
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._open.update((client, upstream))
            finished: list[bool] = []
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, finished), name="relay-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, finished: list[bool]) -> None:
        """Copies `src` to `dst` until `src` ends, then half-closes `dst` (TLS close_notify and
        HTTP need the other direction to go on); the second pump of a pair to finish closes
        both sockets."""
        with contextlib.suppress(OSError):
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with self._lock:
            finished.append(True)
            if len(finished) == 2:  # the other pump is done too
                for sock in (src, dst):
                    self._open.discard(sock)
                    sock.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()


class InClusterApiserver:
    """Makes `kubernetes.default.svc` (10.0.0.1:443) reach `cluster`'s apiserver from Pods of
    a real node whose bridge address is `node_ip` (see the module docstring)."""

    def __init__(self, cluster: LocalCluster, node_ip: str) -> None:
        self.cluster = cluster
        self.node_ip = node_ip
        self.relay: TcpRelay | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self.relay = TcpRelay((self.node_ip, 0), ("127.0.0.1", self.cluster.apiserver_port))
        try:
            self.cluster.kubectl("apply", "-f", "-", input_text=json.dumps(self.endpoint_slice()))
        except subprocess.CalledProcessError as exc:
            self.close()
            raise RuntimeError(f"creating the EndpointSlice: {exc.stderr.strip()}") from exc
        except BaseException:
            self.close()
            raise

    def endpoint_slice(self) -> dict[str, object]:
        """The EndpointSlice of Service `default/kubernetes` pointing at the relay
        (`discovery.k8s.io/v1beta1`, the version Kubernetes 1.20 serves and kube-proxy reads)."""
        assert self.relay is not None
        return {
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": SLICE_NAME,
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.node_ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": self.relay.address[1], "protocol": "TCP"}],
        }

    def close(self) -> None:
        """Deletes the slice (kube-proxy drops the rule) and stops the relay; idempotent."""
        if self.relay is None:
            return
        self.cluster.kubectl(
            "delete", "endpointslices.discovery.k8s.io", SLICE_NAME, "-n", "default",
            "--ignore-not-found", check=False,
        )  # fmt: skip
        self.relay.close()
        self.relay = None
