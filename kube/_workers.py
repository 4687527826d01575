"""Workers: N tasks taking keys from a `WorkQueue` and running a reconcile function on each.

The outcome of one pass decides what happens to the key:

- returns `None` / `Result()` → done; the backoff is forgotten;
- returns `Detached(rest)` → the worker takes the next key; `rest` finishes the pass in a task
  of its own, and its result counts as the pass's (the key stays processing meanwhile);
- returns `Result(requeue_after=s)` → done, and looked at again in `s` seconds (a fixed poll,
  e.g. waiting for an instance to start); the backoff is forgotten;
- returns `Result(retry=True)` or raises → rate-limited retry (exponential, capped);
- raises an `ApiError` conflict (409) → the same retry, logged quietly: our cache was behind
  the apiserver, and the watch event that brings the newer object will usually re-add the key
  before the backoff expires anyway.

The queue guarantees one key is never in two workers at once; the workers add nothing to that
but the loop and the error policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from kube._client import ApiError
from kube._workqueue import ShutDownError, WorkQueue

_log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a reconcile pass wants next for its key (the default: nothing)."""

    requeue_after: float | None = None
    retry: bool = False


@dataclass(frozen=True)
class Detached:
    """The pass goes on outside the worker: `rest` finishes it and gives its `Result`.

    For a pass that waits on something slow — a vLLM wake or sleep takes seconds — holding a
    worker would let a handful of such passes stall every other key. The key stays processing
    (no other worker takes it, events only mark it dirty) until `rest` ends; its result and
    errors are then handled like those of any pass.
    """

    rest: Coroutine[Any, Any, Result | None]


Reconcile = Callable[[K], Awaitable[Result | Detached | None]]


async def run_workers(
    queue: WorkQueue[K], reconcile: Reconcile[K], *, workers: int, name: str = "worker"
) -> None:
    """Runs `workers` workers until the queue shuts down (or this task is cancelled)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    async with asyncio.TaskGroup() as group:

        def detach(key: K, rest: Coroutine[Any, Any, Result | None]) -> None:
            group.create_task(_finish_detached(queue, key, rest, name), name=f"{name}-detached")

        for number in range(workers):
            group.create_task(_work(queue, reconcile, name, detach), name=f"{name}-{number}")


async def _work(
    queue: WorkQueue[K],
    reconcile: Reconcile[K],
    name: str,
    detach: Callable[[K, Coroutine[Any, Any, Result | None]], None],
) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDownError:
            return
        handed_over = False
        try:
            result = await _attempt(key, name, reconcile(key))
            if isinstance(result, Detached):
                detach(key, result.rest)
                handed_over = True
            else:
                _settle(queue, key, result)
        finally:
            if not handed_over:
                queue.done(key)


async def _finish_detached(
    queue: WorkQueue[K], key: K, rest: Coroutine[Any, Any, Result | None], name: str
) -> None:
    try:
        result = await _attempt(key, name, rest)
        _settle(queue, key, result if isinstance(result, Result) else None)
    finally:
        queue.done(key)


async def process_one(queue: WorkQueue[K], reconcile: Reconcile[K], key: K, name: str) -> None:
    """One pass over `key` and the bookkeeping of its outcome (not `done`: the caller's).

    A `Detached` pass is finished here, in the caller's task.
    """
    result = await _attempt(key, name, reconcile(key))
    while isinstance(result, Detached):
        result = await _attempt(key, name, result.rest)
    _settle(queue, key, result)


_FAILED: Final = Result(retry=True)


async def _attempt(
    key: K, name: str, pass_: Awaitable[Result | Detached | None]
) -> Result | Detached | None:
    """Awaits one pass; an error is logged and becomes a retry."""
    try:
        return await pass_
    except asyncio.CancelledError:
        raise
    except ApiError as exc:
        if exc.conflict:
            _log.info("%s: %r: conflict (%s); retrying", name, key, exc.message)
        else:
            _log.warning("%s: %r: %s; retrying", name, key, exc)
    except Exception:
        _log.exception("%s: %r failed; retrying", name, key)
    return _FAILED


def _settle(queue: WorkQueue[K], key: K, result: Result | None) -> None:
    if result is not None and result.retry:
        queue.add_rate_limited(key)
        return
    queue.forget(key)
    if result is not None and result.requeue_after is not None:
        queue.add_after(key, result.requeue_after)
