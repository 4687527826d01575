"""Real kube-proxy (iptables mode) for a local cluster, so that Services work as on a node.

A NodePort Service is reached at `127.0.0.1:<nodePort>`: kube-proxy's rules in the `nat` OUTPUT
chain (locally generated traffic) DNAT it to a ready Pod's loopback address, picked at random
among the Service's EndpointSlice endpoints, exactly as on a real node. What it takes on one
machine:

- a private network namespace (see `localcluster.netns`): kube-proxy rewrites the namespace's
  iptables tables, so it is refused in the machine's own namespace, and only one cluster per
  namespace may run it;
- `--nodeport-addresses=127.0.0.0/8`, so NodePorts exist on loopback only; kube-proxy then sets
  `route_localnet` (per namespace) so that loopback traffic may be DNATed;
- a *masquerade source*: kube-proxy masquerades NodePort traffic, and MASQUERADE picks the source
  from the outgoing interface's addresses of global scope. `lo` has none (127.0.0.1/8 is
  host-scoped), so the kernel would drop every packet ("lo ate my IP address"). The cluster adds
  the first address of its pod network (127.C.0.1, no node's or Pod's) to `lo` with global
  scope; Pods then see NodePort clients come from it, as they would see a node's address;
- conntrack flags that leave sysctls alone: `nf_conntrack_max` is read-only outside the initial
  namespace (kube-proxy exits on it) and the hash size is host-wide;
- a guard against kube-proxy's *port holders*: it listens on every NodePort (so that no other
  program takes the port) but never accepts. A connection that reaches 127.0.0.1:<nodePort>
  without being DNATed (seen here while a Service's first endpoint is being written: neither the
  "no endpoints" REJECT nor the DNAT caught the SYN) completes its handshake in that backlog and
  hangs until the client times out. The cluster adds one rule to the namespace's `INPUT` chain
  that resets such connections (`--dport` in the NodePort range, not DNATed), so a client sees
  "connection refused", as with no endpoints, and retries;
- on stop, `kube-proxy --cleanup` and then a sweep of whatever KUBE- chains it keeps
  (`localcluster.iptables`), so the namespace ends as it began.

Its identity is the client certificate `system:kube-proxy`, which the apiserver's bootstrap RBAC
binds to the ClusterRole `system:node-proxier`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from localcluster import iptables
from localcluster.binaries import k8s_binary
from localcluster.netns import NamespaceClaim, NetnsError, require_private_namespace
from localcluster.processes import ManagedProcess, free_port, wait_until

_log = logging.getLogger(__name__)

USER: Final = "system:kube-proxy"
NODEPORT_ADDRESSES: Final = "127.0.0.0/8"
START_TIMEOUT_S: Final = 60.0
_SYNC_METRIC: Final = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
NODE_PORT_RANGE: Final = "30000:32767"
"""The apiserver's default `--service-node-port-range`, in iptables' notation."""
_GUARD_RULE: Final = (
    "INPUT", "-p", "tcp", "--dport", NODE_PORT_RANGE,
    "-m", "conntrack", "!", "--ctstate", "DNAT",
    "-m", "comment", "--comment", "fma: a NodePort connection kube-proxy did not DNAT",
    "-j", "REJECT", "--reject-with", "tcp-reset",
)  # fmt: skip


class KubeProxyUnavailableError(RuntimeError):
    """kube-proxy cannot run here: the namespace, a missing tool, or another cluster has it.

    The message says why and what to do. `LocalCluster(kube_proxy="auto")` records it instead
    of failing."""


@dataclass(frozen=True)
class KubeProxySettings:
    """What kube-proxy needs from its cluster."""

    cluster_cidr: ipaddress.IPv4Network
    hostname: str
    log_dir: Path

    @property
    def masquerade_source(self) -> str:
        return str(self.cluster_cidr[1])


def check_available() -> None:
    """Raises `KubeProxyUnavailableError` naming the fix unless kube-proxy can run here."""
    try:
        require_private_namespace("kube-proxy")
    except NetnsError as exc:
        raise KubeProxyUnavailableError(str(exc)) from None
    missing = iptables.missing_tools()
    if missing:
        raise KubeProxyUnavailableError(
            f"kube-proxy needs {', '.join(missing)}: install Debian's `iptables` package "
            "(`bash hack/setup.sh` does)"
        )


class KubeProxy:
    """One kube-proxy process and everything it changed in the namespace.

    `claim` (cheap, done before the control plane starts) checks the namespace and takes the
    per-namespace claim; `start` runs kube-proxy once the apiserver serves; `stop` undoes it all
    and is safe to call at any point, twice included.
    """

    def __init__(self, settings: KubeProxySettings) -> None:
        self.settings = settings
        self._claim = NamespaceClaim("kube-proxy")
        self._process: ManagedProcess | None = None
        self.healthz_port = 0
        self.metrics_port = 0

    @property
    def log_path(self) -> Path:
        return self.settings.log_dir / "kube-proxy.log"

    def claim(self) -> None:
        check_available()
        try:
            self._claim.acquire()
        except NetnsError as exc:
            raise KubeProxyUnavailableError(str(exc)) from None
        # We own the namespace's rules now: any KUBE- chain is a leftover of a killed run.
        self._sweep()

    def start(self, kubeconfig: Path) -> None:
        """Runs kube-proxy as the identity in `kubeconfig`; returns after its first sync."""
        if not self._claim.held:
            self.claim()
        binary = k8s_binary("kube-proxy")  # before changing anything: a clear error if unbuilt
        self._add_masquerade_source()
        self._iptables("-I", *_GUARD_RULE)
        self.healthz_port, self.metrics_port = free_port(), free_port()
        env = {**os.environ, "PATH": iptables.tool_path()}
        self._process = ManagedProcess(
            "kube-proxy", [str(binary), *self._args(kubeconfig)], log_path=self.log_path, env=env
        )
        self._process.start()
        wait_until(
            "kube-proxy's first iptables sync",
            self._synced,
            timeout=START_TIMEOUT_S,
            interval=0.2,
            process=self._process,
        )

    def _args(self, kubeconfig: Path) -> list[str]:
        s = self.settings
        return [
            f"--kubeconfig={kubeconfig}",
            "--proxy-mode=iptables",
            f"--hostname-override={s.hostname}",
            "--bind-address=127.0.0.1",  # the node IP; also spares a Node lookup at start
            f"--cluster-cidr={s.cluster_cidr}",
            f"--nodeport-addresses={NODEPORT_ADDRESSES}",
            f"--healthz-bind-address=127.0.0.1:{self.healthz_port}",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            # Leave every conntrack sysctl as it is (see the module docstring).
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--oom-score-adj=0",  # like the other components (kube-proxy's default is -999)
            "--profiling=false",
            "--v=2",  # logs each rules sync: what a failing Service test needs
        ]

    def _synced(self) -> bool:
        """True once kube-proxy has written its rules at least once (its metric says when)."""
        with contextlib.suppress(httpx.HTTPError, OSError):
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
            for line in text.splitlines():
                if line.startswith(_SYNC_METRIC + " "):
                    return float(line.split()[1]) > 0
        return False

    def stop(self) -> None:
        """Stops kube-proxy, removes its rules and the address it needed, frees the claim."""
        if self._process is not None:
            self._process.stop(grace_seconds=10.0)
            self._process = None
        if self._claim.held:
            self._run_cleanup()
            self._sweep()
            self._iptables("-D", *_GUARD_RULE)
            self._remove_masquerade_source()
            self._claim.release()

    # ----- what kube-proxy changes besides its own process ----------------------------------

    def _ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        ip = iptables.find_tool("ip") or "ip"
        return subprocess.run([ip, *args], capture_output=True, text=True, check=False, timeout=10)

    def _iptables(self, *args: str) -> None:
        """One `iptables` change; a failure is logged (the guard is a help, not a need)."""
        tool = iptables.find_tool("iptables") or "iptables"
        result = subprocess.run(
            [tool, "-w", *args], capture_output=True, text=True, check=False, timeout=30
        )
        if result.returncode != 0:
            _log.warning("iptables %s failed: %s", " ".join(args[:2]), result.stderr.strip())

    def _add_masquerade_source(self) -> None:
        address = f"{self.settings.masquerade_source}/32"
        result = self._ip("addr", "add", address, "dev", "lo", "scope", "global")
        if result.returncode != 0 and "File exists" not in result.stderr:  # a killed run's
            raise RuntimeError(f"ip addr add {address} dev lo failed: {result.stderr.strip()}")

    def _remove_masquerade_source(self) -> None:
        """Removes the address (ours: we hold the namespace's claim); absent is fine."""
        self._ip("addr", "del", f"{self.settings.masquerade_source}/32", "dev", "lo")

    def _sweep(self) -> None:
        """Removes every KUBE- chain of the namespace; never raises, since it runs while
        stopping (what remains is logged)."""
        try:
            for family in iptables.FAMILIES:
                iptables.sweep(family)
            left = iptables.leftovers()
        except (OSError, subprocess.SubprocessError) as exc:
            _log.error("removing kube-proxy's chains failed: %s", exc)
            return
        if left:
            _log.error("kube-proxy chains left in this network namespace: %s", left)

    def _run_cleanup(self) -> None:
        """kube-proxy's own teardown of its rules (`--cleanup`), logged next to its log."""
        log = self.settings.log_dir / "kube-proxy-cleanup.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            binary = k8s_binary("kube-proxy")
        except FileNotFoundError:
            return  # nothing can have run; the sweep still checks
        # Its exit code is 1 without the `ipset` tool (its IPVS part); the iptables part, the
        # one that matters here, is checked by the sweep that follows.
        with log.open("ab") as out, contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [str(binary), "--cleanup"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": iptables.tool_path()},
                check=False,
                timeout=60,
            )
