"""`fma-controller`: the dual-pods controller and the launcher populator (contracts §10, §13).

Runs both controllers of one focus namespace in one process, sharing the informers and the
launcher instance streams, optionally behind Lease-based leader election, and
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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contract import auth
from contract.objects import CONTROLLER_NAME
from controlauth import ControllerAuth, controller_auth_from_dir
from controller.core import InstanceView, Settings
from controller.observability import (
    ControllerMetrics,
    ServerSettings,
    all_synced,
    configure_logging,
    informer_server,
)
from controller.populator import Populator
from controller.populator import Settings as PopulatorSettings
from controller.populator import add_flags as populator_flags
from controller.populator import settings_from as populator_settings
from controller.reconciler import DualPodsController, ReconcilerSettings
from controller.trustmap import publish_trust
from jsonlog import cli
from kube import (
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
    run_event_loop,
    stream_client,
)

LOG_LEVEL: Final = "info"
EVENT_DELAY_S: Final = 1.0
"""Events wait this long, so that a burst of actuations goes first (`EventSettings.delay_s`)."""
_log = logging.getLogger("fma.controller")


@dataclass(frozen=True, kw_only=True)
class CliConfig:
    connection: ConnectionSettings
    reconciler: ReconcilerSettings
    populator: PopulatorSettings | None
    leader: LeaderElectionSettings | None
    server: ServerSettings
    log_level: str
    control_auth: str = auth.MODE_ON
    """`off` only for launchers and stubs that check nothing (contracts §14)."""
    control_credentials_dir: Path = Path(auth.CREDENTIALS_DIR)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fma-controller", description="fma's dual-pods controller (one focus namespace)."
    )
    add = parser.add_argument
    add("-n", "--namespace", required=True, help="the focus namespace (contracts §1.1)")
    add("--kubeconfig", type=Path, default=None, help="default: in-cluster, else $KUBECONFIG")
    add("--context", default=None)
    core, server = Settings(), ServerSettings()  # each core flag's dest is a Settings field
    reconciler = ReconcilerSettings(namespace="-")
    add("--num-workers", type=int, default=reconciler.workers,
        help="items reconciled concurrently (default %(default)s)")  # fmt: skip
    add("--gpu-prefetch", type=int, default=reconciler.gpu_prefetch,
        help="requesters' GPU queries asked ahead of their passes at once; 0: none, each "
        "pass asks (default %(default)s)")  # fmt: skip
    add("--sleeper-limit", type=int, default=core.sleeper_limit,
        help="direct mode: sleepers kept per GPU (default %(default)s)")  # fmt: skip
    add(
        "--memory-check",
        "--debug-accelerator-memory",
        dest="memory_check",
        action=argparse.BooleanOptionalAction,
        default=core.memory_check,
        help="measure GPU memory through the requester before a wake or start (default: "
        "%(default)s)",
    )
    add("--memory-threshold-mib", type=int, default=core.memory_threshold_mib)
    add("--metrics-port", type=int, default=server.port, help="/metrics, /healthz, /readyz")
    add("--metrics-host", default=server.host)
    add("--debug-port", type=int, default=None, help="accepted for compatibility; unused")
    _timeouts(parser)
    _control_flags(parser)
    _populator_flags(parser)
    _leader_flags(parser)
    add("--log-level", default=LOG_LEVEL, choices=("debug", "info", "warning", "error"))
    add("-v", "--v", dest="verbosity", type=int, default=0, help="klog style: 4 or more = debug")
    return parser


def _timeouts(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    defaults = Settings()
    add("--instance-start-timeout", type=float, default=defaults.instance_start_timeout,
        help="seconds an instance or direct provider may take to become ready")  # fmt: skip
    add("--launcher-start-timeout", type=float, default=defaults.launcher_start_timeout)
    add("--failed-requester-delete-after", type=float,
        default=defaults.failed_requester_delete_after,
        help="seconds a failure stays in the requester's status before it is deleted")  # fmt: skip
    add("--sleep-deadline", type=float, default=defaults.sleep_deadline,
        help="seconds an unbind may try to sleep a server before deleting it")  # fmt: skip
    add("--stuck-launcher-after", type=float, default=defaults.stuck_launcher_after)
    add("--retry-after", type=float, default=defaults.retry_after)


def _control_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--control-auth", choices=(auth.MODE_ON, auth.MODE_OFF), default=auth.MODE_ON,
        help="sign every mutating call to launchers and requesters (default on); off only for "
        "installs with reference launchers or webhooks, which check nothing")  # fmt: skip
    add("--control-credentials-dir", type=Path, default=Path(auth.CREDENTIALS_DIR),
        help=f"the controller's client certificate ({auth.KEY_FILE}, {auth.CERT_FILE}) and the "
        f"control CA bundle ({auth.CA_FILE}); re-read on change (default %(default)s)")  # fmt: skip


def load_control(config: CliConfig) -> ControllerAuth | None:
    """The credentials `config` names, or None with `--control-auth off`; exits naming the
    flag and the fix when they are missing or unusable."""
    if config.control_auth == auth.MODE_OFF:
        return None
    try:
        return controller_auth_from_dir(config.control_credentials_dir)
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"fma-controller: --control-credentials-dir: {exc}; mount the controller's control "
            f"Secret there (the chart does), or pass --control-auth {auth.MODE_OFF}"
        ) from exc


def _populator_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--populator", action=argparse.BooleanOptionalAction, default=True,
        help="also run the launcher populator (default on)")  # fmt: skip
    populator_flags(parser)


def _leader_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
        help="run only while holding a coordination.k8s.io Lease (default on)")  # fmt: skip
    lease = LeaderElectionSettings(namespace="-", identity="-")
    add("--leader-elect-lease-name", default=lease.lease_name)
    add("--leader-elect-namespace", default=None, help="default: --namespace")
    add("--leader-elect-identity", default=None, help="default: <hostname>_<random>")
    add("--leader-elect-lease-duration", type=float, default=lease.lease_duration_s)
    add("--leader-elect-renew-deadline", type=float, default=lease.renew_deadline_s)
    add("--leader-elect-retry-period", type=float, default=lease.retry_period_s)


def parse_args(argv: Sequence[str] | None) -> CliConfig:
    args = _parser().parse_args(argv)
    core = cli.settings_from(Settings, args)
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
    populator = None
    if args.populator:
        populator = populator_settings(args, namespace=args.namespace)
    return CliConfig(
        connection=ConnectionSettings(kubeconfig=args.kubeconfig, context=args.context),
        reconciler=ReconcilerSettings(
            namespace=args.namespace,
            workers=args.num_workers,
            gpu_prefetch=args.gpu_prefetch,
            core=core,
        ),
        populator=populator,
        leader=leader,
        server=ServerSettings(host=args.metrics_host, port=args.metrics_port),
        log_level="debug" if args.verbosity >= 4 else args.log_level,
        control_auth=args.control_auth,
        control_credentials_dir=args.control_credentials_dir,
    )


class _Process:
    """The objects of one controller process and how they report health."""

    def __init__(self, config: CliConfig) -> None:
        self.config = config
        control = load_control(config)
        self.control = control
        self.client = KubeClient(http_client(config.connection))
        self.log_client = KubeClient(stream_client(config.connection))
        self.metrics = ControllerMetrics()
        self.recorder = EventRecorder(
            KubeEventSink(self.client),
            EventSettings(component=CONTROLLER_NAME, delay_s=EVENT_DELAY_S),
        )
        self.controller = DualPodsController(
            self.client,
            config.reconciler,
            metrics=self.metrics,
            recorder=self.recorder,
            control=control,
            log_client=self.log_client,
        )
        self.populator: Populator | None = None
        if config.populator is not None:
            self.populator = Populator(
                self.client,
                self.controller.informers,
                config.populator,
                self.metrics,
                instances=_StreamedInstances(self.controller),
                control=control,
            )
            self.controller.watches.listener = _NotifyPopulator(
                self.controller.watches.listener, self.populator
            )
        self.elector: LeaderElector | None = None
        if config.leader is not None:
            lease = config.leader
            self.elector = LeaderElector(
                KubeLeaseStore(self.client, lease.namespace, lease.lease_name),
                lease,
                on_leading_changed=self._leading_changed,
            )
        self.server = informer_server(
            self.metrics, lambda: self.controller.informers, config.server
        )
        liveness, readiness = self.server.liveness, self.server.readiness
        liveness.add("loop", lambda: (True, "serving"))
        readiness.add("controller", self._ready)
        if self.populator is not None:
            readiness.add("populator", self._populator_ready)
        if self.elector is not None:
            liveness.add("leader-election", self._lease_ok)

    def _leading_changed(self, leading: bool) -> None:
        name = self.config.leader.lease_name if self.config.leader else ""
        self.metrics.leader.labels(name).set(1 if leading else 0)
        _log.info("leading" if leading else "not leading")

    def _ready(self) -> tuple[bool, str]:
        if self.elector is not None and not self.elector.is_leader:
            return self.elector.healthy()
        return all_synced(self.controller.synced)()

    def _populator_ready(self) -> tuple[bool, str]:
        assert self.populator is not None
        if self.elector is not None and not self.elector.is_leader:
            return (True, "standby")
        return self.populator.health()

    def _lease_ok(self) -> tuple[bool, str]:
        assert self.elector is not None
        return self.elector.healthy() if self.elector.is_leader else (True, "standby")

    async def work(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.recorder.run(), name="events")
            if self.elector is None:
                await self._lead()
            else:
                await self.elector.run(self._lead)

    async def _lead(self) -> None:
        """Both controllers, while this process leads; one failing stops both."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name="dual-pods-controller")
            if self.populator is not None:
                group.create_task(self.populator.run(), name="launcher-populator")
            if self.control is not None:
                trust = self.control.trust_pem
                namespace = self.config.reconciler.namespace
                group.create_task(publish_trust(self.client, namespace, trust), name="trust")

    async def close(self) -> None:
        await self.server.close()
        await self.client.aclose()
        await self.log_client.aclose()


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


class _StreamedInstances:
    """The populator's view of launcher instances, from the dual-pods controller's streams.

    One stream per launcher serves both controllers; the populator needs the instances to delete
    empty launchers first and to keep launchers that still hold sleepers.
    """

    def __init__(self, controller: DualPodsController) -> None:
        self._controller = controller

    def instances(self, pod_uid: str) -> tuple[InstanceView, ...] | None:
        raw = self._controller.state.raw_instances(pod_uid)
        if raw is None:
            return None
        return self._controller.book.views(pod_uid, raw, time.time())


class _NotifyPopulator:
    """A launcher-stream listener that also tells the populator which launcher changed."""

    def __init__(self, inner: Any, populator: Populator) -> None:
        self._inner = inner
        self._populator = populator

    def on_relist(self, launcher: str, view: Any) -> None:
        self._inner.on_relist(launcher, view)
        self._populator.launcher_changed(launcher)

    def on_event(self, launcher: str, event: Any, view: Any) -> None:
        self._inner.on_event(launcher, event, view)
        if not getattr(event, "log_only", False):
            self._populator.launcher_changed(launcher)


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
        "fma-controller for namespace %s (populator %s, leader election %s, %d workers)",
        config.reconciler.namespace,
        "on" if config.populator else "off",
        f"on, lease {config.leader.lease_name} as {config.leader.identity}"
        if config.leader
        else "off",
        config.reconciler.workers,
    )
    return run_event_loop(lambda: serve(config))


if __name__ == "__main__":
    sys.exit(main())
