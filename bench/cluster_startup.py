"""How long the local control plane takes to start and stop, with cached binaries.

Prints JSON. Target (issue 3): start-up under 15 s.
Run: `.venv/bin/python bench/cluster_startup.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from localcluster.controlplane import LocalCluster  # noqa: E402
from localcluster.kubelet import KubeletConfig, NodeConfig, start_hollow_kubelet  # noqa: E402


def _one_run(workdir: Path) -> dict[str, float]:
    started = time.monotonic()
    with LocalCluster(workdir / "cluster") as cluster:
        control_plane = time.monotonic() - started
        config = KubeletConfig(
            pod_network=cluster.pod_network, nodes=[NodeConfig(name="n1", gpus=2)]
        )
        kubelet = start_hollow_kubelet(cluster, config, workdir / "kubelet")
        with_nodes = time.monotonic() - started
        stopping = time.monotonic()
        kubelet.stop()
    return {
        "control_plane_ready_s": control_plane,
        "with_gpu_node_ready_s": with_nodes,
        "stop_s": time.monotonic() - stopping,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="fma-bench-") as tmp:
            runs.append(_one_run(Path(tmp)))
    summary = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    print(
        json.dumps(
            {
                "benchmark": "cluster_startup",
                "runs": args.runs,
                "median": summary,
                "target_control_plane_ready_s": 15.0,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
