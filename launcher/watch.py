"""The NDJSON watch stream (contracts §5.6) as an async generator over an `EventLog`.

Kept apart from the HTTP layer so its semantics can be tested without a server: the synthetic
`CREATED` snapshot, resuming after `since`, filtering of `UPDATED`, and the final error line for
a watcher that fell behind the buffer (reference-differences C4: the reference closes such a stream
silently, and the client cannot tell a lost stream from a quiet launcher).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from launcher.events import EventLog, Gone, visible


def _line(payload: Mapping[str, Any]) -> bytes:
    return (json.dumps(payload, separators=(",", ":")) + "\n").encode()


async def stream(
    log: EventLog,
    *,
    since: int | None,
    snapshot: Callable[[], Sequence[Mapping[str, Any]]],
    with_updates: bool,
) -> AsyncIterator[bytes]:
    """Yields NDJSON lines until the log closes, or the watcher falls behind (error line)."""
    if since is None:
        # Snapshot and cursor are taken together, with no await between them.
        cursor = log.revision
        objects = list(snapshot())
        for obj in objects:
            yield _line({"type": "CREATED", "object": dict(obj)})
    else:
        cursor = since
    while True:
        batch = log.since(cursor)
        if isinstance(batch, Gone):
            yield _line(batch.error_line())
            return
        for event in batch:
            cursor = event.revision
            if visible(event, with_updates=with_updates):
                yield _line(event.to_json())
        if log.closed:
            return
        await log.wait_beyond(cursor)
