"""GPU queries asked ahead: a requester's GPUs, read off the workers as soon as it has an IP.

A requester's first pass asks its stub which GPUs the kubelet gave it (`QueryAccelerators`),
a call of 40-60 ms under load, and, while the stub is still starting, again every 0.1 s; the
pass holds one of the two workers meanwhile, and with hundreds of requesters arriving at once
that was most of what the workers did. The answer never changes over the requester's life, and
what to ask is known from the Pod alone, so this asks as soon as the watch shows the requester
with an IP, at most `limit` calls at once, polling a stub that does not listen yet every
`poll_s` for `window_s`. The queue keeps its order; only the waiting leaves the workers.

What the requester's pass finds:
- the answer: it is used (`hit`);
- a call under way: the pass waits for that call rather than making its own (`joined`);
- a prefetch waiting for a slot or for its next try: the pass ends (`pending`), and the
  prefetch puts the requester back in the queue when it has an answer or gives up;
- nothing usable (never asked, refused, given up): the pass asks itself, as without the
  prefetch (`missed`), and reports what the stub says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Counter

from contract import keys
from controller.core import QueryAccelerators
from controller.core._snapshot import admin_port_of
from controller.reconciler import _pods as p
from controller.reconciler._http import CallError, RefusedError
from controller.reconciler._peers import Peers

OUTCOMES: Final = ("hit", "joined", "pending", "missed")


@dataclass(eq=False)
class _Fetch:
    pod: Mapping[str, Any]
    task: asyncio.Task[list[str] | None] = field(init=False)
    call: asyncio.Event | None = None
    """Set when the call under way ends; None while no call is under way."""
    pending_pass: bool = False
    """A pass found this under way and ended: requeue the requester when it is done."""


class GpuPrefetch:
    """`pod_changed`/`pod_deleted` from the Pod informer; `pending`/`take` from the executor."""

    def __init__(
        self,
        peers: Peers,
        counter: Counter,
        *,
        known: Callable[[str], bool],
        answered: Callable[[Mapping[str, Any]], None],
        limit: int,
        poll_s: float,
        window_s: float,
    ) -> None:
        """`known(uid)`: whether the controller holds that requester's GPUs already;
        `answered(pod)`: queue the requester's pass again (a pass ended `pending`)."""
        self.peers = peers
        self.counter = counter
        self.known = known
        self.answered = answered
        self.poll_s = poll_s
        self.window_s = window_s
        self._slots = asyncio.Semaphore(limit)
        self._fetches: dict[tuple[str, int], _Fetch] = {}
        self._asked: dict[str, tuple[str, int]] = {}
        """Requester UID → where it was asked (once per requester and address)."""

    def pod_changed(self, pod: Mapping[str, Any]) -> None:
        if not p.is_requester(pod) or p.is_deleting(pod):
            return
        uid, ip = p.uid(pod), p.pod_ip(pod)
        if ip is None or p.scheduled_node(pod) is None or self.known(uid):
            return
        annotations = p.annotations_of(pod)
        where = (ip, admin_port_of(annotations))
        if self._asked.get(uid) == where:
            return
        self.pod_deleted(pod)  # an older address of the same requester
        self._asked[uid] = where
        action = QueryAccelerators(ip=ip, port=where[1])
        isc = str(annotations.get(keys.ISC_ANNOTATION) or "")
        fetch = _Fetch(pod)
        fetch.task = asyncio.create_task(self._ask(fetch, action, isc), name="gpu-prefetch")
        self._fetches[where] = fetch

    def pod_deleted(self, pod: Mapping[str, Any]) -> None:
        where = self._asked.pop(p.uid(pod), None)
        fetch = self._fetches.pop(where, None) if where is not None else None
        if fetch is not None:
            fetch.task.cancel()
            if fetch.task.done():
                _answer(fetch.task)  # retrieved: no "exception never retrieved" at exit

    def pending(self, action: QueryAccelerators) -> bool:
        """Whether the pass should end and wait for the prefetch (which then requeues it)."""
        fetch = self._fetches.get((action.ip, action.port))
        if fetch is None or fetch.task.done() or fetch.call is not None:
            return False
        fetch.pending_pass = True
        self.counter.labels("pending").inc()
        return True

    async def take(self, action: QueryAccelerators) -> list[str] | None:
        """The GPUs asked ahead for `action`'s stub, or None: the caller asks itself."""
        where = (action.ip, action.port)
        fetch = self._fetches.get(where)
        joined = fetch is not None and not fetch.task.done() and fetch.call is not None
        if fetch is not None and fetch.call is not None:
            await fetch.call.wait()
        found: list[str] | None = None
        if fetch is not None and fetch.task.done():
            found = _answer(fetch.task)
        if fetch is not None:
            # Used, or the joined call failed: from here on the pass asks, as without this.
            self._fetches.pop(where, None)
            fetch.task.cancel()
        outcome = "missed" if found is None else "joined" if joined else "hit"
        self.counter.labels(outcome).inc()
        return found

    async def aclose(self) -> None:
        tasks = [fetch.task for fetch in self._fetches.values()]
        for task in tasks:
            task.cancel()
        self._fetches.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _ask(self, fetch: _Fetch, action: QueryAccelerators, isc: str) -> list[str] | None:
        found = await self._poll(fetch, action, isc)
        if fetch.pending_pass:
            self.answered(fetch.pod)
        return found

    async def _poll(self, fetch: _Fetch, action: QueryAccelerators, isc: str) -> list[str] | None:
        deadline = asyncio.get_running_loop().time() + self.window_s
        while True:
            async with self._slots:
                fetch.call = asyncio.Event()
                try:
                    return await self.peers.accelerators(action, isc)
                except RefusedError:
                    return None  # an answer the pass must see and report itself
                except CallError:
                    pass  # not listening yet
                finally:
                    fetch.call.set()
                    fetch.call = None
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(self.poll_s)


def _answer(task: asyncio.Task[list[str] | None]) -> list[str] | None:
    """A finished prefetch's GPUs; None when it was cancelled, failed or got no answer."""
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
