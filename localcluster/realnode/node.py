"""A real Kubernetes node joined to a `LocalCluster`: kubelet, containerd, runc, CNI, kube-proxy.

What runs, all as children of this process:

- a *holder* (`unshare --mount --cgroup --pid --fork --kill-child`, then `sleep` as the PID
  namespace's init): a private mount namespace with fresh tmpfs on /run, /var/lib and /var/log,
  and the cgroup hierarchies mounted again inside a cgroup namespace rooted at this process's
  own cgroups. containerd, the kubelet, the device plugin and every container live in it
  (`nsenter`), so the paths the kubelet 1.20 and containerd 1.6 hard-code
  (/var/lib/kubelet/device-plugins, /var/log/pods, /run/containerd/s, /run/netns) and every
  mount they make vanish with it, containers' cgroups nest under ours, and when the holder dies
  (stop, or this process killed: `PR_SET_PDEATHSIG`) the kernel kills every process of the PID
  namespace, containerd's shims and the containers included, which otherwise outlive
  containerd by design. The kernel tunables the kubelet would set machine-wide
  (vm.overcommit_memory, kernel.panic, ...) are bind-mounted files holding the values it wants,
  so it writes none;
- containerd (its own config, root, state and socket under the work directory) with runc, the
  CRI plugin and the CNI bridge, host-local, portmap and loopback plugins;
- the kubelet (`--container-runtime=remote`), authenticated as `system:node:<name>`;
- `fma-fake-gpu-plugin`, a device plugin (v1beta1) advertising `nvidia.com/gpu` and setting
  `NVIDIA_VISIBLE_DEVICES` on allocation as NVIDIA's plugin does;
- kube-proxy: the cluster's own when it runs one in this namespace, else one of the node's.

The network is the private one this process runs in (`hack/in-netns.sh`): a bridge with the Pod
CIDR's gateway address (also the node IP, which the kubelet refuses to be loopback), a route
for the Service CIDR through it (so ClusterIPs, DNATed by kube-proxy, are reachable from here),
and no default route. `stop` deletes the Pods, stops everything, and removes what is left: the
processes in the mount namespace, the bridge and its veths, CNI chains, cgroups.

Any failure to start is a `NodeUnavailableError` whose message is the exact reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import kubernetes.client
from kubernetes.client.rest import ApiException

from localcluster import iptables
from localcluster.binaries import BUILD_SCRIPT, k8s_binary
from localcluster.kubeproxy import KubeProxy, KubeProxySettings, KubeProxyUnavailableError
from localcluster.netns import NamespaceClaim, NetnsError
from localcluster.processes import ManagedProcess, free_port, wait_until
from localcluster.realnode import host, oci
from localcluster.realnode.host import NodeUnavailableError

if TYPE_CHECKING:
    from localcluster.controlplane import LocalCluster

_log = logging.getLogger(__name__)

PAUSE_IMAGE: Final = "fma.local/pause:1"
"""The sandbox image: busybox `sleep`, imported locally (no registry is reachable)."""
GPU_RESOURCE: Final = "nvidia.com/gpu"
_NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
REAL_NODE_KEY: Final = "fma.llm-d.ai/real-node"
"""The label (and taint) key of a real node."""
DEVICE_PLUGIN_SCRIPT: Final = Path(__file__).with_name("build-device-plugin.sh")
START_TIMEOUT_S: Final = 120.0
# What the kubelet 1.20 sets machine-wide unless --protect-kernel-defaults (which then refuses
# to start when they differ): the node's mount namespace shows it files with these values.
KERNEL_TUNABLES: Final = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class RealNodeSettings:
    name: str = "real-node-1"
    gpus: int = 2
    pod_cidr: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network("10.88.0.0/24")
    )
    bridge: str = "fmacni0"
    images: tuple[Path, ...] = ()
    """OCI (or docker) archives imported into containerd's `k8s.io` namespace at start."""
    labels: tuple[tuple[str, str], ...] = ((REAL_NODE_KEY, "true"),)
    taints: tuple[str, ...] = (f"{REAL_NODE_KEY}=true:NoSchedule",)
    """Registered with the node, so that only Pods that tolerate it land here (not the Pending
    Pods other tests of the session leave behind)."""

    @property
    def node_ip(self) -> str:
        return str(self.pod_cidr[1])


class RealNode:
    """Starts, and always stops, one real node of `cluster` under `workdir`.

    `start` raises `NodeUnavailableError` (after undoing what it did) when the node cannot run
    here; `stop` is idempotent. `timings` records how long each start phase took.
    """

    def __init__(
        self, cluster: LocalCluster, workdir: Path, settings: RealNodeSettings | None = None
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir.resolve()
        self.settings = settings or RealNodeSettings()
        self.snapshotter = "overlayfs"
        self.snapshotter_note = ""
        self.timings: dict[str, float] = {}
        self.kubelet_port = 0
        self._claim = NamespaceClaim("real-node")
        self._own_proxy: KubeProxy | None = None
        self._holder: ManagedProcess | None = None
        self._mnt_ns = ""
        self._processes: list[ManagedProcess] = []
        self._bridge_made = False
        self._node_registered = False

    # ----- facts ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "run" / "containerd.sock"

    @property
    def kube_proxy_log(self) -> Path | None:
        proxy = self._own_proxy or self.cluster.kube_proxy
        return proxy.log_path if proxy is not None else None

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
        began = time.monotonic()
        try:
            self._phase("checks", self._checks)
            self._phase("kube-proxy", self._ensure_kube_proxy)
            self._phase("network", self._make_network)
            self._phase("namespaces", self._start_holder)
            self._phase("snapshotter", self._pick_snapshotter)
            self._phase("containerd", self._start_containerd)
            self._phase("images", self._import_images)
            self._phase("kubelet", self._start_kubelet)
            self._phase("device plugin", self._start_device_plugin)
            self._phase("node ready", self._wait_ready)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, NodeUnavailableError | KeyboardInterrupt):
                raise
            raise NodeUnavailableError(f"the real node failed to start: {exc}") from exc
        self.timings["total"] = time.monotonic() - began
        _log.info(
            "real node %s ready in %.1fs (%s)", self.name, self.timings["total"], self.timings
        )

    def _phase(self, name: str, step: Any) -> None:
        began = time.monotonic()
        step()
        self.timings[name] = round(time.monotonic() - began, 2)

    # ----- start steps ---------------------------------------------------------------------

    def _checks(self) -> None:
        host.require_netns()
        host.require_root()
        try:
            self._claim.acquire()
        except NetnsError as exc:
            raise NodeUnavailableError(str(exc)) from None
        self._cgroups = host.cgroup_mounts()
        host.require_cgroups(self._cgroups)
        self._remove_cgroups()  # the empty ones a SIGKILLed run leaves (its processes are gone)
        host.ensure_packages()
        try:
            self._kubelet = k8s_binary("kubelet")
        except FileNotFoundError as exc:
            raise NodeUnavailableError(str(exc)) from None
        self._plugin = self._device_plugin_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        sock = str(self.containerd_socket)
        if len(sock) > 100:
            raise NodeUnavailableError(f"work directory too deep for a unix socket path: {sock}")

    def _device_plugin_binary(self) -> Path:
        result = subprocess.run(
            ["bash", str(DEVICE_PLUGIN_SCRIPT)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise NodeUnavailableError(
                f"building the fake GPU device plugin failed: {result.stderr.strip()[-800:]} "
                f"(it needs the source tree of `bash {BUILD_SCRIPT}`)"
            )
        return Path(result.stdout.strip().splitlines()[-1])

    def _ensure_kube_proxy(self) -> None:
        """The cluster's kube-proxy serves this namespace already, or the node starts one (before
        the bridge exists: kube-proxy refuses a namespace with interfaces but `lo`)."""
        if self.cluster.kube_proxy is not None:
            return
        proxy = KubeProxy(
            KubeProxySettings(
                cluster_cidr=self.cluster.pod_network, hostname=self.name, log_dir=self.log_dir
            )
        )
        try:
            proxy.claim()
        except KubeProxyUnavailableError as exc:
            raise NodeUnavailableError(f"kube-proxy cannot run: {exc}") from None
        self._own_proxy = proxy
        proxy.start(self.cluster.kubeconfig_for("system:kube-proxy"))

    def _ip(self, *args: str, check: bool = True) -> str:
        ip = iptables.find_tool("ip") or "ip"
        result = subprocess.run(
            [ip, *args], capture_output=True, text=True, check=False, timeout=30
        )
        if check and result.returncode != 0:
            raise NodeUnavailableError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
        return result.stdout

    def _make_network(self) -> None:
        s = self.settings
        if s.bridge in host_interfaces():
            raise NodeUnavailableError(f"interface {s.bridge} already exists in this namespace")
        self._bridge_made = True
        self._ip("link", "add", s.bridge, "type", "bridge")
        self._ip("addr", "add", f"{s.node_ip}/{s.pod_cidr.prefixlen}", "dev", s.bridge)
        self._ip("link", "set", s.bridge, "up")
        # ClusterIPs: routed to the bridge, so that kube-proxy's DNAT (nat OUTPUT) applies.
        from localcluster.controlplane import SERVICE_CIDR

        self._ip("route", "add", SERVICE_CIDR, "dev", s.bridge, "src", s.node_ip)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "fma-realnode",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": s.bridge,
                    "isGateway": True,
                    "ipMasq": False,  # nothing may leave: no masquerade, no default route out
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(s.pod_cidr), "gateway": s.node_ip}]],
                        "dataDir": "/var/lib/cni/networks",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        conf_dir = self.workdir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-fma-realnode.conflist").write_text(json.dumps(conflist, indent=2))

    def _start_holder(self) -> None:
        """The mount and cgroup namespaces every node process joins (see the module doc)."""
        sysctl_dir = self.workdir / "sysctl"
        sysctl_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "set -eu",
            "mount -t proc proc /proc",  # this PID namespace's processes
            "mount -t tmpfs -o mode=755 fma-run /run",
            "mount -t tmpfs -o mode=755 fma-varlib /var/lib",
            "mount -t tmpfs -o mode=755 fma-varlog /var/log",
            "mkdir -p /run/netns /var/lib/kubelet/device-plugins /var/lib/cni",
        ]
        for key, wanted in KERNEL_TUNABLES.items():
            proc = Path("/proc/sys") / key
            if proc.read_text().strip() == wanted:
                continue
            fake = sysctl_dir / key.replace("/", ".")
            fake.write_text(wanted + "\n")
            lines.append(f"mount --bind {shlex.quote(str(fake))} {proc}")
        lines.append("mount -t tmpfs -o mode=755 fma-cgroup /sys/fs/cgroup")
        for m in self._cgroups:
            target = shlex.quote(f"/sys/fs/cgroup/{m.directory}")
            lines.append(f"mkdir -p {target}")
            lines.append(f"mount -t {m.fstype} -o {shlex.quote(m.options)} {m.fstype} {target}")
        ready = self.workdir / "holder.ready"
        ready.unlink(missing_ok=True)
        lines += [f"touch {shlex.quote(str(ready))}", "exec sleep 2147483647"]
        script = "\n".join(lines)
        (self.workdir / "holder.sh").write_text(script + "\n")
        self._holder = ManagedProcess(
            "realnode-holder",
            [
                "unshare",
                "--mount",
                "--cgroup",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            log_path=self.log_dir / "holder.log",
        )
        self._holder.start()
        try:
            wait_until("the node's namespaces", ready.exists, timeout=20, process=self._holder)
        except RuntimeError as exc:
            raise NodeUnavailableError(
                f"could not set up the node's mount/cgroup namespaces: {exc}"
            ) from None
        pid = self._holder.pid
        self._mnt_ns = str(Path(f"/proc/{pid}/ns/mnt").readlink())

    def _nsenter(self, argv: Sequence[str]) -> list[str]:
        pid = self._holder.pid if self._holder else None
        return [
            "nsenter",
            f"--mount=/proc/{pid}/ns/mnt",
            f"--cgroup=/proc/{pid}/ns/cgroup",
            f"--pid=/proc/{pid}/ns/pid_for_children",
            "--",
            *argv,
        ]

    def _run_in_ns(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._nsenter(argv), capture_output=True, text=True, check=False, timeout=timeout
        )

    def _pick_snapshotter(self) -> None:
        """overlayfs when an overlay mount works on the containerd root's filesystem (tried in
        the node's mount namespace), else native (a full copy per layer: slower, always works)."""
        probe = self.workdir / "containerd" / "overlay-probe"
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir(parents=True, exist_ok=True)
        p = shlex.quote(str(probe))
        result = self._run_in_ns(
            "sh",
            "-c",
            f"mount -t overlay overlay -o lowerdir={p}/lower,upperdir={p}/upper,"
            f"workdir={p}/work {p}/merged && echo ok > {p}/merged/f && umount {p}/merged",
        )
        shutil.rmtree(probe, ignore_errors=True)
        if result.returncode == 0:
            self.snapshotter, self.snapshotter_note = "overlayfs", "overlay mount works"
        else:
            self.snapshotter = "native"
            self.snapshotter_note = f"overlay mount refused ({result.stderr.strip()}): native"
        _log.info("real node snapshotter: %s (%s)", self.snapshotter, self.snapshotter_note)

    def _containerd_config(self) -> str:
        w = self.workdir
        cni = w / "cni" / "net.d"
        return f"""version = 2
root = "{w / "containerd" / "root"}"
state = "{w / "containerd" / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{w / "containerd" / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{self.snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{host.CNI_BIN_DIR}"
    conf_dir = "{cni}"
"""

    def _start_containerd(self) -> None:
        self.containerd_socket.parent.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "containerd" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self._containerd_config())
        process = self._spawn(
            "containerd", self._nsenter(["/usr/bin/containerd", f"--config={config}"])
        )
        wait_until(
            "containerd's CRI plugin",
            lambda: self._ctr_ok("plugins", "ls"),
            timeout=START_TIMEOUT_S,
            interval=0.2,
            process=process,
        )
        plugins = self.ctr("plugins", "ls")
        for plugin in ("cri", self.snapshotter):
            if not any(
                line.split()[1:2] == [plugin] and " ok" in line for line in plugins.splitlines()
            ):
                raise NodeUnavailableError(
                    f"containerd's {plugin} plugin did not load: "
                    f"{[line for line in plugins.splitlines() if plugin in line]}; see "
                    f"{self.log_dir / 'containerd.log'}"
                )

    def ctr(self, *args: str, timeout: float = 120) -> str:
        """`ctr` against this node's containerd, namespace k8s.io; returns stdout."""
        result = self._run_in_ns(
            "/usr/bin/ctr", f"--address={self.containerd_socket}", "-n", "k8s.io", *args,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _ctr_ok(self, *args: str) -> bool:
        try:
            self.ctr(*args, timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def _import_images(self) -> None:
        pause = oci.busybox_image(
            self.workdir / "images" / "pause.tar",
            PAUSE_IMAGE,
            entrypoint=("/bin/sleep", "2147483647"),
            cmd=(),
        )
        for archive in (pause, *self.settings.images):
            if not archive.is_file():
                raise NodeUnavailableError(f"image archive {archive} does not exist")
            self.import_image(archive)

    def import_image(self, archive: Path) -> None:
        """Imports an OCI or docker archive into containerd's k8s.io namespace, unpacked for the
        node's snapshotter, so Pods can use it with no registry."""
        try:
            self.ctr(
                "images", "import", f"--snapshotter={self.snapshotter}", str(archive), timeout=600
            )
        except RuntimeError as exc:
            raise NodeUnavailableError(f"importing {archive}: {exc}") from None

    def _start_kubelet(self) -> None:
        s = self.settings
        self.kubelet_port = free_port()
        healthz = free_port()
        self._healthz = f"http://127.0.0.1:{healthz}/healthz"
        kubeconfig = self.cluster.kubeconfig_for(f"system:node:{s.name}", ("system:nodes",))
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("# no DNS on the local node\n")
        labels = ",".join(f"{k}={v}" for k, v in s.labels)
        argv = [
            str(self._kubelet),
            f"--kubeconfig={kubeconfig}",
            "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{self.containerd_socket}",
            "--runtime-request-timeout=2m",
            "--root-dir=/var/lib/kubelet",  # a tmpfs of the node's mount namespace
            "--cert-dir=/var/lib/kubelet/pki",
            "--volume-plugin-dir=/var/lib/kubelet/volume-plugins",
            f"--hostname-override={s.name}",
            f"--node-ip={s.node_ip}",
            f"--address={s.node_ip}",
            f"--port={self.kubelet_port}",
            "--read-only-port=0",
            "--healthz-bind-address=127.0.0.1",
            f"--healthz-port={healthz}",
            f"--node-labels={labels}",
            f"--register-with-taints={','.join(s.taints)}",
            "--cgroup-driver=cgroupfs",
            "--cgroups-per-qos=false",
            "--enforce-node-allocatable=",
            "--fail-swap-on=false",
            f"--pod-infra-container-image={PAUSE_IMAGE}",
            "--image-pull-progress-deadline=1m",
            "--image-gc-high-threshold=100",
            "--image-gc-low-threshold=99",
            "--eviction-hard=memory.available<50Mi,nodefs.available<1%,imagefs.available<1%",
            "--make-iptables-util-chains=false",  # the namespace's chains are kube-proxy's
            "--oom-score-adj=0",
            f"--resolv-conf={resolv}",
            "--sync-frequency=5s",
            "--node-status-update-frequency=4s",
            "--v=2",
        ]
        process = self._spawn("kubelet", self._nsenter(argv))
        wait_until(
            "the kubelet's /healthz",
            lambda: _http_ok(self._healthz),
            timeout=START_TIMEOUT_S,
            interval=0.2,
            process=process,
        )
        self._node_registered = True

    def _start_device_plugin(self) -> None:
        self._spawn(
            "fake-gpu-plugin",
            self._nsenter(
                [str(self._plugin), f"-node={self.name}", f"-count={self.settings.gpus}"]
            ),
        )

    def _wait_ready(self) -> None:
        with self.cluster.api_client() as api:
            core = kubernetes.client.CoreV1Api(api)

            def ready() -> bool:
                try:
                    node = core.read_node(self.name)
                except ApiException:
                    return False
                conditions = {c.type: c.status for c in node.status.conditions or []}
                gpus = (node.status.allocatable or {}).get(GPU_RESOURCE, "0")
                return conditions.get("Ready") == "True" and gpus == str(self.settings.gpus)

            kubelet = next(p for p in self._processes if p.name == "kubelet")
            wait_until(
                f"node {self.name} Ready with {self.settings.gpus} {GPU_RESOURCE}",
                ready,
                timeout=START_TIMEOUT_S,
                interval=0.5,
                process=kubelet,
            )
            # The apiserver taints a new Node not-ready; the node-lifecycle controller, off in
            # the local cluster, would lift it once the kubelet reports Ready: do it here.
            node = core.read_node(self.name)
            taints = [
                {"key": t.key, "value": t.value, "effect": t.effect}
                for t in node.spec.taints or []
                if t.key != _NOT_READY_TAINT
            ]
            core.patch_node(self.name, {"spec": {"taints": taints or None}})

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path=self.log_dir / f"{name}.log")
        process.start()
        self._processes.append(process)
        return process

    # ----- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Deletes the node's Pods, stops every process and removes what they left."""
        if self._node_registered:
            self._delete_pods()
        for process in reversed(self._processes):
            if process.name != "containerd":
                process.stop(grace_seconds=10.0)
        if self._holder is not None and any(p.name == "containerd" for p in self._processes):
            self._remove_containers()
        while self._processes:
            self._processes.pop().stop(grace_seconds=10.0)
        if self._holder is not None:
            self._kill_namespace_processes()
            self._holder.stop(grace_seconds=1.0)
            self._holder = None
        if self._node_registered:
            self._delete_node()
            self._node_registered = False
        if self._bridge_made:
            self._remove_network()
            self._bridge_made = False
        self._remove_cgroups()
        if self._own_proxy is not None:
            self._own_proxy.stop()
            self._own_proxy = None
        shutil.rmtree(self.workdir / "containerd", ignore_errors=True)
        self._claim.release()

    def _delete_pods(self) -> None:
        """Deletes every Pod bound to the node while the kubelet still runs, so that it stops
        them through the CRI (sandboxes and their CNI teardown included)."""
        try:
            with self.cluster.api_client() as api:
                core = kubernetes.client.CoreV1Api(api)
                selector = f"spec.nodeName={self.name}"
                for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
                    with contextlib.suppress(ApiException):
                        core.delete_namespaced_pod(
                            pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                        )
        except (ApiException, OSError) as exc:
            _log.warning("deleting the real node's Pods: %s", exc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if not self.ctr("tasks", "ls", "-q", timeout=10).split():
                    return
            time.sleep(0.5)
        _log.warning("real node: containers still running 30 s after their Pods were deleted")

    def _remove_containers(self) -> None:
        """Whatever containers the kubelet left (it was stopped mid-way, say): killed, removed."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            for task in self.ctr("tasks", "ls", "-q", timeout=10).split():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.ctr("tasks", "kill", "-s", "SIGKILL", task, timeout=10)
                    self.ctr("tasks", "delete", "-f", task, timeout=20)
            containers = self.ctr("containers", "ls", "-q", timeout=10).split()
            if containers:
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.ctr("containers", "rm", *containers, timeout=30)

    def _kill_namespace_processes(self) -> None:
        """SIGKILLs, by PID, every process left in the node's mount namespace (containerd
        shims, which outlive containerd by design) or in the containers' cgroups (containers
        have mount namespaces of their own); the holder goes last."""
        holder = self._holder.pid if self._holder else None
        for _ in range(50):
            left = [pid for pid in processes_in_mount_namespace(self._mnt_ns) if pid != holder]
            left += self._container_pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        _log.error("real node: processes left in its mount namespace: %s", left)

    def _container_pids(self) -> list[int]:
        """PIDs in the cgroups containerd made under ours (the `pids` hierarchy)."""
        for m in getattr(self, "_cgroups", []):
            if m.fstype == "cgroup" and "pids" in m.options.split(","):
                root = Path("/sys/fs/cgroup") / m.directory / host.own_cgroup("pids").lstrip("/")
                found: list[int] = []
                for procs in (root / "k8s.io").rglob("cgroup.procs"):
                    with contextlib.suppress(OSError, ValueError):
                        found += [int(x) for x in procs.read_text().split()]
                return found
        return []

    def _delete_node(self) -> None:
        try:
            with self.cluster.api_client() as api:
                kubernetes.client.CoreV1Api(api).delete_node(self.name)
        except (ApiException, OSError) as exc:
            _log.warning("deleting node %s: %s", self.name, exc)

    def _remove_network(self) -> None:
        bridge = self.settings.bridge
        # veths of Pods whose namespace is not gone yet (the kernel frees them lazily).
        for line in self._ip("-o", "link", "show", "master", bridge, check=False).splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            self._ip("link", "del", name, check=False)
        self._ip("link", "del", bridge, check=False)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            sweep_chains("CNI-")

    def _remove_cgroups(self) -> None:
        """Removes the cgroups containerd made under ours (`k8s.io/...`), deepest first."""
        for m in getattr(self, "_cgroups", []):
            if m.fstype != "cgroup":
                continue
            controller = m.options.split(",")[-1].removeprefix("name=")
            base = Path("/sys/fs/cgroup") / m.directory
            own = host.own_cgroup(controller)
            root = base / own.lstrip("/") / "k8s.io"
            if not root.is_dir():
                continue
            for directory in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
            if root.exists():
                _log.error("real node: cgroup %s is left (processes still in it?)", root)


def host_interfaces() -> list[str]:
    from localcluster.netns import interfaces

    return interfaces()


def processes_in_mount_namespace(ns: str) -> list[int]:
    """PIDs whose mount namespace is `ns` (as `readlink /proc/<pid>/ns/mnt` prints it)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if str((entry / "ns" / "mnt").readlink()) == ns:
                found.append(int(entry.name))
    return found


def sweep_chains(prefix: str) -> None:
    """Removes the `prefix` chains (e.g. the CNI portmap plugin's `CNI-`), and the jumps to them,
    from every table of this network namespace, with one `iptables-restore --noflush`."""
    save, restore = iptables.find_tool("iptables-save"), iptables.find_tool("iptables-restore")
    if save is None or restore is None:
        return
    text = subprocess.run([save], capture_output=True, text=True, check=True, timeout=30).stdout
    out: list[str] = []
    table = ""
    chains: list[str] = []
    jumps: list[str] = []

    def flush() -> None:
        if table and (chains or jumps):
            out.append(f"*{table}")
            out.extend("-D " + rule[3:] for rule in jumps)
            out.extend(f":{c} - [0:0]" for c in chains)
            out.extend(f"-X {c}" for c in chains)
            out.append("COMMIT")

    for line in text.splitlines():
        if line.startswith("*"):
            flush()
            table, chains, jumps = line[1:], [], []
        elif line.startswith(":" + prefix):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A ") and not line.split()[1].startswith(prefix):
            tokens = shlex.split(line)
            if any(
                flag in ("-j", "-g") and value.startswith(prefix)
                for flag, value in itertools.pairwise(tokens)
            ):
                jumps.append(line)
    flush()
    if out:
        subprocess.run(
            [restore, "--noflush"],
            input="\n".join(out) + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )


def _http_ok(url: str) -> bool:
    import httpx

    with contextlib.suppress(httpx.HTTPError, OSError):
        return httpx.get(url, timeout=2.0).status_code == 200
    return False
