"""A per-key work queue with delays and per-key exponential backoff (client-go's workqueue).

The rules that make a reconciler safe and cheap:

- **One key, one worker.** A key handed out by `get` is "processing" until `done`; adding it
  meanwhile marks it dirty, and `done` queues it again, so the reconciler always sees the
  latest state and never races itself on one object.
- **Dedup.** Adding a key that is already waiting changes nothing: ten events while a key
  waits cost one pass.
- **FIFO, with an urgent lane.** Ready keys are handed out in the order they were first added;
  keys added with `urgent=True` (a user waits on them: a bound server became ready) go first,
  except that after `urgent_burst` urgent keys in a row one ordinary key is served, so a stream of
  urgent work cannot starve the rest. An ordinary key re-added as urgent moves to the urgent lane.
- **Delays.** `add_after` parks a key until its time (the earlier of two delays wins);
  `add` — a fresh event — makes a parked key due at once (contracts §8.1), so a backoff never
  delays the reaction to a change.
- **Backoff.** `add_rate_limited` parks the key for `initial * 2^failures`, capped (20 s per
  contracts §8.1); `forget` after a success resets it.

Everything runs on the event loop (no locks); time is `loop.time()`, so tests run it on a
virtual clock. Metrics go through `QueueMetrics`, labelled by `label(key)` (the node, for the
reference's `fma_dpc_innerqueue_*{node}`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from kube._backoff import Backoff, PerKeyBackoff

K = TypeVar("K", bound=Hashable)


class ShutDownError(Exception):
    """`get` on a queue that was shut down: the worker should exit."""


class QueueMetrics(Protocol):
    """What the queue reports; `controller.observability` implements it with Prometheus."""

    def added(self, label: str) -> None:
        """A unique add (not deduplicated away)."""

    def depth_changed(self, label: str, delta: int) -> None:
        """Ready keys went up or down by `delta`."""

    def queued(self, label: str, seconds: float) -> None:
        """First unique add → handed to a worker."""

    def worked(self, label: str, seconds: float) -> None:
        """Handed to a worker → `done`."""

    def retried(self, label: str) -> None:
        """A rate-limited re-add."""


class NoMetrics:
    """`QueueMetrics` that records nothing."""

    def added(self, label: str) -> None:
        pass

    def depth_changed(self, label: str, delta: int) -> None:
        pass

    def queued(self, label: str, seconds: float) -> None:
        pass

    def worked(self, label: str, seconds: float) -> None:
        pass

    def retried(self, label: str) -> None:
        pass


def _no_label(_key: object) -> str:
    return ""


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """Retry schedule of a queue: 0.2 s doubling to the contract's 20 s cap."""

    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.2, maximum_s=20.0))
    urgent_burst: int = 8
    """Urgent keys served in a row while ordinary ones wait, before one ordinary key."""


class WorkQueue(Generic[K]):
    """Keys to reconcile; see the module docstring for the rules."""

    def __init__(
        self,
        settings: QueueSettings | None = None,
        *,
        metrics: QueueMetrics | None = None,
        label: Callable[[K], str] = _no_label,
    ) -> None:
        self.settings = settings or QueueSettings()
        self._metrics: QueueMetrics = metrics or NoMetrics()
        self._label = label
        self._backoff: PerKeyBackoff[K] = PerKeyBackoff(self.settings.backoff)
        self._ready: collections.deque[K] = collections.deque()
        self._urgent: collections.deque[K] = collections.deque()
        self._urgent_in_a_row = 0
        self._urgent_dirty: set[K] = set()
        """Keys added urgently while processing: they come back in the urgent lane."""
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}
        self._enqueued_at: dict[K, float] = {}
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._shutting_down = False

    # ----- adding ------------------------------------------------------------------------------

    def add(self, key: K, *, urgent: bool = False) -> None:
        """Queue `key` now (a fresh event); a parked `key` becomes due at once. `urgent`: ahead
        of ordinary keys (see the module docstring)."""
        if self._shutting_down:
            return
        self._cancel_delay(key)
        if urgent and key in self._ready:
            self._ready.remove(key)  # waiting in the ordinary lane: move it up
            self._urgent.append(key)
            return
        self._add(key, urgent=urgent)

    def add_after(self, key: K, delay_s: float) -> None:
        """Queue `key` after `delay_s` seconds, unless it is due earlier anyway."""
        if self._shutting_down:
            return
        if delay_s <= 0:
            self.add(key)
            return
        if key in self._dirty:
            return  # it runs sooner than that already
        loop = asyncio.get_running_loop()
        due = loop.time() + delay_s
        parked = self._delayed.get(key)
        if parked is not None:
            if parked.when() <= due:
                return
            parked.cancel()
        self._delayed[key] = loop.call_at(due, self._promote, key)

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` again after its next backoff delay (its failures so far decide)."""
        self._metrics.retried(self._label(key))
        self.add_after(key, self._backoff.next_delay(key))

    def forget(self, key: K) -> None:
        """`key` succeeded: its next failure starts the backoff afresh."""
        self._backoff.forget(key)

    def failures(self, key: K) -> int:
        """Consecutive rate-limited re-adds of `key` since the last `forget`."""
        return self._backoff.failures(key)

    # ----- taking ------------------------------------------------------------------------------

    async def get(self) -> K:
        """The oldest ready key, now processing until `done` (raises `ShutDownError`)."""
        loop = asyncio.get_running_loop()
        while not self._ready and not self._urgent:
            if self._shutting_down:
                raise ShutDownError
            waiter = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._ready or self._urgent:
                    self._wake_one()  # we were woken but will not take it: pass it on
                raise
        key = self._next()
        self._dirty.discard(key)
        now = loop.time()
        label = self._label(key)
        self._metrics.depth_changed(label, -1)
        self._metrics.queued(label, now - self._enqueued_at.pop(key, now))
        self._processing[key] = now
        return key

    def _next(self) -> K:
        """The urgent lane first, but one ordinary key after `urgent_burst` urgent ones."""
        take_urgent = bool(self._urgent) and (
            not self._ready or self._urgent_in_a_row < self.settings.urgent_burst
        )
        if take_urgent:
            self._urgent_in_a_row += 1
            return self._urgent.popleft()
        self._urgent_in_a_row = 0
        return self._ready.popleft()

    def done(self, key: K) -> None:
        """Processing of `key` ended; if it was added meanwhile, it is queued again."""
        started = self._processing.pop(key, None)
        if started is None:
            return
        self._metrics.worked(self._label(key), asyncio.get_running_loop().time() - started)
        urgent = key in self._urgent_dirty
        self._urgent_dirty.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._push(key, urgent=urgent)

    def shutdown(self) -> None:
        """No more adds; `get` raises `ShutDownError` (now and later); parked keys are dropped."""
        self._shutting_down = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # ----- introspection -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Ready keys (the depth)."""
        return len(self._ready) + len(self._urgent)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def is_parked(self, key: K) -> bool:
        """`key` waits for a delay to pass."""
        return key in self._delayed

    def due_in(self, key: K) -> float | None:
        """Seconds until a parked `key` becomes ready (None: not parked)."""
        handle = self._delayed.get(key)
        if handle is None:
            return None
        return max(0.0, handle.when() - asyncio.get_running_loop().time())

    # ----- plumbing ----------------------------------------------------------------------------

    def _add(self, key: K, *, urgent: bool = False) -> None:
        if key in self._dirty:
            if urgent and key in self._processing:
                self._urgent_dirty.add(key)
            return
        self._dirty.add(key)
        self._enqueued_at[key] = asyncio.get_running_loop().time()
        self._metrics.added(self._label(key))
        if key in self._processing:
            if urgent:
                self._urgent_dirty.add(key)
        else:
            self._push(key, urgent=urgent)

    def _push(self, key: K, *, urgent: bool = False) -> None:
        (self._urgent if urgent else self._ready).append(key)
        self._metrics.depth_changed(self._label(key), 1)
        self._wake_one()

    def _promote(self, key: K) -> None:
        self._delayed.pop(key, None)
        if not self._shutting_down:
            self._add(key)

    def _cancel_delay(self, key: K) -> None:
        handle = self._delayed.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
