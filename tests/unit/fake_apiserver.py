"""An in-memory apiserver for controller unit tests on virtual time.

It serves the real `KubeClient` through `httpx.MockTransport` (list, get, create with
`generateName`, merge patch with resourceVersion/uid preconditions, the status subresource,
delete with preconditions) and feeds the real `Informer`s through `source(kind)`, a
`ListWatch` whose watch streams every change. Tests play the other actors (users, scheduler,
kubelet) with `put`, `update` and `remove`, and inject trouble: `fail` makes matching requests
answer an error, `lose_events` names kinds whose watch events are dropped (the cache falls
behind for good).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from kube import JsonObject, ResourceKind

_STOP = object()


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches(obj: JsonObject, selector: str | None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


@dataclass
class FakeSource:
    """A `ListWatch` of one kind (and namespace) of the fake apiserver."""

    server: FakeApiserver
    plural: str
    namespace: str | None
    queues: list[asyncio.Queue[Any]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return f"{self.plural} (fake)"

    async def list_page(self, *, limit: int, continue_token: str | None) -> JsonObject:
        return self.server.list_json(self.plural, self.namespace, None)

    @asynccontextmanager
    async def watch(
        self, *, resource_version: str, timeout_s: int
    ) -> AsyncIterator[AsyncIterator[JsonObject]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.append(queue)
        try:
            yield self._stream(queue)
        finally:
            self.queues.remove(queue)

    async def _stream(self, queue: asyncio.Queue[Any]) -> AsyncIterator[JsonObject]:
        while (event := await queue.get()) is not _STOP:
            yield event


class FakeApiserver:
    """Objects by plural and `namespace/name`; see the module docstring."""

    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self.wall_clock = wall_clock
        self.objects: dict[str, dict[str, JsonObject]] = {}
        self.events: list[JsonObject] = []
        self.requests: list[tuple[str, str]] = []
        self.request_times: list[float] = []
        self.failures: list[tuple[Callable[[str, str], bool], int, str]] = []
        self.lose_events: set[str] = set()
        self.graceful_pods = False
        self.on_create: Callable[[str, JsonObject], None] | None = None
        """Called with each object created through the API before it is stored (a kubelet
        stand-in may mark Pods scheduled and Ready at once)."""
        self._sources: list[FakeSource] = []
        self._rv = itertools.count(100)
        self._ids = itertools.count(1)

    # ----- for the code under test ---------------------------------------------------------------

    def source(self, kind: ResourceKind, namespace: str | None = None) -> FakeSource:
        src = FakeSource(self, kind.plural, namespace if kind.namespaced else None)
        self._sources.append(src)
        return src

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url="https://fake", transport=self.transport())

    # ----- for tests -----------------------------------------------------------------------------

    def put(self, plural: str, obj: JsonObject) -> JsonObject:
        """Create or replace `obj` (as a user or another controller would)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = self._key(meta)
        old = self.objects.setdefault(plural, {}).get(key)
        meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{next(self._ids)}")
        meta.setdefault("creationTimestamp", rfc3339(self.wall_clock()))
        if plural not in ("pods", "nodes", "events"):
            spec_changed = old is None or old.get("spec") != obj.get("spec")
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            meta["generation"] = generation + 1 if spec_changed else generation
            obj.setdefault("status", (old or {}).get("status"))
            if obj["status"] is None:
                del obj["status"]
        return self._store(plural, key, obj, "MODIFIED" if old else "ADDED")

    def update(
        self, plural: str, name: str, mutate: Callable[[JsonObject], None], ns: str = ""
    ) -> JsonObject:
        obj = copy.deepcopy(self.get(plural, name, ns))
        mutate(obj)
        return self._store(plural, self._key(obj["metadata"]), obj, "MODIFIED")

    def remove(self, plural: str, name: str, ns: str = "") -> None:
        obj = self.objects[plural].pop(f"{ns}/{name}" if ns else name)
        self._emit(plural, "DELETED", obj)

    def get(self, plural: str, name: str, ns: str = "") -> JsonObject:
        return self.objects[plural][f"{ns}/{name}" if ns else name]

    def all(self, plural: str) -> list[JsonObject]:
        return list(self.objects.get(plural, {}).values())

    def fail(self, method: str, path_part: str, status: int, reason: str = "Conflict") -> None:
        """The next request of `method` whose path contains `path_part` answers `status`."""
        self.failures.append((lambda m, p: m == method and path_part in p, status, reason))

    def list_json(self, plural: str, namespace: str | None, selector: str | None) -> JsonObject:
        items = [
            copy.deepcopy(obj)
            for obj in self.objects.get(plural, {}).values()
            if (namespace is None or obj["metadata"].get("namespace") == namespace)
            and _matches(obj, selector)
        ]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._rv))}}

    # ----- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _key(meta: JsonObject) -> str:
        return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]

    def _store(self, plural: str, key: str, obj: JsonObject, kind: str) -> JsonObject:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects.setdefault(plural, {})[key] = obj
        self._emit(plural, kind, obj)
        return copy.deepcopy(obj)

    def _emit(self, plural: str, kind: str, obj: JsonObject) -> None:
        if plural in self.lose_events:
            return
        namespace = obj["metadata"].get("namespace")
        for src in self._sources:
            if src.plural == plural and src.namespace in (None, namespace):
                for queue in src.queues:
                    queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        self.request_times.append(self.wall_clock())
        for index, (match, status, reason) in enumerate(self.failures):
            if match(request.method, path):
                del self.failures[index]
                return _status(status, reason, f"injected {status}")
        parts = path.strip("/").split("/")
        parts = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = parts[1] if parts[0] == "namespaces" else None
        rest = parts[2:] if namespace else parts
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        body = json.loads(request.content) if request.content else None
        handler = getattr(self, f"_{request.method.lower()}")
        result: httpx.Response = handler(
            plural, namespace, name, subresource, body, parse_qs(request.url.query.decode())
        )
        return result

    def _get(
        self, plural: str, ns: str | None, name: str | None, _sub: Any, _body: Any, query: Any
    ) -> httpx.Response:
        if name is None:
            selector = (query.get("labelSelector") or [None])[0]
            return httpx.Response(200, json=self.list_json(plural, ns, selector))
        obj = self.objects.get(plural, {}).get(f"{ns}/{name}" if ns else name)
        return httpx.Response(200, json=obj) if obj else _status(404, "NotFound", name)

    def _post(
        self, plural: str, ns: str | None, _name: Any, _sub: Any, body: Any, _q: Any
    ) -> httpx.Response:
        meta = body.setdefault("metadata", {})
        meta["namespace"] = ns
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'x-')}{next(self._ids):05d}"
        if plural == "events":
            self.events.append(body)
            return httpx.Response(201, json=body)
        if self._key(meta) in self.objects.get(plural, {}):
            return _status(409, "AlreadyExists", meta["name"])
        meta["uid"] = f"uid-{next(self._ids)}"
        meta["creationTimestamp"] = rfc3339(self.wall_clock())
        if self.on_create is not None:
            self.on_create(plural, body)
        return httpx.Response(201, json=self.put(plural, body))

    def _patch(
        self, plural: str, ns: str | None, name: str, sub: str | None, body: Any, _q: Any
    ) -> httpx.Response:
        if plural == "events":
            return httpx.Response(200, json=body)
        current = self.objects.get(plural, {}).get(f"{ns}/{name}" if ns else name)
        if current is None:
            return _status(404, "NotFound", name)
        meta = dict(body.get("metadata") or {})
        for field_name in ("uid", "resourceVersion"):
            wanted = meta.pop(field_name, None)
            if wanted is not None and wanted != current["metadata"][field_name]:
                return _status(409, "Conflict", f"{field_name} precondition failed")
        body = (
            {**body, "metadata": meta}
            if meta
            else {k: v for k, v in body.items() if k != "metadata"}
        )
        if sub == "status":
            body = {"status": body.get("status")}
        patched = merge_patch(current, body)
        return httpx.Response(
            200, json=self._store(plural, self._key(patched["metadata"]), patched, "MODIFIED")
        )

    def _delete(
        self, plural: str, ns: str | None, name: str, _sub: Any, body: Any, _q: Any
    ) -> httpx.Response:
        key = f"{ns}/{name}" if ns else name
        current = self.objects.get(plural, {}).get(key)
        if current is None:
            return _status(404, "NotFound", name)
        pre = (body or {}).get("preconditions") or {}
        for field_name in ("uid", "resourceVersion"):
            if field_name in pre and pre[field_name] != current["metadata"][field_name]:
                return _status(409, "Conflict", f"{field_name} precondition failed")
        if (self.graceful_pods and plural == "pods") or current["metadata"].get("finalizers"):
            obj = copy.deepcopy(current)
            obj["metadata"]["deletionTimestamp"] = rfc3339(self.wall_clock())
            return httpx.Response(200, json=self._store(plural, key, obj, "MODIFIED"))
        self.remove(plural, name, ns or "")
        return httpx.Response(200, json={"kind": "Status", "status": "Success"})


def _status(code: int, reason: str, message: str) -> httpx.Response:
    return httpx.Response(
        code,
        json={
            "kind": "Status",
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        },
    )
