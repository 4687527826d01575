"""Which network namespace this process is in, and a per-namespace claim on it.

kube-proxy rewrites the `nat`, `filter` and `mangle` tables, and those tables (with the
KUBE-SERVICES, KUBE-NODEPORTS, ... chains in them) belong to a network namespace, not to a
process. Run in the machine's own namespace, kube-proxy would change the host's firewall, and a
ClusterIP without a rule would send packets out of the machine. So the local cluster runs
kube-proxy only in a *private* network namespace, one whose only interface is `lo` (created by
`hack/in-netns.sh`, i.e. `unshare --net`): there every address outside 127.0.0.0/8 is
unreachable by construction, and the rules vanish with the namespace.

Two clusters in one namespace must not both run kube-proxy (each would rewrite the other's
chains), so the one that does holds `NamespaceClaim`: an abstract unix socket. Abstract socket
names are scoped to a network namespace and released by the kernel when their holder dies, so
the claim is exactly "one per namespace" and never goes stale.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Final

IN_NETNS_SCRIPT: Final = "hack/in-netns.sh"
_SELF_NS: Final = Path("/proc/self/ns/net")
_INIT_NS: Final = Path("/proc/1/ns/net")
_NET_DEV: Final = Path("/proc/self/net/dev")


class NetnsError(RuntimeError):
    """This network namespace cannot host kube-proxy; the message says why and what to do."""


def interfaces(net_dev: Path = _NET_DEV) -> list[str]:
    """The network interfaces of this process's namespace (`/proc/self/net/dev` is per-namespace,
    unlike `/sys/class/net`, which shows the namespace that mounted sysfs)."""
    lines = net_dev.read_text().splitlines()[2:]  # two header lines
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def _same_namespace(self_ns: Path, init_ns: Path) -> bool | None:
    """Whether this process shares PID 1's network namespace; None when that cannot be read
    (a container or VM may deny reading PID 1's namespace links, even to root)."""
    try:
        return self_ns.stat().st_ino == init_ns.stat().st_ino
    except OSError:
        return None


def namespace_problem(
    *, self_ns: Path = _SELF_NS, init_ns: Path = _INIT_NS, net_dev: Path = _NET_DEV
) -> str | None:
    """Why this network namespace is not a private one (None when it is).

    Private means: not PID 1's namespace, and no interface but `lo`. The interface test is the
    one that matters for safety (no interface, no route out); the inode test names the common
    mistake plainly where the system lets us read PID 1's namespace.
    """
    if _same_namespace(self_ns, init_ns):
        return "this process is in the machine's initial network namespace (that of PID 1)"
    others = [name for name in interfaces(net_dev) if name != "lo"]
    if others:
        return (
            "this network namespace has interfaces other than lo "
            f"({', '.join(others)}), so it is not a private one"
        )
    return None


def require_private_namespace(what: str) -> None:
    """Raises `NetnsError` naming the fix unless this process is in a private namespace."""
    problem = namespace_problem()
    if problem is not None:
        raise NetnsError(
            f"refusing to start {what}: {problem}. It rewrites the namespace's iptables rules, "
            f"so it runs only in a private network namespace: run the command under "
            f"`bash {IN_NETNS_SCRIPT} <command>` (as `bash hack/test.sh` and `bash hack/demo.sh` "
            "do)"
        )


class NamespaceClaim:
    """An exclusive claim on one role (e.g. "kube-proxy") in this network namespace.

    Bound to the abstract unix socket `\\0fma-<role>`; `release` (or the process's death) frees
    it. The socket is not inheritable, so children do not keep the claim alive.
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self._socket: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"\0fma-{self.role}"

    def acquire(self) -> None:
        """Takes the claim, or raises `NetnsError` if another process or cluster holds it."""
        if self._socket is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            raise NetnsError(
                f"another local cluster in this network namespace already runs {self.role} "
                f"(it holds the abstract socket @fma-{self.role}); two would rewrite each "
                f"other's rules. Stop it, or run this one in a namespace of its own "
                f"(`bash {IN_NETNS_SCRIPT} <command>`)"
            ) from None
        self._socket = sock

    def release(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def held(self) -> bool:
        return self._socket is not None
