"""Informers and stores without a cluster: a scripted source drives list, watch, resume, 410.

Virtual time throughout, so the backoff schedule is asserted to the millisecond.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kube import (
    ApiError,
    Backoff,
    Handlers,
    Informer,
    InformerSettings,
    JsonObject,
    Store,
    annotation_index,
    label_index,
    node_name_index,
)
from tests.virtualtime import run_virtual

CLOSE = object()


def pod(name: str, rv: str, *, node: str | None = None, **labels: str) -> JsonObject:
    obj: JsonObject = {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": labels},
        "spec": {},
    }
    if node:
        obj["spec"]["nodeName"] = node
    return obj


class FakeSource:
    """A resource whose LIST answers from `items` and whose WATCH streams what tests push."""

    description = "pods in ns"

    def __init__(self, items: Iterable[JsonObject] = (), rv: str = "10") -> None:
        self.items = list(items)
        self.rv = rv
        self.list_calls = 0
        self.list_errors: list[Exception] = []
        self.watch_errors: list[Exception] = []
        self.watch_from: list[str] = []
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.times: list[float] = []

    async def list_page(self, *, limit: int, continue_token: str | None) -> JsonObject:
        self.times.append(asyncio.get_running_loop().time())
        if self.list_errors:
            raise self.list_errors.pop(0)
        self.list_calls += 1
        start = int(continue_token or 0)
        page = self.items[start : start + limit]
        more = start + limit < len(self.items)
        meta = {"resourceVersion": self.rv, "continue": str(start + limit) if more else ""}
        return {"items": page, "metadata": meta}

    @asynccontextmanager
    async def watch(
        self, *, resource_version: str, timeout_s: int
    ) -> AsyncIterator[AsyncIterator[JsonObject]]:
        assert 300 <= timeout_s < 600
        self.times.append(asyncio.get_running_loop().time())
        self.watch_from.append(resource_version)
        if self.watch_errors:
            raise self.watch_errors.pop(0)
        yield self._stream()

    async def _stream(self) -> AsyncIterator[JsonObject]:
        while True:
            event = await self.events.get()
            if event is CLOSE:
                return
            if isinstance(event, Exception):
                raise event
            yield event


class Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None]] = []

    def handlers(self) -> Handlers:
        return Handlers(
            on_add=lambda o: self.entries.append(("add", _name(o), None)),
            on_update=lambda old, new: self.entries.append(("update", _name(new), _rv(old))),
            on_delete=lambda o: self.entries.append(("delete", _name(o), None)),
        )


def _name(obj: JsonObject) -> str:
    return str(obj["metadata"]["name"])


def _rv(obj: JsonObject) -> str:
    return str(obj["metadata"]["resourceVersion"])


SETTINGS = InformerSettings(page_size=2, backoff=Backoff(initial_s=0.8, maximum_s=30.0))


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_lists_in_pages_then_watches_and_reports_adds_updates_deletes() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1", node="n1"), pod("b", "2"), pod("c", "3")])
        informer = Informer(source, indexers={"node": node_name_index}, settings=SETTINGS)
        log = Log()
        informer.add_handlers(log.handlers())
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        assert source.list_calls == 2  # three objects, pages of two
        assert [e[:2] for e in log.entries] == [("add", "a"), ("add", "b"), ("add", "c")]
        assert informer.has_synced and informer.resource_version == "10"
        await _settle()
        assert source.watch_from == ["10"]

        log.entries.clear()
        source.events.put_nowait({"type": "MODIFIED", "object": pod("a", "11", node="n2")})
        source.events.put_nowait({"type": "ADDED", "object": pod("d", "12", node="n2")})
        source.events.put_nowait({"type": "DELETED", "object": pod("b", "13")})
        await _settle()
        assert log.entries == [("update", "a", "1"), ("add", "d", None), ("delete", "b", None)]
        assert [_name(p) for p in informer.store.by_index("node", "n2")] == ["a", "d"]
        assert informer.store.by_index("node", "n1") == []
        assert informer.resource_version == "13"
        task.cancel()

    run_virtual(main)


def test_a_closed_watch_resumes_from_the_last_version_bookmarks_included_without_listing() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1")])
        informer = Informer(source, settings=SETTINGS)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        source.events.put_nowait(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}
        )
        source.events.put_nowait(CLOSE)
        await _settle()
        assert source.watch_from == ["10", "42"]
        assert source.list_calls == 1 and informer.lists == 1
        task.cancel()

    run_virtual(main)


@pytest.mark.parametrize("how", ["error event", "http 410"])
def test_gone_relists_and_reports_only_what_changed_meanwhile(how: str) -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1"), pod("b", "2"), pod("c", "3")])
        informer = Informer(source, settings=SETTINGS)
        log = Log()
        informer.add_handlers(log.handlers())
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        log.entries.clear()
        # Meanwhile: b changed, c was deleted, e was created.
        source.items = [pod("a", "1"), pod("b", "20"), pod("e", "21")]
        source.rv = "30"
        if how == "error event":
            source.events.put_nowait({"type": "ERROR", "object": {"code": 410, "message": "old"}})
        else:
            source.watch_errors.append(ApiError(410, "Gone", "too old", None))
            source.events.put_nowait(CLOSE)  # ends at once: retried after a backoff
        await asyncio.sleep(5)
        assert informer.lists == 2
        assert sorted(log.entries) == [
            ("add", "e", None),
            ("delete", "c", None),
            ("update", "b", "2"),
        ]
        assert sorted(informer.store.keys()) == ["ns/a", "ns/b", "ns/e"]
        assert source.watch_from[-1] == "30"
        task.cancel()

    run_virtual(main)


def test_an_own_write_is_seen_at_once_and_its_watch_event_is_not_reported_twice() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1")])
        informer = Informer(source, settings=SETTINGS)
        log = Log()
        informer.add_handlers(log.handlers())
        assert not informer.write_through(pod("a", "11")), "not before the list"
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        log.entries.clear()
        assert informer.write_through(pod("a", "11", bound="yes"))
        assert _rv(informer.store.get("ns/a") or {}) == "11"
        assert log.entries == [("update", "a", "1")]
        assert not informer.write_through(pod("a", "11")), "the same version again"
        # The watch brings an older write of someone else, then ours: neither is news.
        source.events.put_nowait({"type": "MODIFIED", "object": pod("a", "5")})
        source.events.put_nowait({"type": "MODIFIED", "object": pod("a", "11", bound="yes")})
        source.events.put_nowait({"type": "MODIFIED", "object": pod("a", "12")})
        await _settle()
        assert log.entries == [("update", "a", "1"), ("update", "a", "11")]
        assert informer.resource_version == "12"
        # An answer that arrives after the watch went past its version is old news: a Pod
        # deleted meanwhile must not come back as a ghost.
        source.events.put_nowait({"type": "DELETED", "object": pod("a", "14")})
        await _settle()
        assert not informer.write_through(pod("a", "13"))
        assert informer.store.get("ns/a") is None
        task.cancel()

    run_virtual(main)


def test_a_relist_keeps_objects_written_through_after_the_lists_snapshot() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1"), pod("b", "2")])
        informer = Informer(source, settings=SETTINGS)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        assert informer.write_through(pod("a", "35"))
        assert informer.write_through(pod("new", "36"))
        source.items, source.rv = [pod("a", "20")], "30"  # a snapshot older than our writes
        source.events.put_nowait({"type": "ERROR", "object": {"code": 410, "message": "old"}})
        await asyncio.sleep(5)
        assert informer.lists == 2
        assert {
            k: _rv(o) for k, o in zip(informer.store.keys(), informer.store.objects(), strict=True)
        } == {
            "ns/a": "35",
            "ns/new": "36",
        }
        task.cancel()

    run_virtual(main)


def test_a_transform_trims_what_is_stored_and_handed_to_the_handlers() -> None:
    def labels_only(obj: JsonObject) -> JsonObject:
        meta = obj["metadata"]
        kept = {k: meta[k] for k in ("name", "namespace", "resourceVersion", "labels")}
        return {"metadata": kept}

    async def main() -> None:
        source = FakeSource([pod("a", "1", node="n1", app="x")])
        informer = Informer(
            source, indexers={"app": label_index("app")}, settings=SETTINGS, transform=labels_only
        )
        seen: list[JsonObject] = []
        informer.add_handlers(
            Handlers(
                on_add=seen.append,
                on_update=lambda _old, new: seen.append(new),
                on_delete=seen.append,
            )
        )
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        source.events.put_nowait({"type": "ADDED", "object": pod("b", "11", node="n2", app="y")})
        source.events.put_nowait({"type": "DELETED", "object": pod("a", "12", node="n1")})
        await _settle()
        assert informer.write_through(pod("b", "13", node="n3", app="z"))
        assert all("spec" not in obj for obj in seen), "handlers get the trimmed objects"
        assert [_name(o) for o in seen] == ["a", "b", "a", "b"]
        assert informer.store.objects() == [
            {
                "metadata": {
                    "name": "b",
                    "namespace": "ns",
                    "resourceVersion": "13",
                    "labels": {"app": "z"},
                }
            }
        ]
        assert [_name(o) for o in informer.store.by_index("app", "z")] == ["b"]
        assert informer.resource_version == "12"
        task.cancel()

    run_virtual(main)


def test_failures_back_off_exponentially_and_a_success_resets_the_schedule() -> None:
    async def main() -> list[float]:
        source = FakeSource([pod("a", "1")])
        source.list_errors = [ApiError(500, "InternalError", "etcd", None)] * 3
        informer = Informer(source, settings=SETTINGS)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        source.watch_errors = [ConnectionError("reset")] * 2
        source.events.put_nowait(CLOSE)  # the first watch ends at once, without an event
        await asyncio.sleep(100)
        task.cancel()
        return source.times

    times = run_virtual(main)
    # Lists at 0, 0.8 and 2.4 fail; the one at 5.6 works and the first watch starts at once.
    assert times[:5] == pytest.approx([0, 0.8, 2.4, 5.6, 5.6])
    # That watch ends at once without an event (a failure), then two connection errors:
    # the schedule restarted after the successful list.
    assert [round(b - a, 3) for a, b in itertools.pairwise(times[4:8])] == [
        0.8,
        1.6,
        3.2,
    ]


def test_a_failing_handler_is_logged_and_does_not_stop_the_others() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1")])
        informer = Informer(source, settings=SETTINGS)
        log = Log()

        def broken(_obj: JsonObject) -> None:
            raise RuntimeError("bug")

        informer.add_handlers(Handlers(on_add=broken))
        informer.add_handlers(log.handlers())
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        assert log.entries == [("add", "a", None)]
        task.cancel()

    run_virtual(main)


def test_late_handlers_get_the_stored_objects_replayed_as_adds() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1"), pod("b", "2")])
        informer = Informer(source, settings=SETTINGS)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        log = Log()
        informer.add_handlers(log.handlers())
        assert log.entries == [("add", "a", None), ("add", "b", None)]
        task.cancel()

    run_virtual(main)


def test_reconnect_ends_the_watch_and_resumes_from_the_version_given() -> None:
    async def main() -> None:
        source = FakeSource([pod("a", "1")])
        informer = Informer(source, settings=SETTINGS)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        await _settle()
        informer.reconnect("1")
        await _settle()
        assert source.watch_from == ["10", "1"]
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)


def test_store_indexes_follow_updates_and_deletes() -> None:
    store = Store(
        {
            "app": label_index("app"),
            "hash": annotation_index("h"),
            "node": node_name_index,
            "letters": lambda o: list(_name(o)),
        }
    )
    a = pod("ab", "1", node="n1", app="x")
    a["metadata"]["annotations"] = {"h": "123"}
    store.upsert(a)
    store.upsert(pod("bc", "2", node="n1", app="y"))
    assert [_name(o) for o in store.by_index("node", "n1")] == ["ab", "bc"]
    assert [_name(o) for o in store.by_index("letters", "b")] == ["ab", "bc"]
    assert [_name(o) for o in store.by_index("hash", "123")] == ["ab"]
    assert store.index_values("app") == ["x", "y"]

    old = store.upsert(pod("ab", "3", node="n2", app="y"))
    assert old is a
    assert store.by_index("hash", "123") == []
    assert [_name(o) for o in store.by_index("app", "y")] == ["ab", "bc"]
    assert store.index_values("node") == ["n1", "n2"]

    store.delete(pod("bc", "4"))
    assert store.index_values("node") == ["n2"]
    assert store.index_values("letters") == ["a", "b"]
    assert store.get_by_name("ns", "ab") is not None and "ns/bc" not in store

    store.add_indexer("namespace", lambda o: [o["metadata"]["namespace"]])
    assert [_name(o) for o in store.by_index("namespace", "ns")] == ["ab"]
    with pytest.raises(ValueError, match="already exists"):
        store.add_indexer("node", node_name_index)
