"""`fma-controller`: the dual-pods controller process (contracts §13).

Runs the reconciler of one focus namespace, optionally behind Lease-based leader election, and
serves `/metrics`, `/healthz` and `/readyz` on `--metrics-port`. Logs are JSON lines on stderr.
SIGTERM (or SIGINT) stops the work, releases the Lease and exits 0; a lost Lease exits 1 so
that the restarted process begins with clean memory (client-go's convention).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.core import Settings
from controller.kube import (
    ConnectionSettings,
    EventRecorder,
    EventSettings,
    KubeClient,
    KubeEventSink,
    KubeLeaseStore,
    LeaderElectionSettings,
    LeaderElector,
    LeadershipLostError,
    default_identity,
    http_client,
)
from controller.observability import (
    ControllerMetrics,
    HealthChecks,
    InformerCollector,
    ObservabilityServer,
    ServerSettings,
    all_synced,
    configure_logging,
)
from controller.reconciler import DualPodsController, ReconcilerSettings

_log = logging.getLogger("fma.controller")
CONTROLLER_NAME = "dual-pods-controller"


@dataclass(frozen=True, kw_only=True)
class CliConfig:
    connection: ConnectionSettings
    reconciler: ReconcilerSettings
    leader: LeaderElectionSettings | None
    server: ServerSettings
    log_level: str


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fma-controller", description="fma's dual-pods controller (one focus namespace)."
    )
    add = parser.add_argument
    add("-n", "--namespace", required=True, help="the focus namespace (contracts §1.1)")
    add("--kubeconfig", type=Path, default=None, help="default: in-cluster, else $KUBECONFIG")
    add("--context", default=None)
    add("--num-workers", type=int, default=2, help="items reconciled concurrently (default 2)")
    add("--sleeper-limit", type=int, default=1, help="direct mode: sleepers kept per GPU")
    add(
        "--memory-check",
        "--debug-accelerator-memory",
        dest="memory_check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure GPU memory through the requester before a wake or start (default on)",
    )
    add("--memory-threshold-mib", type=int, default=Settings().memory_threshold_mib)
    add("--metrics-port", type=int, default=8002, help="/metrics, /healthz, /readyz")
    add("--metrics-host", default="0.0.0.0")
    add("--debug-port", type=int, default=None, help="accepted for compatibility; unused")
    _timeouts(parser)
    _leader_flags(parser)
    add("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add("-v", "--v", dest="verbosity", type=int, default=0, help="klog style: 4 or more = debug")
    return parser


def _timeouts(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    defaults = Settings()
    add("--instance-start-timeout", type=float, default=defaults.startup_deadline,
        help="seconds an instance or direct provider may take to become ready")  # fmt: skip
    add("--launcher-start-timeout", type=float, default=defaults.launcher_start_deadline)
    add("--failed-requester-delete-after", type=float,
        default=defaults.failed_requester_delete_after,
        help="seconds a failure stays in the requester's status before it is deleted")  # fmt: skip
    add("--sleep-deadline", type=float, default=defaults.sleep_deadline,
        help="seconds an unbind may try to sleep a server before deleting it")  # fmt: skip
    add("--stuck-launcher-after", type=float, default=defaults.stuck_launcher_after)
    add("--retry-after", type=float, default=defaults.retry_after)


def _leader_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
        help="run only while holding a coordination.k8s.io Lease (default on)")  # fmt: skip
    add("--leader-elect-lease-name", default="fma-dual-pods-controller")
    add("--leader-elect-namespace", default=None, help="default: --namespace")
    add("--leader-elect-identity", default=None, help="default: <hostname>_<random>")
    add("--leader-elect-lease-duration", type=float, default=15.0)
    add("--leader-elect-renew-deadline", type=float, default=10.0)
    add("--leader-elect-retry-period", type=float, default=2.0)


def parse_args(argv: Sequence[str] | None) -> CliConfig:
    args = _parser().parse_args(argv)
    core = Settings(
        sleeper_limit=args.sleeper_limit,
        memory_check=args.memory_check,
        memory_threshold_mib=args.memory_threshold_mib,
        startup_deadline=args.instance_start_timeout,
        launcher_start_deadline=args.launcher_start_timeout,
        failed_requester_delete_after=args.failed_requester_delete_after,
        sleep_deadline=args.sleep_deadline,
        stuck_launcher_after=args.stuck_launcher_after,
        retry_after=args.retry_after,
    )
    leader = None
    if args.leader_elect:
        leader = LeaderElectionSettings(
            namespace=args.leader_elect_namespace or args.namespace,
            lease_name=args.leader_elect_lease_name,
            identity=args.leader_elect_identity or default_identity(),
            lease_duration_s=args.leader_elect_lease_duration,
            renew_deadline_s=args.leader_elect_renew_deadline,
            retry_period_s=args.leader_elect_retry_period,
        )
    return CliConfig(
        connection=ConnectionSettings(kubeconfig=args.kubeconfig, context=args.context),
        reconciler=ReconcilerSettings(
            namespace=args.namespace, workers=args.num_workers, core=core
        ),
        leader=leader,
        server=ServerSettings(host=args.metrics_host, port=args.metrics_port),
        log_level="debug" if args.verbosity >= 4 else args.log_level,
    )


class _Process:
    """The objects of one controller process and how they report health."""

    def __init__(self, config: CliConfig) -> None:
        self.config = config
        self.client = KubeClient(http_client(config.connection))
        self.metrics = ControllerMetrics()
        self.recorder = EventRecorder(
            KubeEventSink(self.client), EventSettings(component=CONTROLLER_NAME)
        )
        self.controller = DualPodsController(
            self.client, config.reconciler, metrics=self.metrics, recorder=self.recorder
        )
        self.elector: LeaderElector | None = None
        if config.leader is not None:
            lease = config.leader
            self.elector = LeaderElector(
                KubeLeaseStore(self.client, lease.namespace, lease.lease_name),
                lease,
                on_leading_changed=self._leading_changed,
            )
        self.metrics.registry.register(InformerCollector(lambda: self.controller.informers))
        liveness, readiness = HealthChecks(), HealthChecks()
        liveness.add("loop", lambda: (True, "serving"))
        readiness.add("controller", self._ready)
        if self.elector is not None:
            liveness.add("leader-election", self._lease_ok)
        self.server = ObservabilityServer(
            self.metrics.registry, liveness=liveness, readiness=readiness, settings=config.server
        )

    def _leading_changed(self, leading: bool) -> None:
        name = self.config.leader.lease_name if self.config.leader else ""
        self.metrics.leader.labels(name).set(1 if leading else 0)
        _log.info("leading" if leading else "not leading")

    def _ready(self) -> tuple[bool, str]:
        if self.elector is not None and not self.elector.is_leader:
            return self.elector.healthy()
        return all_synced(self.controller.synced)()

    def _lease_ok(self) -> tuple[bool, str]:
        assert self.elector is not None
        return self.elector.healthy() if self.elector.is_leader else (True, "standby")

    async def work(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.recorder.run(), name="events")
            if self.elector is None:
                await self.controller.run()
            else:
                await self.elector.run(self.controller.run)

    async def close(self) -> None:
        await self.server.close()
        await self.client.aclose()


async def serve(config: CliConfig) -> int:
    """Runs until SIGTERM/SIGINT (exit 0) or a lost lease or fatal error (exit 1)."""
    process = _Process(config)
    await process.server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(process.work(), name="controller")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            _log.info("stopping")
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return 0
        return _exit_code(work)
    finally:
        stopped.cancel()
        await process.close()


def _exit_code(work: asyncio.Task[None]) -> int:
    error = work.exception()
    if error is None:
        return 0
    lost = isinstance(error, LeadershipLostError) or (
        isinstance(error, BaseExceptionGroup) and error.subgroup(LeadershipLostError) is not None
    )
    if lost:
        _log.error("lost the lease; exiting so that a restart begins afresh: %s", error)
    else:
        _log.error("the controller failed", exc_info=error)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    configure_logging(config.log_level)
    _log.info(
        "fma-controller for namespace %s (leader election %s, %d workers)",
        config.reconciler.namespace,
        f"on, lease {config.leader.lease_name} as {config.leader.identity}"
        if config.leader
        else "off",
        config.reconciler.workers,
    )
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
