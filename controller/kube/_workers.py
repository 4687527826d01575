"""Workers: N tasks taking keys from a `WorkQueue` and running a reconcile function on each.

The outcome of one pass decides what happens to the key:

- returns `None` / `Result()` → done; the backoff is forgotten;
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
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from controller.kube._client import ApiError
from controller.kube._workqueue import ShutDownError, WorkQueue

_log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, kw_only=True)
class Result:
    """What a reconcile pass wants next for its key (the default: nothing)."""

    requeue_after: float | None = None
    retry: bool = False


Reconcile = Callable[[K], Awaitable[Result | None]]


async def run_workers(
    queue: WorkQueue[K], reconcile: Reconcile[K], *, workers: int, name: str = "worker"
) -> None:
    """Runs `workers` workers until the queue shuts down (or this task is cancelled)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    async with asyncio.TaskGroup() as group:
        for number in range(workers):
            group.create_task(_work(queue, reconcile, name), name=f"{name}-{number}")


async def _work(queue: WorkQueue[K], reconcile: Reconcile[K], name: str) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDownError:
            return
        try:
            await process_one(queue, reconcile, key, name)
        finally:
            queue.done(key)


async def process_one(queue: WorkQueue[K], reconcile: Reconcile[K], key: K, name: str) -> None:
    """One pass over `key` and the bookkeeping of its outcome (not `done`: the caller's)."""
    try:
        result = await reconcile(key)
    except asyncio.CancelledError:
        raise
    except ApiError as exc:
        if exc.conflict:
            _log.info("%s: %r: conflict (%s); retrying", name, key, exc.message)
        else:
            _log.warning("%s: %r: %s; retrying", name, key, exc)
        queue.add_rate_limited(key)
        return
    except Exception:
        _log.exception("%s: %r failed; retrying", name, key)
        queue.add_rate_limited(key)
        return
    if result is not None and result.retry:
        queue.add_rate_limited(key)
        return
    queue.forget(key)
    if result is not None and result.requeue_after is not None:
        queue.add_after(key, result.requeue_after)
