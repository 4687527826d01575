"""`fma-hollow-kubelet`: run the hollow kubelet, or read its containers' logs.

    fma-hollow-kubelet run --kubeconfig K --config C.yaml --state-dir D [--delete-nodes-on-exit]
    fma-hollow-kubelet logs NAMESPACE/POD [-c CONTAINER] [--previous] [--tail N] [-f]
        [--timestamps] [--state-dir D]

`run` stops on SIGTERM or SIGINT: every container gets SIGTERM, its grace period (capped by
`--shutdown-grace-seconds`), SIGKILL; then the Nodes are deleted (with `--delete-nodes-on-exit`)
or marked unreachable, and it exits 0. `logs` reads the state directory directly, so it works
even when the apiserver or the kubelet is down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import kubernetes.config

from localcluster.kubelet.config import load_config
from localcluster.kubelet.kubelet import HollowKubelet
from localcluster.kubelet.logfiles import (
    LogNotFoundError,
    LogOptions,
    find_container_dir,
    iter_log,
    select_instance,
)
from localcluster.kubelet.logfmt import setup_logging

STATE_DIR_ENV = "FMA_HOLLOW_KUBELET_STATE_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fma-hollow-kubelet", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="play the kubelet for the configured nodes")
    run.add_argument("--kubeconfig", type=Path, required=True)
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--state-dir", type=Path, required=True)
    run.add_argument("--delete-nodes-on-exit", action="store_true")
    run.add_argument("--shutdown-grace-seconds", type=float, default=10.0)
    run.add_argument("-v", "--verbose", action="store_true")
    logs = commands.add_parser("logs", help="print a container's logs (like kubectl logs)")
    logs.add_argument("pod", metavar="NAMESPACE/POD")
    logs.add_argument("-c", "--container")
    logs.add_argument("-p", "--previous", action="store_true")
    logs.add_argument("--tail", type=int, default=None)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--timestamps", action="store_true")
    logs.add_argument("--state-dir", type=Path, default=os.environ.get(STATE_DIR_ENV))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "logs":
        return _logs(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    config = load_config(args.config)
    client = kubernetes.config.new_client_from_config(config_file=str(args.kubeconfig))
    kubelet = HollowKubelet(
        config,
        api_client=client,
        config_path=args.config.resolve(),
        state_dir=args.state_dir,
        delete_nodes_on_exit=args.delete_nodes_on_exit,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await kubelet.run(stop)

    try:
        asyncio.run(run())
    finally:
        client.close()
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.state_dir is None:
        print(f"--state-dir (or ${STATE_DIR_ENV}) is required", file=sys.stderr)
        return 2
    namespace, _, pod = str(args.pod).rpartition("/")
    options = LogOptions(
        follow=args.follow, previous=args.previous, tail_lines=args.tail, timestamps=args.timestamps
    )
    try:
        container_dir = find_container_dir(
            args.state_dir, namespace or "default", pod, args.container
        )
        path = select_instance(container_dir, container_dir.name, pod, args.previous)
    except LogNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    try:
        for chunk in iter_log(path, options):
            if chunk is None:
                out.flush()
                time.sleep(0.2)
            else:
                out.write(chunk)
    except KeyboardInterrupt:
        pass
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
