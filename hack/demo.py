"""The local demo: a real control plane with two hollow GPU nodes, and fma's resources on it.

Prints a timeline a person can follow; every step is something a user would do with kubectl.
Everything it starts is stopped before it exits, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(_ROOT))

from crds import CRD_FILES, EXAMPLE_FILES  # noqa: E402
from localcluster.stack import LocalStack, local_stack  # noqa: E402


class Timeline:
    """Prints steps with the seconds elapsed since the demo started."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def step(self, text: str) -> None:
        print(f"[{time.monotonic() - self._start:6.1f}s] {text}", flush=True)

    def show(self, output: str) -> None:
        for line in output.rstrip().splitlines():
            print(f"          {line}")
        print(flush=True)


def _show_cluster(stack: LocalStack, timeline: Timeline, namespace: str) -> None:
    kubectl = stack.cluster.kubectl
    timeline.step("nodes, with the GPUs the hollow kubelet advertises:")
    timeline.show(
        kubectl(
            "get",
            "nodes",
            "-o",
            r"custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status,"
            r"GPUS:.status.allocatable.nvidia\.com/gpu,IP:.status.addresses[0].address",
        )
    )
    stack.apply_crds()
    timeline.step(
        "applied the CRDs: InferenceServerConfig, LauncherConfig, LauncherPopulationPolicy"
    )
    timeline.show(kubectl("get", "crd", *(path.name.removesuffix(".yaml") for path in CRD_FILES)))
    kubectl("create", "namespace", namespace)
    for path in EXAMPLE_FILES:
        kubectl("apply", "-n", namespace, "-f", str(path))
    timeline.step(f"applied one example of each kind in namespace {namespace}:")
    timeline.show(kubectl("get", "-n", namespace, "isc,lcfg,lpp"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, help="state directory (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fma-demo-"))
    timeline = Timeline()
    timeline.step("starting the local control plane (etcd, kube-apiserver, controller-manager, ")
    timeline.step("scheduler) and a hollow kubelet with two GPU nodes ...")
    with local_stack(workdir, nodes=2, gpus_per_node=2) as stack:
        timeline.step(f"cluster ready at {stack.cluster.server}")
        _show_cluster(stack, timeline, namespace="demo")
        timeline.step("stopping every process the demo started ...")
    timeline.step("done; nothing left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
