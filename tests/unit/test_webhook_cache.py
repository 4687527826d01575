"""The watch caches without a cluster: a scripted `Transport` drives list, watch, resume, 410.

The real apiserver behaviour is covered by tests/cluster/test_webhook_e2e.py; here each rule of
the reflector is pinned down with events fed from memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from webhook._reflector import Backoff, GoneError, JsonObject, Reflector
from webhook.cache import Store, WebhookCache, parse_isc

_END = object()
_FAST = Backoff(initial_s=0.001, maximum_s=0.002)


def _obj(name: str, rv: str, namespace: str = "ns", **labels: str) -> JsonObject:
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels}
    return {"metadata": meta}


class _Stream:
    def __init__(self, events: queue.Queue[object]) -> None:
        self._events = events
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[JsonObject]:
        while not self.closed.is_set():
            try:
                item = self._events.get(timeout=0.01)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, dict)
            yield item

    def close(self) -> None:
        self.closed.set()


class FakeTransport:
    """Lists `objects` (in pages of `page`); each watch serves events put on `events`."""

    def __init__(self, objects: list[JsonObject], rv: str = "10", page: int = 0) -> None:
        self.objects = objects
        self.rv = rv
        self.page = page
        self.events: queue.Queue[object] = queue.Queue()
        self.list_calls: list[dict[str, Any]] = []
        self.watch_calls: list[dict[str, Any]] = []
        self.watch_failures: list[Exception] = []
        self.watch_opened = threading.Semaphore(0)

    def list_page(self, params: Mapping[str, Any]) -> JsonObject:
        self.list_calls.append(dict(params))
        start = int(params.get("_continue") or 0)
        size = self.page or len(self.objects) or 1
        chunk = self.objects[start : start + size]
        more = start + size < len(self.objects)
        meta = {"resourceVersion": self.rv, "continue": str(start + size) if more else ""}
        return {"metadata": meta, "items": chunk}

    def watch(self, params: Mapping[str, Any]) -> _Stream:
        self.watch_calls.append(dict(params))
        self.watch_opened.release()
        if self.watch_failures:
            raise self.watch_failures.pop(0)
        return _Stream(self.events)


@pytest.fixture
def running() -> Iterator[tuple[FakeTransport, Store[Any], Reflector]]:
    transport = FakeTransport([_obj("a", "5"), _obj("b", "6")])
    store: Store[Any] = Store("Thing", lambda o: o["metadata"].get("labels"))
    reflector = Reflector("things", transport, store, backoff=_FAST, watch_timeout_s=7)
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert transport.watch_opened.acquire(timeout=5)
    yield transport, store, reflector
    reflector.stop()
    thread.join(5)
    assert not thread.is_alive()


def _settle(transport: FakeTransport) -> None:
    """Waits until the reflector has taken every queued event (the next watch is open)."""
    transport.events.put(_END)
    assert transport.watch_opened.acquire(timeout=5)


def test_list_then_watch_events(running: tuple[FakeTransport, Store[Any], Reflector]) -> None:
    transport, store, reflector = running
    assert reflector.synced
    assert set(store.in_namespace("ns")) == {"a", "b"}
    assert transport.watch_calls[0] == {
        "resource_version": "10",
        "allow_watch_bookmarks": True,
        "timeout_seconds": 7,
    }
    transport.events.put({"type": "ADDED", "object": _obj("c", "11", app="x")})
    transport.events.put({"type": "MODIFIED", "object": _obj("a", "12", app="y")})
    transport.events.put({"type": "DELETED", "object": _obj("b", "13")})
    _settle(transport)
    assert dict(store.in_namespace("ns")) == {"a": {"app": "y"}, "c": {"app": "x"}}


def test_watch_resumes_from_last_version_including_bookmarks(
    running: tuple[FakeTransport, Store[Any], Reflector],
) -> None:
    transport, _, reflector = running
    transport.events.put({"type": "ADDED", "object": _obj("c", "11")})
    transport.events.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}})
    _settle(transport)
    assert transport.watch_calls[-1]["resource_version"] == "20"
    assert reflector.lists == 1, "a watch that ends resumes; it does not list again"


def test_gone_relists_and_drops_objects_deleted_meanwhile(
    running: tuple[FakeTransport, Store[Any], Reflector],
) -> None:
    transport, store, reflector = running
    transport.objects = [_obj("a", "30")]
    transport.rv = "30"
    transport.events.put({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    assert transport.watch_opened.acquire(timeout=5)
    assert reflector.lists == 2
    assert set(store.in_namespace("ns")) == {"a"}
    assert transport.watch_calls[-1]["resource_version"] == "30"


def test_gone_when_opening_the_watch_relists() -> None:
    transport = FakeTransport([_obj("a", "1")])
    transport.watch_failures = [GoneError("expired")]
    store: Store[Any] = Store("Thing", lambda o: o)
    reflector = Reflector("things", transport, store, backoff=_FAST)
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert transport.watch_opened.acquire(timeout=5)
    assert transport.watch_opened.acquire(timeout=5)
    reflector.stop()
    thread.join(5)
    assert reflector.lists == 2


def test_errors_back_off_and_retry_without_losing_state() -> None:
    transport = FakeTransport([_obj("a", "1")])
    transport.watch_failures = [ConnectionError("refused"), ConnectionError("refused")]
    store: Store[Any] = Store("Thing", lambda o: o)
    reflector = Reflector("things", transport, store, backoff=_FAST)
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    for _ in range(3):
        assert transport.watch_opened.acquire(timeout=5)
    reflector.stop()
    thread.join(5)
    assert reflector.lists == 1
    assert [c["resource_version"] for c in transport.watch_calls] == ["10", "10", "10"]


def test_list_follows_continue_tokens() -> None:
    transport = FakeTransport([_obj(f"o{i}", str(i)) for i in range(5)], page=2)
    store: Store[Any] = Store("Thing", lambda o: o)
    reflector = Reflector("things", transport, store, backoff=_FAST)
    thread = threading.Thread(target=reflector.run, daemon=True)
    thread.start()
    assert reflector.wait_synced(5)
    reflector.stop()
    thread.join(5)
    assert len(store) == 5
    assert [c.get("_continue") for c in transport.list_calls] == [None, "2", "4"]


def test_store_snapshots_do_not_change_under_readers() -> None:
    store: Store[str] = Store("Thing", lambda o: o["metadata"]["name"])
    store.replace([_obj("a", "1")])
    snapshot = store.in_namespace("ns")
    store.upsert(_obj("b", "2"))
    store.delete(_obj("a", "3"))
    assert list(snapshot) == ["a"]
    assert list(store.in_namespace("ns")) == ["b"]
    assert ("ns", "b") in store
    assert ("ns", "a") not in store
    assert "b" not in store
    store.delete(_obj("b", "4"))
    assert store.in_namespace("ns") == {}


def test_unparseable_isc_is_left_out() -> None:
    assert parse_isc({"kind": "InferenceServerConfig", "metadata": {"name": "x"}}) is None


def test_cache_is_synced_only_when_every_store_listed() -> None:
    cache = WebhookCache()
    assert not cache.synced
    transports = {store.kind: FakeTransport([]) for store in cache.stores()}
    cache.start(transports, backoff=_FAST)
    try:
        assert cache.wait_synced(5)
        assert cache.synced
    finally:
        cache.stop()
