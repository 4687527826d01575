"""Informers: list + watch of one resource into an indexed `Store`, with event handlers.

An informer lists every object (paged), then watches from the list's resourceVersion. When a
watch ends (the server's timeout, a dropped connection, a read timeout on a silent one) it
resumes from the last version it saw, bookmarks included, so nothing is listed again and no
event is lost. Only `410 Gone` (the version left the apiserver's window) forces a fresh list;
the store then reports exactly what changed meanwhile, deletions included, to the handlers.
Errors back off exponentially (with jitter) and never end the loop; cancellation does.

Handlers run on the event loop right after the store changed, with the old and new object, and
must be quick: they classify and enqueue keys, the work queue does the rest. A handler that
raises is logged and skipped; it cannot stop the informer.

A `transform` (client-go's `SetTransform`) trims each object before it is stored, for consumers
that need a few fields of a large kind (the webhook keeps only a ReplicaSet's selector, not its
Pod template): memory then scales with what is used, not with what the apiserver sends.

The apiserver is reached through `ListWatch`, a two-method seam: `KubeListWatch` in production,
a scripted source in the unit tests (virtual time, no sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol

from kube._backoff import Attempts, Backoff
from kube._client import ApiError, KubeClient
from kube._resources import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
    NODES,
    PODS,
    JsonObject,
    ResourceKind,
    metadata,
    object_key,
)
from kube._store import Change, IndexFunc, Store, newer

_log = logging.getLogger(__name__)

DEFAULT_KINDS: Final = (
    PODS,
    NODES,
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    LAUNCHER_POPULATION_POLICIES,
)
"""What the dual-pods controller and the launcher-populator watch (contracts §8.1, §10)."""
_QUICK_WATCH_S: Final = 1.0
"""A watch that ends this fast without an event counts as a failure (no hot reconnect loop)."""


class ListWatch(Protocol):
    """Where an informer's objects come from."""

    @property
    def description(self) -> str:
        """What is listed, for logs (e.g. `pods in ns`)."""
        ...

    async def list_page(self, *, limit: int, continue_token: str | None) -> JsonObject:
        """One LIST page; `ApiError` 410 when the continue token expired."""
        ...

    def watch(
        self, *, resource_version: str, timeout_s: int
    ) -> AbstractAsyncContextManager[AsyncIterator[JsonObject]]:
        """A WATCH from `resource_version`; its events until the server ends it."""
        ...


@dataclass(frozen=True)
class KubeListWatch:
    """`ListWatch` over the apiserver: one kind, optionally one namespace and selectors."""

    client: KubeClient
    kind: ResourceKind
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    @property
    def description(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind.plural}{where}"

    async def list_page(self, *, limit: int, continue_token: str | None) -> JsonObject:
        return await self.client.list(
            self.kind,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            limit=limit,
            continue_token=continue_token,
        )

    def watch(
        self, *, resource_version: str, timeout_s: int
    ) -> AbstractAsyncContextManager[AsyncIterator[JsonObject]]:
        return self.client.watch(
            self.kind,
            resource_version=resource_version,
            timeout_s=timeout_s,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )


@dataclass(frozen=True, kw_only=True)
class InformerSettings:
    """Timing of list + watch; the defaults follow client-go's reflector."""

    watch_timeout_s: int = 300
    """Server-side watch timeout; each watch asks for a random value in [t, 2t) so that many
    informers do not all reconnect at once."""
    page_size: int = 500
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial_s=0.8, maximum_s=30.0, jitter=0.2)
    )


@dataclass(frozen=True, kw_only=True)
class Handlers:
    """Callbacks for one consumer; any may be omitted."""

    on_add: Callable[[JsonObject], None] | None = None
    on_update: Callable[[JsonObject, JsonObject], None] | None = None
    on_delete: Callable[[JsonObject], None] | None = None


class _GoneError(Exception):
    """The resourceVersion we watch from is too old: list again."""


class Informer:
    """Keeps `store` in step with one resource and tells the handlers what changed."""

    def __init__(
        self,
        source: ListWatch,
        *,
        indexers: Mapping[str, IndexFunc] | None = None,
        settings: InformerSettings | None = None,
        transform: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        """`transform` maps each listed, watched or written-through object to what is stored
        and handed to the handlers; it must keep `metadata` name, namespace and
        resourceVersion (the store's key and version), and not change its argument."""
        self.source = source
        self.name = source.description
        self.store = Store(indexers)
        self.settings = settings or InformerSettings()
        self._transform = transform
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()
        self._resource_version: str | None = None
        self._watch_task: asyncio.Task[bool] | None = None
        self.lists = 0
        """Full lists made so far (1 + one per 410); tests and metrics read it."""
        self.watches = 0

    # ----- consumers ---------------------------------------------------------------------------

    def add_handlers(self, handlers: Handlers) -> None:
        """Registers `handlers`; if already synced, first replays every stored object as an add."""
        self._handlers.append(handlers)
        if self.has_synced and handlers.on_add is not None:
            for obj in self.store.objects():
                _safely(self.name, handlers.on_add, obj)

    @property
    def has_synced(self) -> bool:
        """True once the first full list reached the store and the handlers."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def resource_version(self) -> str | None:
        """The last version seen (None: the next step is a full list)."""
        return self._resource_version

    def reconnect(self, resource_version: str | None = None) -> None:
        """Ends the current watch; the next one resumes from `resource_version` if given.

        For an operator who suspects a stuck connection, and for tests that provoke a 410 by
        resuming from an ancient version.
        """
        if resource_version is not None:
            self._resource_version = resource_version
        if self._watch_task is not None:
            self._watch_task.cancel()

    # ----- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch until cancelled, resuming and relisting as needed."""
        attempts = Attempts(self.settings.backoff)
        while True:
            try:
                if self._resource_version is None:
                    await self._list()
                    attempts.reset()
                if await self._watch_once():
                    attempts.reset()
                    continue
                raise RuntimeError("the watch ended at once without an event")
            except _GoneError as exc:
                _log.info("%s: %s; listing again", self.name, exc)
                self._resource_version = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ApiError) and exc.gone:
                    self._resource_version = None
                delay = attempts.next_delay()
                _log.warning("%s: %s; retrying in %.1fs", self.name, _describe(exc), delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[JsonObject] = []
        token: str | None = None
        while True:
            page = await self.source.list_page(limit=self.settings.page_size, continue_token=token)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                break
        list_version = str(meta.get("resourceVersion") or "")
        if self._transform is not None:
            items = [self._transform(item) for item in items]
        changes = self.store.replace(items, list_version=list_version)
        self._resource_version = list_version or None
        self.lists += 1
        for change in changes:
            self._dispatch(change)
        self._synced.set()
        _log.info("%s: listed %d objects (%d changes)", self.name, len(items), len(changes))

    async def _watch_once(self) -> bool:
        """One watch in a child task (so `reconnect` can end it); True if it was worth it."""
        started = asyncio.get_running_loop().time()
        self._watch_task = asyncio.create_task(self._consume_watch())
        try:
            delivered = await self._watch_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._watch_task.cancel()
                raise
            return True  # ended by `reconnect`
        finally:
            self._watch_task = None
        ended = asyncio.get_running_loop().time()
        return delivered or ended - started >= _QUICK_WATCH_S

    async def _consume_watch(self) -> bool:
        version = self._resource_version
        if version is None:
            raise _GoneError("no resourceVersion to watch from")
        timeout = int(self.settings.watch_timeout_s * (1 + random.random()))
        self.watches += 1
        delivered = False
        try:
            async with self.source.watch(resource_version=version, timeout_s=timeout) as events:
                async for event in events:
                    self._handle(event)
                    delivered = True
        except ApiError as exc:
            if exc.gone:
                raise _GoneError(str(exc)) from exc
            raise
        return delivered

    def _handle(self, event: JsonObject) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _GoneError(str(obj.get("message") or "410 Gone"))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        version = metadata(obj).get("resourceVersion")
        if self._transform is not None and kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = self._transform(obj)
        if kind in ("ADDED", "MODIFIED"):
            stored = self.store.get(object_key(obj))
            if stored is None or not _not_older(stored, obj):
                self._dispatch(Change(self.store.upsert(obj), obj))
        elif kind == "DELETED":
            # The event carries the final state, newer than what the store held.
            self.store.delete(obj)
            self._dispatch(Change(obj, None))
        elif kind != "BOOKMARK":
            _log.warning("%s: ignoring watch event of type %r", self.name, kind)
        if version:
            self._resource_version = str(version)

    def write_through(self, obj: JsonObject) -> bool:
        """Stores what the apiserver answered to our own write, before the watch brings it.

        A controller that waits for the watch to show each of its writes pays one watch round
        trip per step of a protocol (bind, wake, relay...); client-go's mutation cache avoids
        that, and so does this. The object is stored, and the handlers told, only when the
        watch has not reached its version yet: then it is the newest state there is, and no
        later event of the watch can be older than it (the one event of that version is
        skipped when it comes, `_handle`). Returns whether it was stored.
        """
        position = self._resource_version
        version = str(metadata(obj).get("resourceVersion") or "")
        if position is None or not self._synced.is_set() or not newer(obj, position):
            return False
        if self._transform is not None:
            obj = self._transform(obj)
        stored = self.store.get(object_key(obj))
        if stored is not None and _not_older(stored, obj):
            return False
        _log.debug("%s: own write of %s at version %s", self.name, object_key(obj), version)
        self._dispatch(Change(self.store.upsert(obj), obj))
        return True

    def _dispatch(self, change: Change) -> None:
        for handlers in self._handlers:
            if change.old is None and change.new is not None:
                if handlers.on_add is not None:
                    _safely(self.name, handlers.on_add, change.new)
            elif change.new is None and change.old is not None:
                if handlers.on_delete is not None:
                    _safely(self.name, handlers.on_delete, change.old)
            elif handlers.on_update is not None and change.old is not None:
                _safely(self.name, handlers.on_update, change.old, change.new)


def _not_older(stored: JsonObject, incoming: JsonObject) -> bool:
    """The store already holds `incoming`'s version or a newer one (False unless both numeric)."""
    version = str(metadata(incoming).get("resourceVersion") or "")
    return newer(stored, version) or (
        version.isdigit() and str(metadata(stored).get("resourceVersion") or "") == version
    )


def _safely(name: str, handler: Callable[..., None], *args: JsonObject | None) -> None:
    try:
        handler(*args)
    except Exception:
        _log.exception("%s: an event handler failed", name)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def run_informers(informers: Mapping[str, Informer]) -> None:
    """Runs every informer until cancelled (then all of them stop)."""
    async with asyncio.TaskGroup() as group:
        for name, informer in informers.items():
            group.create_task(informer.run(), name=f"informer-{name}")


async def wait_all_synced(informers: Mapping[str, Informer], timeout_s: float) -> bool:
    """True once every informer has synced; False after `timeout_s`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            for informer in informers.values():
                await informer.wait_synced()
            return True
    return False


def focus_informers(
    client: KubeClient,
    namespace: str,
    *,
    kinds: tuple[ResourceKind, ...] | None = None,
    indexers: Mapping[str, Mapping[str, IndexFunc]] | None = None,
    settings: InformerSettings | None = None,
) -> dict[str, Informer]:
    """The informers a controller of one focus namespace needs, keyed by plural.

    Namespaced kinds are watched in `namespace` only, cluster-scoped ones (Nodes) cluster-wide
    (contracts §1.1, §8.1). `kinds` defaults to Pods, Nodes, ConfigMaps and the three fma CRs;
    `indexers` maps a plural to that informer's indexes.
    """
    chosen = kinds if kinds is not None else DEFAULT_KINDS
    return {
        kind.plural: Informer(
            KubeListWatch(client, kind, namespace=namespace if kind.namespaced else None),
            indexers=(indexers or {}).get(kind.plural),
            settings=settings,
        )
        for kind in chosen
    }
