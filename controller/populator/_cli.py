"""`python -m controller.populator`: the launcher-populator alone, for tests and debugging.

In production the populator runs inside `fma-controller`, next to the dual-pods controller;
this entry runs the same `Populator` with informers, metrics and health of its own:

    python -m controller.populator -n NAMESPACE [--kubeconfig F] [--metrics-port 8002]
        [--expectation-timeout 5s] [--stuck-scheduling-threshold 2m]
        [--stuck-starting-threshold 7m30s] [--keep-sleepers 30m] [--leader-elect]

SIGTERM and Ctrl-C stop it cleanly (the Lease, if held, is released).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.launcherapi import launcher_http_client
from controller.observability import (
    ControllerMetrics,
    HealthChecks,
    ServerSettings,
    all_synced,
    informer_server,
)
from controller.populator._flags import add_flags, settings_from
from controller.populator._instances import WatchedInstances
from controller.populator._runtime import Populator
from controller.populator._settings import COMPONENT, Settings
from kube import (
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
    NODES,
    PODS,
    ConnectionSettings,
    KubeClient,
    KubeLeaseStore,
    LeaderElectionSettings,
    LeaderElector,
    focus_informers,
    http_client,
    run_event_loop,
    run_informers,
)

_log = logging.getLogger("controller.populator")


@dataclass(frozen=True, kw_only=True)
class Options:
    settings: Settings
    connection: ConnectionSettings
    metrics: ServerSettings
    leader_elect: bool
    lease_name: str
    launcher_streams: bool
    log_level: str


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m controller.populator", description=__doc__)
    add = parser.add_argument
    add("-n", "--namespace", required=True, help="focus namespace")
    add_flags(parser)
    defaults, server = Settings(namespace="-"), ServerSettings()
    add("--workers", type=int, default=defaults.workers, help="keys handled at once")
    add("--metrics-port", type=int, default=server.port, help="/metrics, /healthz, /readyz")
    add("--metrics-host", default=server.host)
    add("--kubeconfig", type=Path, default=None, help="default: in-cluster, then $KUBECONFIG")
    add("--context", default=None)
    add("--leader-elect", action="store_true", help="run only while holding a Lease")
    add("--lease-name", default=f"fma-{COMPONENT}")
    add("--no-launcher-streams", action="store_true", help="do not follow launchers' instances")
    add("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    return Options(
        settings=settings_from(args, namespace=args.namespace, workers=args.workers),
        connection=ConnectionSettings(kubeconfig=args.kubeconfig, context=args.context),
        metrics=ServerSettings(host=args.metrics_host, port=args.metrics_port),
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        launcher_streams=not args.no_launcher_streams,
        log_level=args.log_level,
    )


async def serve(options: Options) -> None:
    """Informers, the populator (under a Lease with `--leader-elect`), metrics and health."""
    client = KubeClient(http_client(options.connection), field_manager=COMPONENT)
    kinds = (PODS, NODES, LAUNCHER_CONFIGS, LAUNCHER_POPULATION_POLICIES)
    informers = focus_informers(client, options.settings.namespace, kinds=kinds)
    metrics = ControllerMetrics()
    streams = WatchedInstances(launcher_http_client()) if options.launcher_streams else None
    populator = Populator(client, informers, options.settings, metrics, instances=streams)
    if streams is not None:
        streams.attach(informers[PODS.plural], populator.launcher_changed)
    server = informer_server(metrics, lambda: informers, options.metrics)
    liveness, readiness = server.liveness, server.readiness
    readiness.add("informers", all_synced(lambda: {k: i.has_synced for k, i in informers.items()}))
    work = _work(
        options,
        client=client,
        populator=populator,
        metrics=metrics,
        liveness=liveness,
        readiness=readiness,
    )
    await server.start()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(run_informers(informers), name="informers")
            group.create_task(work(), name="populator")
    finally:
        await server.close()
        if streams is not None:
            await streams.aclose()
        await client.aclose()


def _work(
    options: Options,
    *,
    client: KubeClient,
    populator: Populator,
    metrics: ControllerMetrics,
    liveness: HealthChecks,
    readiness: HealthChecks,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The populator's main coroutine, wrapped in leader election when asked for."""
    if not options.leader_elect:
        readiness.add("populator", populator.health)
        return populator.run
    namespace, lease = options.settings.namespace, options.lease_name
    elector = LeaderElector(
        KubeLeaseStore(client, namespace, lease),
        LeaderElectionSettings(namespace=namespace, lease_name=lease),
        on_leading_changed=lambda on: metrics.leader.labels(lease).set(on),
    )
    liveness.add("leader-election", elector.healthy)
    readiness.add("populator", lambda: populator.health() if elector.is_leader else (True, ""))

    async def lead() -> None:
        await elector.run(populator.run)

    return lead


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_event_loop(lambda: _until_signalled(serve(options)))


async def _until_signalled(work: Coroutine[Any, Any, None]) -> int:
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    _log.info("stopped")
    return 0
