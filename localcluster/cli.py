"""`fma-localcluster up`: a local Kubernetes with GPU nodes, for trying fma by hand.

Runs in the foreground; Ctrl-C (or SIGTERM) stops every process it started.

`--kube-proxy` also runs real kube-proxy, so NodePort Services answer on 127.0.0.1:<nodePort>.
It is refused outside a private network namespace (kube-proxy rewrites the namespace's iptables
rules): run `bash hack/in-netns.sh .venv/bin/fma-localcluster up --kube-proxy`, and reach the
cluster from another shell with `nsenter --net=/proc/<pid>/ns/net` (the pid it prints).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from localcluster.binaries import k8s_binary
from localcluster.kubeproxy import KubeProxyUnavailableError
from localcluster.stack import local_stack


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fma-localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster and keep it running until interrupted")
    up.add_argument("--nodes", type=int, default=2, help="hollow GPU nodes (default 2)")
    up.add_argument("--gpus", type=int, default=2, help="GPUs per node (default 2)")
    up.add_argument("--workdir", type=Path, help="state directory (default: a new temp dir)")
    up.add_argument("--no-crds", action="store_true", help="do not apply fma's CRDs")
    up.add_argument(
        "--kube-proxy",
        action="store_true",
        help="also run kube-proxy (NodePorts on 127.0.0.1); only in a private network "
        "namespace: run under `bash hack/in-netns.sh`",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return _up(args)
    except KubeProxyUnavailableError as exc:
        print(f"fma-localcluster: {exc}", file=sys.stderr)
        return 2


def _up(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fma-localcluster-"))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with local_stack(
        workdir, nodes=args.nodes, gpus_per_node=args.gpus, kube_proxy=args.kube_proxy
    ) as stack:
        if not args.no_crds:
            stack.apply_crds()
        kubectl = k8s_binary("kubectl")
        print(f"\nlocal cluster ready; state in {workdir}\n")
        if stack.cluster.kube_proxy is not None:
            print(
                "  kube-proxy runs: NodePort Services answer on 127.0.0.1:<nodePort> inside this\n"
                "  network namespace; from another shell enter it first:\n"
                f"  nsenter --net=/proc/{os.getpid()}/ns/net bash\n"
            )
        print(f"  export KUBECONFIG={stack.cluster.kubeconfig}")
        print(f"  {kubectl} get nodes\n\nPress Ctrl-C to stop.", flush=True)
        stop.wait()
        print("stopping ...", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
