"""The executor: performs one decision's actions, in order, and reports their results.

The contract is the decision core's (controller/core/_actions.py):

- actions run in order; the first failure stops the pass (the worker then retries the item
  with backoff) and is reported to `record_failure`, every success to `record_success`, which
  is how answers (GPUs, sleep state, relayed readiness) reach the next decision;
- Kubernetes writes carry the UID and resourceVersion the decision saw; a second write to the
  same Pod in one pass carries the version the first one returned;
- the item's next pass waits until the caches show this pass's own writes (`Expectations` for
  Pods, `InstanceBook` holds for the launcher's instances); every Pod the apiserver returns is
  written through to the Pod cache (`Informer.write_through`), so that wait is usually none.

Besides, the executor tells what happened: a Normal Event per significant success on the
user's Pod (`_notes`), `fma_actuation_seconds` for `ObserveActuation` (measured up to the
moment the ready relay was answered), `fma_launcher_create_seconds` for launcher creates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.core import (
    Action,
    ConfigureProxy,
    CreateInstance,
    CreateLauncher,
    CreatePod,
    DeleteInstance,
    DeletePod,
    EmitEvent,
    EnqueueRequesters,
    ForgetServer,
    ObserveActuation,
    QueryAccelerators,
    QueryLogTail,
    QueryMemoryUsage,
    QuerySleeping,
    RelayReadiness,
    Remember,
    Requeue,
    ServerMemory,
    Sleep,
    UpdatePod,
    Wake,
    record_failure,
    record_success,
)
from controller.core._actions import SwapInstance
from controller.observability import ControllerMetrics
from controller.reconciler._expectations import Expectations
from controller.reconciler._http import CallError, RefusedError
from controller.reconciler._instances import InstanceBook, Override
from controller.reconciler._keys import Key
from controller.reconciler._notes import note_for
from controller.reconciler._peers import Peers
from controller.reconciler._podwrites import PodWrites
from controller.reconciler._prefetch import GpuPrefetch
from controller.reconciler._state import ClusterState
from kube import ApiError, EventRecorder, JsonObject, metadata

_log = logging.getLogger(__name__)
_QUERIES = (QueryAccelerators, QueryMemoryUsage, QuerySleeping, QueryLogTail)
_LOGGED = (CreatePod, DeletePod, CreateInstance, DeleteInstance, SwapInstance)
"""Actions logged at INFO when done: what creates or deletes a Pod or an instance. The steps of
an actuation (bind, wake, relay...) are logged at DEBUG; at INFO each actuation has one line,
`actuation <path> took ...` (`_observe`), and the requester's Events say the rest. (One line per
step was half a dozen JSON lines per hot actuation, 4% of the controller's CPU.)"""
_SLOW = (Wake, Sleep, DeleteInstance, SwapInstance)
"""Calls that take seconds: vLLM moves its weights, or a launcher waits for a child to exit.
(A stub's GPU query is not one: with it detached, 20 hot actuations at once ran side by side
instead of first come, first served, and the median went from 336 to 421-446 ms in
bench/hot_path.py.)"""


@dataclass(frozen=True, kw_only=True)
class PassContext:
    """What one pass is about: the item, when it was decided, whom to tell."""

    item: Key
    decided_at: float
    """Wall-clock time of the snapshot the actions were decided on."""
    isc_name: str = ""
    target: JsonObject | None = None
    """The Pod that gets the Normal Events (the requester, else the provider or launcher)."""


@dataclass(kw_only=True)
class Outcome:
    memory: ServerMemory
    requeue_after: float | None = None
    failure: str | None = None
    acted: bool = False
    """Something changed (a write, a call, a memory update): decide again."""
    answered: bool = False
    """A query succeeded: the next decision has what it asked for, and should not wait for
    the pass's `Requeue` (which is there for when the answer does not come)."""
    wrote: bool = False
    """A Pod was written: the next decision reads it (its cache event does not queue the item
    again, `DualPodsController._write_through`), so it does not wait for the `Requeue` either."""
    forget: bool = False
    expected: bool = False
    """The failure is routine: a stale cache (409, 404) or a peer still starting."""
    poll_after: float | None = None
    """The failed action asked to be retried after this, not on the backoff."""


@dataclass
class _Written:
    """The Pods this pass wrote, as the apiserver returned them (by UID)."""

    pods: dict[str, JsonObject] = field(default_factory=dict)

    def version(self, uid: str, default: str) -> str:
        obj = self.pods.get(uid)
        return str(metadata(obj).get("resourceVersion") or default) if obj else default


@dataclass(kw_only=True, eq=False)
class Executor:
    """Runs actions against the apiserver and the peers; see the module docstring.

    A dataclass: it holds its collaborators and nothing else of its own.
    """

    pods: PodWrites
    peers: Peers
    state: ClusterState
    book: InstanceBook
    expectations: Expectations
    recorder: EventRecorder
    metrics: ControllerMetrics
    enqueue_node: Callable[[str], None]
    prefetch: GpuPrefetch | None = None
    """GPU queries asked ahead; None: each pass asks."""
    write_through: Callable[[JsonObject, Key], bool] = lambda _obj, _item: False
    """Stores a Pod the apiserver returned in the cache at once, for the pass of the item."""
    clock: Callable[[], float] = time.time

    @staticmethod
    def slow(actions: Sequence[Action]) -> bool:
        """Whether running `actions` may take seconds (the pass should not hold a worker)."""
        return any(isinstance(action, _SLOW) for action in actions)

    async def run(
        self, actions: Sequence[Action], memory: ServerMemory, ctx: PassContext
    ) -> Outcome:
        outcome = Outcome(memory=memory)
        written = _Written()
        for action in actions:
            if self._bookkeeping(action, outcome, ctx):
                continue
            if (
                isinstance(action, QueryAccelerators)
                and self.prefetch is not None
                and self.prefetch.pending(action)
            ):
                # The prefetch queues this server again when it has the answer (or gives up).
                outcome.requeue_after = self.prefetch.window_s
                break
            started = time.monotonic()
            try:
                result, created = await self._perform(action, written, ctx)
            except (ApiError, CallError, ValueError) as exc:
                error = str(exc)
                now = self.clock()
                refused = isinstance(exc, RefusedError)
                outcome.memory = record_failure(
                    outcome.memory, action, now=now, error=error, refused=refused
                )
                outcome.failure = f"{type(action).__name__} failed: {error}"
                outcome.expected = _routine(action, exc)
                if isinstance(action, QueryAccelerators) and not isinstance(exc, RefusedError):
                    outcome.poll_after = action.poll_after
                break
            outcome.memory = record_success(outcome.memory, action, now=self.clock(), result=result)
            outcome.acted = True
            outcome.answered = outcome.answered or isinstance(action, _QUERIES)
            outcome.wrote = outcome.wrote or isinstance(action, UpdatePod | DeletePod | CreatePod)
            self._report(action, ctx, created, time.monotonic() - started)
        return outcome

    def _bookkeeping(self, action: Action, outcome: Outcome, ctx: PassContext) -> bool:
        """Actions without I/O; True when `action` was one of them."""
        match action:
            case Requeue(after=after):
                current = outcome.requeue_after
                outcome.requeue_after = after if current is None else min(current, after)
            case ForgetServer():
                outcome.forget = True
            case EnqueueRequesters(node=node):
                self.enqueue_node(node)
            case EmitEvent():
                self._emit(action)
            case Remember():
                outcome.memory = record_success(outcome.memory, action, now=self.clock())
                outcome.acted = True
            case ObserveActuation():
                self._observe(action, ctx, outcome.memory)
                outcome.memory = record_success(outcome.memory, action, now=self.clock())
            case _:
                return False
        return True

    async def _perform(
        self, action: Action, written: _Written, ctx: PassContext
    ) -> tuple[object, str]:
        """Performs one I/O action; returns (result for the memory, name of a created Pod)."""
        if isinstance(action, UpdatePod | DeletePod | CreatePod):
            return await self._pod_write(action, written, ctx)
        if isinstance(action, SwapInstance):
            return await self._swap(action, ctx), ""
        return await self._peer_call(action, ctx.isc_name), ""

    async def _swap(self, action: SwapInstance, ctx: PassContext) -> str:
        """Swap (issue 16), else warm within the same action; returns the path taken.

        The launcher refuses a swap it cannot do before it touches vLLM (the sleeper stays),
        and deletes the sleeper when vLLM failed half-way; either way the requester must not
        wait for another pass to get its server, so the cause goes into a Warning Event and
        the instance is started as the warm path would: the sleeper, which holds the desired
        port, is deleted (a 404 counts as done) and the config PUT.
        """
        peers, isc = self.peers, ctx.isc_name
        launcher, source, new = action.launcher, action.source_id, action.instance_id
        seen = self.state.instance_revision(launcher.uid, source)
        at = None if seen is None else (launcher.uid, source, seen)
        try:
            await peers.swap_instance(action, isc)
        except CallError as exc:
            message = (
                f"swapping new weights into sleeping vLLM instance {source} for instance {new} "
                f'in launcher Pod "{launcher.name}" failed: {exc}; starting it fresh (warm)'
            )
            self._tell(ctx, action, "Warning", "SwapFailed", message)
            delete = DeleteInstance(
                launcher=launcher, ip=action.ip, instance_id=source, reason="reclaim"
            )
            await self._then_hold(at, peers.delete_instance(delete, isc), "gone")
            await peers.create_instance(action, isc)
            return "warm"
        if at is not None:
            self.book.hold(at[0], at[1], "gone", at[2], now=self.clock())
        message = (
            f"vLLM instance {new} reuses the engine of sleeping instance {source} in launcher "
            f'Pod "{launcher.name}": new weights swapped in, no new process'
        )
        self._tell(ctx, action, "Normal", "InstanceSwapped", message)
        return "swap"

    def _tell(
        self,
        ctx: PassContext,
        action: Action,
        type_: Literal["Normal", "Warning"],
        reason: str,
        message: str,
    ) -> None:
        target = ctx.target or self._pod_of(action)
        if target is not None:
            self.recorder.event(target, type=type_, reason=reason, message=message)
        _log.info("%s: %s: %s", _describe(ctx.item), reason, message)

    async def _pod_write(
        self, action: UpdatePod | DeletePod | CreatePod, written: _Written, ctx: PassContext
    ) -> tuple[object, str]:
        if isinstance(action, CreatePod):
            started = time.monotonic()
            success = "false"
            try:
                created, expectation = await self.pods.create(action)
                success = "true"
            finally:
                if isinstance(action, CreateLauncher):
                    self.metrics.launcher_create_seconds.labels(
                        self.pods.namespace, action.lc_name, success
                    ).observe(time.monotonic() - started)
            self.write_through(created, ctx.item)
            self.expectations.expect(ctx.item, expectation)
            return None, expectation.name
        ref = action.pod
        version = written.version(ref.uid, ref.resource_version)
        if isinstance(action, UpdatePod):
            base = written.pods.get(ref.uid) or self.state.pod_by_uid(ref.uid)
            obj, expectation = await self.pods.update(action, base, version)
        else:
            obj, expectation = await self.pods.delete(action, version)
        if obj.get("kind", "Pod") == "Pod" and obj and expectation.want != "absent":
            written.pods[ref.uid] = obj
            self.write_through(obj, ctx.item)
        self.expectations.expect(ctx.item, expectation)
        return None, ""

    async def _peer_call(self, action: Action, isc: str) -> object:  # noqa: PLR0911 - a dispatch
        peers = self.peers
        match action:
            case CreateInstance():
                return await peers.create_instance(action, isc)
            case DeleteInstance(launcher=launcher, instance_id=iid):
                seen = self.state.instance_revision(launcher.uid, iid)
                at = None if seen is None else (launcher.uid, iid, seen)
                await self._then_hold(at, peers.delete_instance(action, isc), "gone")
                return None
            case Wake(ip=ip, port=port):
                at = self.state.instance_at(ip, port)
                await self._then_hold(at, peers.wake(action, isc), "awake")
                return None
            case Sleep(ip=ip, port=port):
                at = self.state.instance_at(ip, port)
                await self._then_hold(at, peers.sleep(action, isc), "asleep")
                if at is not None:
                    self.book.used(at[0], at[1], self.clock())
                return None
            case QuerySleeping():
                return await peers.query_sleeping(action, isc)
            case QueryAccelerators():
                found = await self.prefetch.take(action) if self.prefetch is not None else None
                return found if found is not None else await peers.accelerators(action, isc)
            case QueryMemoryUsage():
                return await peers.memory_usage(action, isc)
            case QueryLogTail():
                return await peers.log_tail(action, isc)
            case ConfigureProxy():
                await peers.configure_proxy(action, isc)
                return None
            case RelayReadiness():
                await peers.relay(action, isc)
                return None
        raise ValueError(f"the executor cannot perform {type(action).__name__}")

    async def _then_hold(
        self, at: tuple[str, str, int] | None, call: Awaitable[object], state: Override
    ) -> None:
        """Await `call`, which moves the instance `at` (launcher UID, instance ID, the revision
        seen before the call) to `state`; the book holds it there until the launcher's stream
        shows a newer revision, so the next decision does not act on the old state again."""
        await call
        if at is not None:
            self.book.hold(at[0], at[1], state, at[2], now=self.clock())

    def _report(self, action: Action, ctx: PassContext, created: str, seconds: float) -> None:
        level = logging.INFO if isinstance(action, _LOGGED) else logging.DEBUG
        _log.log(
            level,
            "%s: %s done in %.0f ms%s",
            _describe(ctx.item),
            type(action).__name__,
            seconds * 1000,
            f" ({created})" if created else "",
        )
        # A swap tells its own story (`_swap`): which sleeper it reused, or why it went warm.
        note = None if isinstance(action, SwapInstance) else note_for(action, created=created)
        target = ctx.target or self._pod_of(action)
        if note is not None and target is not None:
            self.recorder.event(target, type="Normal", reason=note[0], message=note[1])

    def _pod_of(self, action: Action) -> JsonObject | None:
        pod = getattr(action, "pod", None) or getattr(action, "launcher", None)
        uid = getattr(pod, "uid", "")
        return self.state.pod_by_uid(uid) if isinstance(uid, str) and uid else None

    def _emit(self, action: EmitEvent) -> None:
        target = self.state.pod_by_uid(action.pod.uid) or {
            "metadata": {
                "name": action.pod.name,
                "uid": action.pod.uid,
                "namespace": self.pods.namespace,
            }
        }
        self.recorder.event(target, type=action.type, reason=action.reason, message=action.message)
        _log.info("%s on Pod %s: %s", action.reason, action.pod.name, action.message)

    def _observe(self, action: ObserveActuation, ctx: PassContext, memory: ServerMemory) -> None:
        """Requester container start → the answer to the ready relay (`relayed_at`)."""
        if action.started_at is not None and memory.relayed_at is not None:
            seconds = max(memory.relayed_at - action.started_at, 0.0)
        else:
            seconds = action.seconds + max(self.clock() - ctx.decided_at, 0.0)
        self.metrics.actuation_seconds.labels(
            self.pods.namespace, action.path, str(action.instances_deleted), action.isc_name
        ).observe(seconds)
        _log.info(
            "%s: actuation %s took %.3f s (instances deleted: %d)",
            _describe(ctx.item),
            action.path,
            seconds,
            action.instances_deleted,
        )


def _routine(action: Action, exc: Exception) -> bool:
    """A conflict or vanished Pod (the cache was behind), or polling a peer that starts."""
    if isinstance(exc, ApiError):
        return exc.conflict or exc.not_found
    return isinstance(action, QueryAccelerators | QuerySleeping)


def _describe(item: Key) -> str:
    name = getattr(item, "name", "")
    return f"{type(item).__name__.removesuffix('Key').lower()} {name}"
