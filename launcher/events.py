"""Revisions and the event buffer behind the watch endpoint (contracts §5.6), without I/O.

One launcher-wide counter starts at 0 and every event takes the next value. The last
`capacity` events (1000, as in the reference) are kept so that a client can resume a watch with
`since=<revision>`; older history is gone and such a request is answered 410 with the exact
reference text. Clients then re-LIST and watch again from the list's revision.

Event types: `CREATED`, `STOPPED` and `DELETED` are the reference's. `UPDATED` is fma's addition
for phase changes (starting → ready ⇄ sleeping) that do not change `status`; it is delivered only
to watchers that ask for it (`?updates=true`), the way Kubernetes sends BOOKMARK events only to
clients that opt in, because the reference's watch clients know just the three original types and
must not be surprised by a fourth. `UPDATED` events still take revisions, so a plain watcher sees
gaps in the numbers, which the contract allows (`since=N` means "revisions greater than N").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from contract.launcher import REFERENCE_EVENT_TYPES, EventType

DEFAULT_CAPACITY: Final = 1000


@dataclass(frozen=True, slots=True)
class Event:
    revision: int
    type: EventType
    object: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "object": dict(self.object)}


@dataclass(frozen=True, slots=True)
class Gone:
    """The requested revision is older than the buffer reaches back (HTTP 410)."""

    requested: int
    oldest: int

    @property
    def message(self) -> str:
        return (
            f"Requested revision {self.requested} is no longer available. "
            f"Oldest available: {self.oldest}."
        )

    def error_line(self) -> dict[str, Any]:
        """The last line sent to a watcher that fell behind, shaped like a Kubernetes ERROR."""
        return {
            "type": "ERROR",
            "object": {"code": 410, "reason": "Gone", "message": self.message},
        }


class EventLog:
    """The revision counter plus a bounded buffer of the latest events.

    `since(n)` is the only read: it returns the buffered events newer than `n`, or `Gone` when
    events newer than `n` have already been dropped. Waiting for news is a separate, async
    concern (`wait_beyond`), so the bookkeeping stays testable without an event loop.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"event buffer capacity must be positive, not {capacity}")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._revision = 0
        self._news = asyncio.Event()
        self._closed = False

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def oldest_available(self) -> int:
        """The smallest `since` that can still be served: current revision - buffered events."""
        return self._revision - len(self._events)

    def next_revision(self) -> int:
        """Reserves the revision the next `append` will carry (it is stamped on the object)."""
        return self._revision + 1

    def append(self, type_: EventType, obj: Mapping[str, Any]) -> Event:
        self._revision += 1
        event = Event(revision=self._revision, type=type_, object=obj)
        self._events.append(event)
        self._notify()
        return event

    def since(self, revision: int) -> list[Event] | Gone:
        if revision < self.oldest_available:
            return Gone(requested=revision, oldest=self.oldest_available)
        return [e for e in self._events if e.revision > revision]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Ends every watch (launcher shutdown), so open streams do not hold the server up."""
        self._closed = True
        self._notify()

    async def wait_beyond(self, revision: int) -> None:
        """Returns once the counter exceeds `revision` or the log is closed."""
        while self._revision <= revision and not self._closed:
            await self._news.wait()

    def _notify(self) -> None:
        # Wake every current waiter, then arm a fresh event for the next ones.
        self._news.set()
        self._news = asyncio.Event()


def visible(event: Event, *, with_updates: bool) -> bool:
    """Whether a watcher sees `event`: reference types always, `UPDATED` only on request."""
    return with_updates or event.type in REFERENCE_EVENT_TYPES
