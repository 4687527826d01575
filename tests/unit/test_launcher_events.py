"""Revisions, the bounded buffer, 410 and the watch stream (contracts §5.6), without HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from launcher.events import EventLog, Gone
from launcher.watch import stream

pytestmark = pytest.mark.anyio


def _obj(name: str) -> dict[str, Any]:
    return {"instance_id": name}


def test_revisions_count_from_one_and_since_returns_newer_events() -> None:
    log = EventLog(capacity=10)
    assert log.revision == 0
    for name in "abc":
        log.append("CREATED", _obj(name))
    assert log.revision == 3
    events = log.since(1)
    assert isinstance(events, list)
    assert [e.revision for e in events] == [2, 3]
    assert log.since(3) == []
    assert log.since(7) == []  # beyond the current revision: nothing yet, not an error


def test_a_revision_older_than_the_buffer_is_gone_with_the_reference_text() -> None:
    log = EventLog(capacity=3)
    for name in "abcde":
        log.append("CREATED", _obj(name))
    # Events 3, 4, 5 are kept: since=2 still works, since=1 lost event 2.
    assert isinstance(log.since(2), list)
    gone = log.since(1)
    assert gone == Gone(requested=1, oldest=2)
    assert isinstance(gone, Gone)
    assert gone.message == "Requested revision 1 is no longer available. Oldest available: 2."


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        EventLog(capacity=0)


async def _take(lines: AsyncIterator[bytes], count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        out.append(json.loads(await asyncio.wait_for(anext(lines), 2)))
    return out


async def test_watch_without_since_starts_with_a_snapshot_then_follows() -> None:
    log = EventLog()
    log.append("CREATED", _obj("a"))
    lines = stream(log, since=None, snapshot=lambda: [_obj("a")], with_updates=False)
    assert await _take(lines, 1) == [{"type": "CREATED", "object": _obj("a")}]
    log.append("DELETED", _obj("a"))
    assert await _take(lines, 1) == [{"type": "DELETED", "object": _obj("a")}]
    log.close()
    with pytest.raises(StopAsyncIteration):
        await anext(lines)


async def test_watch_since_replays_and_hides_updates_unless_asked() -> None:
    log = EventLog()
    log.append("CREATED", _obj("a"))
    log.append("UPDATED", {"instance_id": "a", "phase": "ready"})
    log.append("STOPPED", _obj("a"))
    plain = stream(log, since=0, snapshot=list, with_updates=False)
    assert [e["type"] for e in await _take(plain, 2)] == ["CREATED", "STOPPED"]
    full = stream(log, since=0, snapshot=list, with_updates=True)
    assert [e["type"] for e in await _take(full, 3)] == ["CREATED", "UPDATED", "STOPPED"]


async def test_a_watcher_that_falls_behind_gets_a_final_error_line() -> None:
    log = EventLog(capacity=2)
    log.append("CREATED", _obj("a"))
    lines = stream(log, since=0, snapshot=list, with_updates=False)
    assert (await _take(lines, 1))[0]["type"] == "CREATED"
    for name in "bcd":  # the slow reader misses revisions 2..4; only 3 and 4 stay buffered
        log.append("CREATED", _obj(name))
    error = (await _take(lines, 1))[0]
    assert error == {
        "type": "ERROR",
        "object": {
            "code": 410,
            "reason": "Gone",
            "message": "Requested revision 1 is no longer available. Oldest available: 2.",
        },
    }
    with pytest.raises(StopAsyncIteration):
        await anext(lines)


async def test_waiting_watchers_wake_on_news() -> None:
    log = EventLog()
    lines = stream(log, since=0, snapshot=list, with_updates=False)
    pending = asyncio.ensure_future(anext(lines))
    await asyncio.sleep(0.05)
    assert not pending.done()
    log.append("CREATED", _obj("late"))
    assert json.loads(await asyncio.wait_for(pending, 2))["object"] == _obj("late")
