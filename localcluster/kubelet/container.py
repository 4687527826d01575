"""One container of one Pod: prepare, run, probe, restart (the kubelet's container runtime part).

`ContainerRunner.supervise` runs instances of the container until the restart policy says stop
or `stop` is called. Each instance is a local process group (see `process`), or an app inside
this process when the image maps its program so (see `inprocess`); its output goes to the
instance's CRI log file; its probes run beside it. The decisions (argv, env, restart and
back-off, probe results) come from the pure modules; this module only sequences them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from localcluster.kubelet import envresolve, images
from localcluster.kubelet.backoff import crash_loop_message, should_restart
from localcluster.kubelet.clock import rfc3339
from localcluster.kubelet.gpus import visible_devices_env
from localcluster.kubelet.inprocess import AppInstance, AppLoadError, load_app
from localcluster.kubelet.instances import ContainerInstance, ProcessInstance
from localcluster.kubelet.logfiles import LogWriter
from localcluster.kubelet.podspec import ContainerSpec, PodView
from localcluster.kubelet.podstatus import ContainerStatus, Running, Terminated, Waiting
from localcluster.kubelet.probers import ProbeTarget, run_probe
from localcluster.kubelet.probestate import ContainerProbes, ProbeTracker
from localcluster.kubelet.process import spawn
from localcluster.kubelet.services import Services

_log = logging.getLogger(__name__)
_PUMP_DRAIN_SECONDS = 2.0


@dataclass
class PodContext:
    """What the containers of one Pod share."""

    pod: Callable[[], PodView]  # the latest view of the Pod
    pod_ip: str
    host_ip: str
    node_allocatable: dict[str, str]
    log_dir: Path
    work_dir: Path
    on_change: Callable[[], None]
    on_readiness_change: Callable[[], None]
    """A probe changed readiness: the status is written at once (the real kubelet's prober
    hands readiness straight to its status manager; state changes wait for PLEG's relist)."""


@dataclass(frozen=True)
class Prepared:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    image_id: str
    app: str | None = None  # run in-process (see `inprocess`) instead of as a process


class _StartError(Exception):
    """The instance could not start (containerd's StartError); the message says why."""


class ContainerRunner:
    def __init__(
        self,
        services: Services,
        ctx: PodContext,
        spec: ContainerSpec,
        status: ContainerStatus,
        gpus: tuple[str, ...],
    ) -> None:
        self.services = services
        self.ctx = ctx
        self.spec = spec
        self.status = status
        self.gpus = gpus
        self._stop = asyncio.Event()
        self._kill_deadline = float("inf")
        self._key = f"{ctx.pod().uid}/{spec.name}"
        self._probe_scale = ctx.pod().probe_period_scale or services.config.probe_period_scale

    # ----- public --------------------------------------------------------------------------

    async def supervise(self) -> Terminated | None:
        """Runs instances until one ends for good; None if none ever ran before a stop."""
        last: Terminated | None = None
        while not self._stop.is_set():
            ended = await self._run_instance()
            if ended is None:
                return last
            last = ended
            pod = self.ctx.pod()
            if self._stop.is_set() or not should_restart(
                pod.restart_policy, ended.exit_code, init=self.status.init
            ):
                return last
            if not await self._back_off(ended):
                return last
            self.status.restart_count += 1
        return last

    def stop(self, grace_seconds: float) -> None:
        """Asks the container to end: SIGTERM now, SIGKILL after the grace (shortening allowed)."""
        deadline = time.monotonic() + grace_seconds
        self._kill_deadline = min(self._kill_deadline, deadline)
        self._stop.set()

    # ----- steps ---------------------------------------------------------------------------

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleeps; True if the time passed, False if a stop came first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=max(seconds, 0))
            return False
        return True

    def _set(self, state: Waiting | Running | Terminated) -> None:
        self.status.state = state
        if not isinstance(state, Running):
            self.status.ready = False
            self.status.started = False
        self.ctx.on_change()

    def _event(self, kind: str, reason: str, message: str) -> None:
        self.services.events.pod_event(
            self.ctx.pod(),
            "Warning" if kind == "Warning" else "Normal",
            reason,
            message,
            container=self.spec.name,
            init=self.status.init,
        )

    async def _back_off(self, ended: Terminated) -> bool:
        """Waits out CrashLoopBackOff if due; False if stopped meanwhile."""
        backoff = self.services.restart_backoff
        finished = time.monotonic()
        delay = backoff.delay(self._key, finished, time.monotonic())
        self.status.last_state = ended
        if delay > 0:
            pod = self.ctx.pod()
            message = crash_loop_message(
                backoff.current(self._key), self.spec.name, pod.name, pod.namespace, pod.uid
            )
            self._set(Waiting("CrashLoopBackOff", message))
            self._event("Warning", "BackOff", "Back-off restarting failed container")
            if not await self._sleep_or_stop(delay):
                return False
        backoff.record_restart(self._key, finished, time.monotonic())
        return True

    async def _prepare(self) -> Prepared | None:
        """Image and environment; waits (ErrImagePull, CreateContainerConfigError) until they
        resolve or a stop comes (None)."""
        image = images.find_image(self.services.config.images, self.spec.image)
        if image is None:
            message = images.image_not_found_message(
                self.spec.image, str(self.services.config_path)
            )
            self._set(Waiting("ErrImagePull", message))
            self._event("Warning", "Failed", f"Failed to pull image: {message}")
            if not await self._sleep_or_stop(
                self.services.config.image_pull_backoff.initial_seconds
            ):
                return None
            self._set(
                Waiting(
                    "ImagePullBackOff", f'Back-off pulling image "{self.spec.image}"; {message}'
                )
            )
            await self._stop.wait()
            return None
        retry = 1.0
        while True:
            try:
                env = await self._environment(image.env, image.path)
                break
            except envresolve.EnvError as exc:
                self._set(Waiting("CreateContainerConfigError", str(exc)))
                self._event("Warning", "Failed", f"Error: {exc}")
                if not await self._sleep_or_stop(retry):
                    return None
                retry = min(retry * 2, 10.0)
        default_cwd = self.ctx.work_dir / self.spec.name
        default_cwd.mkdir(parents=True, exist_ok=True)
        argv = images.resolve_argv(self.spec, image, env)
        return Prepared(
            argv=argv,
            env=env,
            cwd=images.resolve_cwd(self.spec, image, str(default_cwd)),
            image_id=images.image_id(self.spec.image, image),
            app=image.in_process.get(PurePath(argv[0]).name) if argv else None,
        )

    async def _environment(
        self, image_env: dict[str, str], image_path: list[str]
    ) -> dict[str, str]:
        pod = self.ctx.pod()
        runtime = envresolve.PodRuntime(
            self.ctx.pod_ip, self.ctx.host_ip, self.ctx.node_allocatable
        )
        fetched: dict[envresolve.ObjectRef, dict[str, str] | None] = {}
        for kind, name in envresolve.referenced_objects(self.spec):
            raw = await self.services.api.get_object(kind, pod.namespace, name)
            convert = envresolve.config_map_data if kind == "ConfigMap" else envresolve.secret_data
            fetched[(kind, name)] = convert(raw) if raw is not None else None
        container_env = envresolve.resolve_env(pod, self.spec, runtime, fetched)
        return envresolve.process_env(
            host_environ=self.services.host_environ,
            keep=self.services.config.host_env,
            image_env=image_env,
            image_path=image_path,
            downward=envresolve.downward_defaults(pod, runtime),
            device_env=visible_devices_env(self.gpus),
            container_env=container_env,
        )

    async def _run_instance(self) -> Terminated | None:
        prepared = await self._prepare()
        if prepared is None:
            return None
        container_id = f"hollow://{secrets.token_hex(32)}"
        self.status.image_id = prepared.image_id
        self.status.container_id = container_id
        log_path = self.ctx.log_dir / self.spec.name / f"{self.status.restart_count}.log"
        writer = LogWriter(log_path)
        started_at = rfc3339()
        try:
            instance = await self._start(prepared, writer, container_id)
        except _StartError as exc:
            return self._start_failed(writer, container_id, str(exc))
        self._event("Normal", "Started", f"Started container {self.spec.name}")
        try:
            return await self._watch_instance(instance, writer, prepared, container_id, started_at)
        finally:
            instance.discard()

    async def _start(
        self, prepared: Prepared, writer: LogWriter, container_id: str
    ) -> ContainerInstance:
        """An in-process app when the image says so, else a process group."""
        if prepared.app is not None:
            try:
                app = load_app(prepared.app)
            except AppLoadError as exc:
                raise _StartError(str(exc)) from None
            return AppInstance(
                app, argv=prepared.argv, env=prepared.env, cwd=prepared.cwd, log=writer
            )
        executable = (
            images.find_executable(prepared.argv[0], prepared.env, prepared.cwd)
            if prepared.argv
            else None
        )
        if executable is None:
            raise _StartError(images.describe_missing(prepared.argv, prepared.env))
        try:
            process = await spawn(
                [executable, *prepared.argv[1:]], env=prepared.env, cwd=prepared.cwd
            )
        except OSError as exc:
            raise _StartError(f"starting {prepared.argv[0]}: {exc}") from None
        registry = self.services.registry
        registry.add(container_id, process.pid)
        return ProcessInstance(process, writer, lambda: registry.remove(container_id))

    def _start_failed(self, writer: LogWriter, container_id: str, message: str) -> Terminated:
        now = rfc3339()
        writer.finish(128, now)
        ended = Terminated(128, "StartError", now, now, message, container_id)
        self._event("Warning", "Failed", f"Error: {message}")
        self._set(ended)
        return ended

    async def _watch_instance(
        self,
        instance: ContainerInstance,
        writer: LogWriter,
        prepared: Prepared,
        container_id: str,
        started_at: str,
    ) -> Terminated:
        if not self._stop.is_set():
            self._kill_deadline = float("inf")
        probes = ContainerProbes.for_container(self.spec)
        fatal = asyncio.Event()
        self._set(Running(started_at))
        self._update_readiness(probes)
        target = ProbeTarget(self.ctx.pod_ip, self.spec.ports, prepared.env, prepared.cwd)
        prober = asyncio.create_task(self._probe_all(probes, target, fatal))
        waits: set[asyncio.Task[Any]] = {
            asyncio.create_task(instance.wait()),
            asyncio.create_task(self._stop.wait()),
            asyncio.create_task(fatal.wait()),
        }
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        prober.cancel()
        if instance.running:
            if fatal.is_set():
                grace = self.ctx.pod().termination_grace_seconds
                self._kill_deadline = min(self._kill_deadline, time.monotonic() + grace)
            await self._kill(instance)
        code = await instance.wait()
        await instance.drain_output(_PUMP_DRAIN_SECONDS)
        finished = rfc3339()
        writer.finish(code, finished)
        reason = "Completed" if code == 0 else "Error"
        ended = Terminated(code, reason, finished, started_at, None, container_id)
        self._set(ended)
        return ended

    async def _kill(self, instance: ContainerInstance) -> None:
        """SIGTERM, then SIGKILL at the (possibly shortened) deadline."""
        self._event("Normal", "Killing", f"Stopping container {self.spec.name}")
        instance.signal(signal.SIGTERM)
        while instance.running:
            remaining = self._kill_deadline - time.monotonic()
            if remaining <= 0:
                instance.signal(signal.SIGKILL)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(instance.wait()), timeout=min(remaining, 0.2))

    def _update_readiness(self, probes: ContainerProbes) -> None:
        ready, started = probes.ready, probes.started
        if (ready, started) != (self.status.ready, self.status.started):
            self.status.ready, self.status.started = ready, started
            self.ctx.on_readiness_change()

    async def _probe_all(
        self, probes: ContainerProbes, target: ProbeTarget, fatal: asyncio.Event
    ) -> None:
        trackers = [t for t in (probes.startup, probes.readiness, probes.liveness) if t is not None]
        if self.status.init or not trackers:
            return
        await asyncio.gather(*(self._probe_loop(t, probes, target, fatal) for t in trackers))

    async def _probe_loop(
        self,
        tracker: ProbeTracker,
        probes: ContainerProbes,
        target: ProbeTarget,
        fatal: asyncio.Event,
    ) -> None:
        await asyncio.sleep(tracker.spec.initial_delay_seconds)
        while not tracker.on_hold:
            if probes.should_run(tracker):
                outcome = await run_probe(tracker.spec, target)
                if tracker.observe(outcome.success):
                    self._update_readiness(probes)
                    if not outcome.success:
                        kind = tracker.kind.capitalize()
                        self._event(
                            "Warning", "Unhealthy", f"{kind} probe failed: {outcome.detail}"
                        )
                    if probes.failed_fatally():
                        message = f"failed {tracker.kind} probe, will be restarted"
                        self._event("Normal", "Killing", f"Container {self.spec.name} {message}")
                        fatal.set()
                        return
            await asyncio.sleep(tracker.spec.period_seconds * self._probe_scale)
