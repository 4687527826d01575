"""Own writes the Pod cache has not shown yet: the next decision of an item waits for them.

The executor contract (controller/core/_actions.py): a decision made on a cache older than its
own last write could, for example, create a second provider. So after each Pod write the
executor records what the cache must show — the Pod at the written resourceVersion or newer,
a created Pod present, a deleted Pod gone or terminating, a Pod an update deleted absent — and
the item's next pass runs only once the cache shows it. The informer's event for that very
write re-queues the item, so the wait costs one watch round trip; an expectation that is never
met (a Pod created and deleted again before the watch delivered it) expires after `timeout_s`
instead of blocking forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

from kube import JsonObject, metadata

_log = logging.getLogger(__name__)

Want = Literal["version", "present", "gone", "absent"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """The Pod named `name` (with `uid`) must show `want` in the cache."""

    name: str
    uid: str
    want: Want
    resource_version: int = 0
    since: float = 0.0


def _version(obj: JsonObject) -> int:
    text = str(metadata(obj).get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def met(expectation: Expectation, cached: JsonObject | None) -> bool:
    """Whether the cached Pod (by name) shows the expectation."""
    if cached is None or str(metadata(cached).get("uid") or "") != expectation.uid:
        return expectation.want != "present"  # gone, or replaced by a newer Pod of that name
    if expectation.want == "absent":
        return False
    if expectation.want == "gone":
        return bool(metadata(cached).get("deletionTimestamp")) or (
            expectation.resource_version > 0 and _version(cached) >= expectation.resource_version
        )
    return _version(cached) >= expectation.resource_version


class Expectations:
    """Pending expectations per work item."""

    def __init__(self, *, timeout_s: float, clock: Callable[[], float]) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._pending: dict[Hashable, list[Expectation]] = {}

    def expect(self, item: Hashable, expectation: Expectation) -> None:
        entry = Expectation(
            expectation.name,
            expectation.uid,
            expectation.want,
            expectation.resource_version,
            self._clock(),
        )
        self._pending.setdefault(item, []).append(entry)

    def wait_for(self, item: Hashable, lookup: Callable[[str], JsonObject | None]) -> bool:
        """True when the item must wait; met and expired expectations are dropped."""
        pending = self._pending.get(item)
        if not pending:
            return False
        now = self._clock()
        left = []
        for expectation in pending:
            if met(expectation, lookup(expectation.name)):
                continue
            if now - expectation.since > self.timeout_s:
                _log.warning(
                    "cache never showed %s of Pod %s for %s; deciding anyway",
                    expectation.want,
                    expectation.name,
                    item,
                )
                continue
            left.append(expectation)
        if left:
            self._pending[item] = left
            return True
        self._pending.pop(item, None)
        return False

    def forget(self, item: Hashable) -> None:
        self._pending.pop(item, None)

    def __len__(self) -> int:
        return len(self._pending)
