"""The instance manager: creates, observes and stops instances, and records every change.

All state lives on the event loop's thread and changes only between awaits, so the list, the
revision counter and the events always agree. Each change of an instance is one event, and the
event's revision is stamped on the instance before the event's object is taken: a client that
lists and then watches with `since=<list revision>` misses nothing and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from contract.launcher import EventType, SwapRequest, VllmConfig
from launcher import _proc, options, phases, preload, signature
from launcher import swap as swapping
from launcher.events import EventLog
from launcher.forkclient import ForkServer, ForkServerError
from launcher.gpus import GpuMap, child_env
from launcher.metrics import LauncherMetrics
from launcher.probes import Prober
from launcher.settings import Settings
from launcher.state import Instance, log_file_name, validate_instance_id

_log = logging.getLogger(__name__)


class NotFoundError(LookupError):
    pass


class ConflictError(ValueError):
    pass


class InvalidRequestError(ValueError):
    """The request cannot work as written (HTTP 422); the message names the field and the fix."""


class UnavailableError(RuntimeError):
    """The launcher cannot start instances right now (HTTP 503)."""


class SwapFailedError(RuntimeError):
    """A swap failed inside vLLM (HTTP 502); the broken instance has been deleted."""


SWAP_TIMEOUT_S = 300.0
"""Each vLLM call of a swap: the weights of a large model take a while to read from disk."""


def _unusable_text(config: VllmConfig) -> str | None:
    """A string the instance cannot be given, named by its field, or None.

    JSON can carry a lone surrogate (`"\\ud800"`), which no UTF-8 argv, environment or answer
    can hold; an environment variable's name must be non-empty without `=`, and no name or
    value may hold NUL: the child's `os.environ` refuses those only after the fork, which would
    turn the caller's mistake into a failed instance."""
    texts = [("options", config.options)]
    texts += [("gpu_uuids", gpu) for gpu in config.gpu_uuids or ()]
    for field, mapping in (("env_vars", config.env_vars), ("annotations", config.annotations)):
        for key, value in (mapping or {}).items():
            texts += [(field, key), (f"{field}[{key!r}]", value)]
    for field, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{field}: {ascii(text)[:80]} is not valid Unicode text (a lone surrogate)"
    for name, value in (config.env_vars or {}).items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            return f"env_vars: {name!r:.80} is not a usable environment variable (name or value)"
    return None


class InstanceManager:
    def __init__(self, settings: Settings, gpus: GpuMap, metrics: LauncherMetrics) -> None:
        self.settings = settings
        self.gpus = gpus
        self.metrics = metrics
        self.events = EventLog(settings.watch_buffer)
        self.instances: dict[str, Instance] = {}
        self._reserved: set[str] = set()
        self._early_exits: dict[str, tuple[int, int]] = {}
        self._prober = Prober()
        self._announcer: asyncio.Task[None] | None = None
        # Swap (issue 16): each instance's signature, computed off the loop right after its
        # create (from the files it started on: a later rewrite of them must not count), the
        # canary answers seen per model directory listing, and the fork server's name of each
        # swapped instance's process (its exit is reported under the name it was spawned as).
        self.signatures = signature.SignatureCache()
        self._swappable: dict[str, asyncio.Future[signature.Swappable | str]] = {}
        self._canaries: dict[tuple[str, str], swapping.Canary] = {}
        self._spawned_as: dict[str, str] = {}
        self._renamed: dict[str, str] = {}
        self.forkserver = ForkServer(
            entry=settings.instance_entry,
            on_exit=self._on_exit,
            on_lost=self._on_forkserver_lost,
            preload_file=settings.log_dir / preload.file_name(settings.instance_entry),
        )
        metrics.watch_phases(self.phase_counts)

    # ---- reading -------------------------------------------------------------------------
    def get(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise NotFoundError(f"Instance {instance_id} not found")
        return instance

    def snapshot(self) -> list[dict[str, Any]]:
        return [i.to_json() for i in self.instances.values()]

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter(i.phase for i in self.instances.values()))

    # ---- creating ------------------------------------------------------------------------
    async def create(self, instance_id: str | None, config: VllmConfig) -> Instance:
        """Validates, forks the child, records `CREATED`, and starts watching the child."""
        requested = time.monotonic()
        if instance_id is None:
            instance_id = str(uuid.uuid4())
        elif problem := validate_instance_id(instance_id):
            raise InvalidRequestError(problem)
        if instance_id in self.instances or instance_id in self._reserved:
            raise ConflictError(f"Instance {instance_id} already exists")
        config, argv, port, host = self._validate(config)
        self._reserved.add(instance_id)  # held across the awaits below: no duplicate can slip in
        try:
            await self._wait_forkserver()
            log_path, pid = await self._spawn(instance_id, argv, config.env_vars or {})
        finally:
            self._reserved.discard(instance_id)
        instance = Instance(
            instance_id=instance_id,
            config=config,
            port=port,
            host=host,
            log_path=log_path,
            created_at=requested,
            pid=pid,
        )
        self.instances[instance_id] = instance
        self._swappable[instance_id] = asyncio.ensure_future(
            asyncio.to_thread(signature.compute, config, self.signatures)
        )
        self.metrics.creates.inc()
        self._record("CREATED", instance)
        _log.info("instance %s: started pid %d on port %d", instance_id, pid, port)
        if early := self._early_exits.pop(instance_id, None):
            self._on_exit(instance_id, *early)
        else:
            instance.monitor = asyncio.create_task(self._monitor(instance))
        return instance

    async def _spawn(
        self, instance_id: str, argv: list[str], env_vars: dict[str, str]
    ) -> tuple[Path, int]:
        """Creates the empty log file and asks the fork server for the child; returns its PID."""
        info = self.forkserver.info
        command = options.build_command(
            argv,
            child_env(env_vars),
            sleep_mode_available=bool(info and info.sleep_mode_available),
            launcher_host=self.settings.host,
        )
        for note in command.notes:
            _log.info("instance %s: %s", instance_id, note)
        log_path = self.settings.log_dir / log_file_name(os.getpid(), instance_id)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_bytes(b"")
            pid = await self.forkserver.spawn(
                instance_id,
                argv=command.argv,
                env=command.env,
                log_path=log_path,
                notes=command.notes,
            )
        except ForkServerError as err:
            log_path.unlink(missing_ok=True)
            raise UnavailableError(f"cannot start instance {instance_id}: {err}") from None
        except BaseException:
            log_path.unlink(missing_ok=True)
            raise
        return log_path, pid

    def _validate(self, config: VllmConfig) -> tuple[VllmConfig, list[str], int, str]:
        """Pure checks before anything starts; raises `InvalidRequestError` naming the field."""
        if problem := _unusable_text(config):
            raise InvalidRequestError(problem)
        try:
            argv = options.split_options(config.options)
            port = options.instance_port(argv)
            cuda = self.gpus.visible_devices(config.gpu_uuids) if config.gpu_uuids else None
        except ValueError as err:  # OptionsError, UnknownGpuError
            raise InvalidRequestError(str(err)) from None
        if cuda is not None:
            env_vars = {**(config.env_vars or {}), "CUDA_VISIBLE_DEVICES": cuda}
            config = config.model_copy(update={"env_vars": env_vars})
        return config, argv, port, options.probe_host(argv, self.settings.host)

    async def _wait_forkserver(self) -> None:
        if self.forkserver.ready:
            return
        try:
            await self.forkserver.wait_ready(20)
        except Exception as err:
            raise UnavailableError(
                f"the launcher cannot start instances yet: {err}; retry later"
            ) from None
        if not self.forkserver.ready:
            raise UnavailableError("the launcher's fork server is not running")

    # ---- observing -----------------------------------------------------------------------
    def _record(self, type_: EventType, instance: Instance) -> None:
        instance.revision = self.events.next_revision()
        self.events.append(type_, instance.to_json())

    def _observe(self, instance: Instance, seen: phases.Observation) -> bool:
        """Applies an observation; records `UPDATED` if the phase changed. True if it did."""
        new = phases.advance(instance.phase, seen)
        if new == instance.phase:
            return False
        if instance.phase == "starting" and new in ("ready", "sleeping"):
            instance.ready_seconds = time.monotonic() - instance.created_at
            self.metrics.start_seconds.observe(instance.ready_seconds)
            _log.info(
                "instance %s: ready after %.2fs", instance.instance_id, instance.ready_seconds
            )
        instance.phase = new
        if isinstance(seen, phases.Exited | phases.StartTimedOut):
            instance.reason = phases.failure_reason(seen, self._log_tail(instance))
            cause = "exited" if isinstance(seen, phases.Exited) else "start_timeout"
            self.metrics.failures.labels(cause=cause).inc()
        if not isinstance(seen, phases.Exited):  # an exit is recorded as STOPPED by the caller
            self._record("UPDATED", instance)
        return True

    def _log_tail(self, instance: Instance) -> str:
        try:
            with instance.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
                return phases.tail_lines(log.read())
        except OSError:
            return ""

    async def _monitor(self, instance: Instance) -> None:
        """Probes until ready (or the start timeout), then follows the sleep state."""
        interval = self.settings.probe_interval
        deadline = instance.created_at + self.settings.start_timeout
        host, port = instance.host, instance.port
        while instance.status == "running" and instance.phase == "starting":
            self._note_log_growth(instance)
            if await self._prober.healthy(host, port):
                self._observe(instance, phases.Healthy())
                await self._first_canary(instance)
                break
            if time.monotonic() >= deadline:
                self._observe(instance, phases.StartTimedOut(self.settings.start_timeout))
                _log.warning("instance %s: not ready in time; stopping it", instance.instance_id)
                await self._stop_process(instance)
                return
            await asyncio.sleep(min(interval / 4, 0.25))
        while instance.status == "running" and instance.phase != "failed":
            self._note_log_growth(instance)
            sleeping = await self._prober.sleeping(host, port)
            if sleeping is not None:
                self._observe(instance, phases.SleepState(sleeping))
            await asyncio.sleep(interval)

    async def _first_canary(self, instance: Instance) -> None:
        """Issue 16: once a swappable instance is ready (and reported so), its answer to the
        swap's canary is recorded for the files it started on, so a later swap back to them is
        checked too; and the engine's first request, which costs vLLM its one-time set-up
        (seconds on CPU), is paid here rather than by the first swap into it. A fresh engine's
        answer is the truth about the files as they are now, so it replaces what an earlier
        swap recorded (files rewritten in place keep their directory and signature). A failure
        (the instance went to sleep meanwhile, the server has no completions) records nothing."""
        pending = self._swappable.get(instance.instance_id)
        target = await pending if pending is not None else None
        if not isinstance(target, signature.Swappable):
            return
        base = f"http://{instance.host}:{instance.port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=SWAP_TIMEOUT_S) as client:
                _served, answer = await swapping.canary(client)
        except swapping.SwapStepError as err:
            self.metrics.canaries.labels(at="start", outcome="failed").inc()
            _log.info("instance %s: no canary answer at start: %s", instance.instance_id, err)
            return
        self._canaries[(str(target.model_dir), target.signature.digest)] = answer
        self.metrics.canaries.labels(at="start", outcome="recorded").inc()

    def _note_log_growth(self, instance: Instance) -> None:
        """Announces new log bytes as `UPDATED` (with `log_size`), at most once per probe.

        This is what lets a watcher relay the log (the controller forwards it to the
        requester's stdout) without polling every instance's log endpoint: the watch it holds
        anyway says when, and up to where, there is something new to read.
        """
        try:
            size = instance.log_path.stat().st_size
        except OSError:
            return
        if size > instance.log_size:
            instance.log_size = size
            if not instance.deleting:
                self._record("UPDATED", instance)

    def _on_exit(self, ref: str, pid: int, exit_code: int) -> None:
        ref = self._renamed.get(ref, ref)
        instance = self.instances.get(ref)
        if instance is None or instance.pid != pid:
            if ref in self._reserved:  # exited before create() registered it
                self._early_exits[ref] = (pid, exit_code)
            return
        instance.status = "stopped"
        instance.exit_code = exit_code
        with contextlib.suppress(OSError):  # the STOPPED event tells how far the log goes
            instance.log_size = max(instance.log_size, instance.log_path.stat().st_size)
        instance.exited.set()
        if instance.deleting:
            return  # DELETE records the DELETED event
        self._observe(instance, phases.Exited(exit_code))
        _log.warning("instance %s: %s", ref, phases.describe_exit(exit_code))
        self._record("STOPPED", instance)

    def _on_forkserver_lost(self) -> None:
        self.metrics.failures.labels(cause="forkserver_lost").inc()
        for instance in list(self.instances.values()):
            if instance.status == "running" and instance.pid is not None:
                self._on_exit(instance.instance_id, instance.pid, -int(signal.SIGKILL))

    # ---- stopping ------------------------------------------------------------------------
    async def _stop_process(self, instance: Instance) -> None:
        """SIGTERM the instance's process group, SIGKILL after the grace period, await the exit."""
        if instance.status != "running" or instance.pid is None:
            return
        _proc.kill_group(instance.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(instance.exited.wait(), self.settings.stop_grace)
            return
        except TimeoutError:
            _log.warning(
                "instance %s ignored SIGTERM for %gs; killing it",
                instance.instance_id,
                self.settings.stop_grace,
            )
        _proc.kill_group(instance.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(instance.exited.wait(), 30)
        except TimeoutError:
            _log.error("instance %s: pid %d survived SIGKILL", instance.instance_id, instance.pid)

    async def delete(self, instance_id: str) -> Instance:
        instance = self.get(instance_id)
        if instance.deleting:
            raise NotFoundError(f"Instance {instance_id} is already being deleted")
        instance.deleting = True
        if instance.monitor is not None:
            instance.monitor.cancel()
        await self._stop_process(instance)
        instance.status = "stopped"
        with contextlib.suppress(OSError):
            instance.log_path.unlink(missing_ok=True)
        del self.instances[instance_id]
        self._forget_swap_state(instance_id)
        self._record("DELETED", instance)
        _log.info("instance %s: deleted", instance_id)
        return instance

    # ---- swapping (issue 16) -------------------------------------------------------------
    def _forget_swap_state(self, instance_id: str) -> None:
        self._swappable.pop(instance_id, None)
        self._renamed.pop(self._spawned_as.pop(instance_id, instance_id), None)

    async def _catch_up_on_sleep(self, instance: Instance) -> None:
        """The controller puts an instance to sleep by calling vLLM itself, and `phase` follows
        on the next probe (up to `probe_interval` later); a swap asks vLLM at once instead."""
        if instance.phase != "ready" or instance.status != "running" or instance.deleting:
            return
        if await self._prober.sleeping(instance.host, instance.port):
            self._observe(instance, phases.SleepState(sleeping=True))

    async def swap(self, old_id: str, request: SwapRequest) -> Instance:
        """Turns the sleeping instance `old_id` into `request.new_instance_id` with the
        request's weights: DELETED of the old ID, then CREATED of the new one, one process.

        Refused (nothing touched) when the old instance is not sleeping (409), the new ID is
        taken (409), or the two signatures differ or either has none (422). A failure inside
        vLLM deletes the old instance, whose engine may be half-written, and raises
        `SwapFailedError` with the cause (502).
        """
        new_id = request.new_instance_id
        if problem := validate_instance_id(new_id):
            raise InvalidRequestError(problem)
        old = self.get(old_id)
        if new_id in self.instances or new_id in self._reserved:
            raise ConflictError(f"Instance {new_id} already exists")
        await self._catch_up_on_sleep(old)
        if old.deleting or old.status != "running" or old.phase != "sleeping":
            raise ConflictError(
                f"Instance {old_id} cannot be swapped: it is {old.status}/{old.phase}"
                + (", being deleted" if old.deleting else "")
                + "; only a sleeping instance can take new weights"
            )
        config, _argv, port, host = self._validate(VllmConfig.model_validate(request.to_json()))
        try:
            target = await self._compatible(old_id, config)
        except InvalidRequestError:
            self.metrics.swaps.labels(outcome="refused").inc()
            raise
        self._reserved.update((new_id, old_id))  # no create of new_id, no second swap of old_id
        old.deleting = True  # a DELETE now waits for the outcome (404, as for any deletion)
        if old.monitor is not None:
            old.monitor.cancel()
        try:
            result = await self._swap_engine(old, target)
        except swapping.SwapStepError as err:
            old.deleting = False
            self._reserved.difference_update((new_id, old_id))
            self.metrics.swaps.labels(outcome="failed").inc()
            message = f"swapping instance {old_id} to {new_id} failed: {err}"
            _log.warning("%s; deleting the instance", message)
            with contextlib.suppress(NotFoundError):
                await self.delete(old_id)
            raise SwapFailedError(f"{message}; instance {old_id} was deleted") from None
        finally:
            self._reserved.difference_update((new_id, old_id))
        instance = Instance(
            instance_id=new_id,
            config=config,
            port=port,
            host=host,
            log_path=old.log_path,
            created_at=time.monotonic(),
            pid=old.pid,
            phase="ready",
            log_size=old.log_size,
            ready_seconds=result.seconds,
        )
        self.metrics.swaps.labels(outcome="swapped").inc()
        self.metrics.swap_seconds.observe(result.seconds)
        old.status = "stopped"
        del self.instances[old_id]
        spawned_as = self._spawned_as.pop(old_id, old_id)
        self._swappable.pop(old_id, None)
        self._record("DELETED", old)
        self.instances[new_id] = instance
        self._spawned_as[new_id] = spawned_as
        self._renamed[spawned_as] = new_id
        self._swappable[new_id] = asyncio.get_running_loop().create_future()
        self._swappable[new_id].set_result(target)
        self._record("CREATED", instance)
        instance.monitor = asyncio.create_task(self._monitor(instance))
        _log.info(
            "instance %s: now %s, weights from %s, swapped in %.3fs (pid %s)",
            old_id,
            new_id,
            target.model_dir,
            result.seconds,
            old.pid,
        )
        return instance

    async def _compatible(self, old_id: str, config: VllmConfig) -> signature.Swappable:
        """The new config's signature when it equals the sleeper's; else 422 naming why."""
        pending = self._swappable.get(old_id)
        old_sig = await pending if pending is not None else "its signature is unknown"
        new_sig = await asyncio.to_thread(signature.compute, config, self.signatures)
        if isinstance(old_sig, str):
            raise InvalidRequestError(f"Instance {old_id} cannot be swapped: {old_sig}")
        if isinstance(new_sig, str):
            raise InvalidRequestError(f"The requested instance cannot be swapped in: {new_sig}")
        if differing := old_sig.signature.differences(new_sig.signature):
            raise InvalidRequestError(
                f"Instance {old_id} is not swap-compatible with the request: "
                f"{', '.join(differing)} differ"
            )
        return new_sig

    async def _swap_engine(self, old: Instance, target: signature.Swappable) -> swapping.SwapResult:
        """The vLLM calls, then the canary compared with the one last seen for these files."""
        info = self.forkserver.info
        base = f"http://{old.host}:{old.port}"
        async with httpx.AsyncClient(base_url=base, timeout=SWAP_TIMEOUT_S) as client:
            result = await swapping.swap_weights(
                client,
                str(target.model_dir),
                sleep_mode=bool(info and info.sleep_mode_available),
            )
        key = (str(target.model_dir), target.signature.digest)
        seen = self._canaries.get(key)
        if seen is not None and not seen.matches(result.canary):
            self.metrics.canaries.labels(at="swap", outcome="differed").inc()
            raise swapping.SwapStepError(
                f"the canary completion {result.canary} differs from {seen}, seen before "
                f"on the weights in {target.model_dir}"
            )
        outcome = "recorded" if seen is None else "matched"
        self.metrics.canaries.labels(at="swap", outcome=outcome).inc()
        self._canaries[key] = result.canary
        return result

    async def delete_all(self) -> list[Instance]:
        """Deletes every instance not already being deleted; returns those it stopped."""
        ids = [i for i, inst in self.instances.items() if not inst.deleting]
        results = await asyncio.gather(*(self.delete(i) for i in ids), return_exceptions=True)
        return [r for r in results if isinstance(r, Instance)]

    # ---- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.forkserver.start()
        self._announcer = asyncio.create_task(self._announce_ready(), name="forkserver-ready")

    async def _announce_ready(self) -> None:
        try:
            info = await self.forkserver.wait_ready(self.settings.forkserver_timeout)
        except Exception as err:
            _log.error("the launcher cannot start instances: %s", err)
            return
        _log.info(
            "fork server %d ready: imported %s in %.1fs; sleep mode %s; %d thread(s)",
            info.pid,
            self.settings.instance_entry,
            info.import_seconds,
            "available" if info.sleep_mode_available else "unavailable (no CUDA)",
            info.threads,
        )
        if info.threads > 1:
            _log.warning("the fork server runs %d threads; forks copy only one", info.threads)

    async def shutdown(self) -> None:
        """Ends watches, stops every instance the DELETE way, then the fork server."""
        self.events.close()
        stopped = await self.delete_all()
        if stopped:
            _log.info("stopped %d instance(s) at shutdown", len(stopped))
        await self.forkserver.close()
        await self._prober.close()
