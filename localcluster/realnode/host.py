"""What the real node needs from this machine, checked before anything starts.

Each check returns None or raises `NodeUnavailableError` with the exact reason (a missing
binary, package, kernel feature or privilege), so a test can skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from localcluster import netns

PACKAGES: Final = {
    # binary -> the Debian package that ships it
    "/usr/bin/containerd": "containerd",
    "/usr/bin/ctr": "containerd",
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/portmap": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "/bin/busybox": "busybox-static",
}
CNI_BIN_DIR: Final = Path("/usr/lib/cni")
REQUIRED_CGROUPS: Final = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")
"""cgroup v1 controllers the kubelet (cgroupfs driver) and runc need."""
# What `mount` may tell us about a cgroup hierarchy that is not a controller.
_NOT_CONTROLLERS: Final = frozenset({"rw", "ro", "nosuid", "nodev", "noexec", "relatime"})


class NodeUnavailableError(RuntimeError):
    """The real node cannot start on this machine; the message is the exact reason."""


def require_netns() -> None:
    """The node's bridge, Pod addresses and rules must stay in a private network namespace."""
    if os.environ.get("FMA_IN_NETNS") != "1":
        raise NodeUnavailableError(
            "the real node runs only in a private network namespace and FMA_IN_NETNS is not set: "
            f"run the command under `bash {netns.IN_NETNS_SCRIPT} <command>`"
        )
    problem = netns.namespace_problem()
    if problem is not None:
        raise NodeUnavailableError(f"refusing to start the real node: {problem}")


def require_root() -> None:
    if os.geteuid() != 0:
        raise NodeUnavailableError(
            "the real node needs root (mount and cgroup namespaces, overlay mounts, a bridge)"
        )


def missing_packages() -> list[str]:
    return sorted({pkg for path, pkg in PACKAGES.items() if not os.access(path, os.X_OK)})


def ensure_packages(*, install: bool = True) -> None:
    """Installs containerd, runc, the CNI plugins and busybox-static from Debian when missing
    (as build-kubernetes.sh installs Go); raises with the reason when that fails."""
    missing = missing_packages()
    if not missing:
        return
    apt = shutil.which("apt-get")
    if not install or apt is None or os.geteuid() != 0:
        raise NodeUnavailableError(
            f"missing Debian packages {', '.join(missing)} (install them with apt-get as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        [apt, "update", "-qq"],
        [apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", *missing],
    ):
        result = subprocess.run(
            args, capture_output=True, text=True, env=env, check=False, timeout=900
        )
        if result.returncode != 0:
            command = " ".join(args[1:])
            raise NodeUnavailableError(
                f"`apt-get {command}` failed ({result.returncode}): {result.stderr.strip()[-800:]}"
            )
    still = missing_packages()
    if still:
        raise NodeUnavailableError(f"packages {', '.join(still)} still missing after apt-get")


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup hierarchy of this mount namespace, to be mounted again in the node's."""

    directory: str  # under /sys/fs/cgroup
    fstype: str  # cgroup or cgroup2
    options: str  # for `mount -o`


def cgroup_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[CgroupMount]:
    """The cgroup hierarchies mounted under /sys/fs/cgroup (v1 and v2)."""
    mounts: list[CgroupMount] = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        mount_point, fstype, super_options = fields[4], fields[sep + 1], fields[sep + 3]
        if fstype not in ("cgroup", "cgroup2") or not mount_point.startswith("/sys/fs/cgroup/"):
            continue
        options = [o for o in super_options.split(",") if o not in _NOT_CONTROLLERS]
        if fstype == "cgroup" and all(o.startswith("name=") for o in options):
            options = ["none", *options]
        mounts.append(
            CgroupMount(
                mount_point.removeprefix("/sys/fs/cgroup/"), fstype, ",".join(options) or "rw"
            )
        )
    return mounts


def require_cgroups(mounts: list[CgroupMount]) -> None:
    controllers = {
        option for m in mounts if m.fstype == "cgroup" for option in m.options.split(",")
    }
    missing = [c for c in REQUIRED_CGROUPS if c not in controllers]
    if missing:
        raise NodeUnavailableError(
            f"cgroup v1 controllers {', '.join(missing)} are not mounted under /sys/fs/cgroup "
            "(the kubelet 1.20 with the cgroupfs driver and runc need them)"
        )


def own_cgroup(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> str:
    """This process's cgroup path in the v1 hierarchy of `controller` ("/" when at the root)."""
    for line in proc_cgroup.read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return "/"
