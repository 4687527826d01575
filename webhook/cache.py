"""Watch-backed caches: what the admission handlers know about the cluster.

An admission request must be answered in milliseconds and must not depend on the apiserver
answering a second call while it waits for us, so the handlers never call the API. Instead
`WebhookCache` keeps, from one `kube.Informer` per kind (list + watch, resume, relist on 410):

- Namespaces → their labels (the `fma.llm-d.ai/inject` opt-in);
- InferenceServerConfigs → parsed `crds.models.InferenceServerConfig`, per namespace (launcher
  mode picks the one equivalent to the Pod);
- LauncherConfigs → their names, per namespace (the ISC guard checks references);
- ReplicaSets and StatefulSets → their label selectors (direct mode nulls the selector's labels
  on the provider so the set does not adopt it).

The informers run on the server's event loop, started by the app's lifespan (`running`). Each
keeps only the fields its conversion needs (the informer's `transform`), so a cluster's
ReplicaSets cost their selectors, not their Pod templates; the informer's handlers convert each
object once, on arrival, into the `Store` the handlers read. Every store write replaces a
namespace's mapping with a new one (copy on write), so a reader always holds a consistent
snapshot that never changes under its iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

from pydantic import ValidationError

from crds.models import InferenceServerConfig
from kube import (
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NAMESPACES,
    REPLICA_SETS,
    STATEFUL_SETS,
    ConnectionSettings,
    Handlers,
    Informer,
    InformerSettings,
    JsonObject,
    KubeClient,
    KubeListWatch,
    ResourceKind,
    http_client,
    run_informers,
    wait_all_synced,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
OWNER_KINDS: Final = ("ReplicaSet", "StatefulSet")
FIELD_MANAGER: Final = "fma-webhook"


@dataclass(frozen=True)
class OwnerSelector:
    """The label selector of a Pod's controlling set, identified by uid."""

    uid: str
    selector: Mapping[str, Any]


class Store(Generic[T]):
    """Objects of one kind, keyed by namespace then name, converted once on arrival.

    `convert` turns the raw object into what the handlers need (None: keep nothing, e.g. an
    object that does not parse); it runs when the object arrives, never on the admission path.
    """

    def __init__(self, kind: str, convert: Callable[[JsonObject], T | None]) -> None:
        self.kind = kind
        self._convert = convert
        self._by_namespace: dict[str, Mapping[str, T]] = {}
        self._lock = threading.Lock()  # writers are the event loop, or a test's thread

    def get(self, namespace: str, name: str) -> T | None:
        return self._by_namespace.get(namespace, _EMPTY).get(name)

    def in_namespace(self, namespace: str) -> Mapping[str, T]:
        """A snapshot of the namespace's objects (safe to iterate)."""
        return self._by_namespace.get(namespace, _EMPTY)

    def __contains__(self, key: object) -> bool:
        """`(namespace, name) in store` (what `ValidationContext.launcher_configs` asks)."""
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        return self.get(str(key[0]), str(key[1])) is not None

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._by_namespace.values())

    def replace(self, objects: Sequence[JsonObject]) -> None:
        fresh: dict[str, dict[str, T]] = {}
        for obj in objects:
            namespace, name = _key(obj)
            value = self._convert(obj)
            if value is not None:
                fresh.setdefault(namespace, {})[name] = value
        with self._lock:
            self._by_namespace = {ns: MappingProxyType(v) for ns, v in fresh.items()}

    def upsert(self, obj: JsonObject) -> None:
        namespace, name = _key(obj)
        value = self._convert(obj)
        with self._lock:
            current = dict(self._by_namespace.get(namespace, _EMPTY))
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
            self._set(namespace, current)

    def delete(self, obj: JsonObject) -> None:
        namespace, name = _key(obj)
        with self._lock:
            current = dict(self._by_namespace.get(namespace, _EMPTY))
            if current.pop(name, None) is not None:
                self._set(namespace, current)

    def handlers(self) -> Handlers:
        """Informer handlers that keep this store in step with the informer's."""
        return Handlers(
            on_add=self.upsert,
            on_update=lambda _old, new: self.upsert(new),
            on_delete=self.delete,
        )

    def _set(self, namespace: str, objects: dict[str, T]) -> None:
        if objects:
            self._by_namespace[namespace] = MappingProxyType(objects)
        else:
            self._by_namespace.pop(namespace, None)


def _key(obj: JsonObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# --- conversions (on arrival) ---------------------------------------------------------------


def namespace_labels(obj: JsonObject) -> Mapping[str, str]:
    return MappingProxyType(dict((obj.get("metadata") or {}).get("labels") or {}))


def parse_isc(obj: JsonObject) -> InferenceServerConfig | None:
    """The parsed ISC, or None (logged) if it does not parse; the guard normally prevents it."""
    try:
        return InferenceServerConfig.model_validate(obj)
    except ValidationError as exc:
        _log.warning("ignoring InferenceServerConfig %s/%s: %s", *_key(obj), exc)
        return None


def launcher_config_name(obj: JsonObject) -> str:
    return _key(obj)[1]


def owner_selector(obj: JsonObject) -> OwnerSelector:
    meta = obj.get("metadata") or {}
    selector = (obj.get("spec") or {}).get("selector") or {}
    return OwnerSelector(uid=str(meta.get("uid") or ""), selector=selector)


# --- what each informer keeps (its transform) -------------------------------------------------

_IDENTITY: Final = ("name", "namespace", "uid", "resourceVersion")


def _trimmed(
    *, metadata: Sequence[str] = (), spec: Sequence[str] = ()
) -> Callable[[JsonObject], JsonObject]:
    """A transform keeping the object's identity plus the named metadata and spec fields."""

    def transform(obj: JsonObject) -> JsonObject:
        meta = obj.get("metadata") or {}
        out: JsonObject = {"metadata": {k: meta[k] for k in (*_IDENTITY, *metadata) if k in meta}}
        if spec:
            source = obj.get("spec") or {}
            out["spec"] = {k: source[k] for k in spec if k in source}
        return out

    return transform


def _without_managed_fields(obj: JsonObject) -> JsonObject:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


@dataclass(frozen=True)
class _Watched:
    resource: ResourceKind
    transform: Callable[[JsonObject], JsonObject]


_WATCHED: Final[Mapping[str, _Watched]] = {
    "Namespace": _Watched(NAMESPACES, _trimmed(metadata=("labels",))),
    "InferenceServerConfig": _Watched(INFERENCE_SERVER_CONFIGS, _without_managed_fields),
    "LauncherConfig": _Watched(LAUNCHER_CONFIGS, _trimmed()),
    "ReplicaSet": _Watched(REPLICA_SETS, _trimmed(spec=("selector",))),
    "StatefulSet": _Watched(STATEFUL_SETS, _trimmed(spec=("selector",))),
}


# --- the cache the server uses --------------------------------------------------------------


class WebhookCache:
    """The stores the handlers read, and the informers that fill them."""

    def __init__(self) -> None:
        self.namespaces: Store[Mapping[str, str]] = Store("Namespace", namespace_labels)
        self.inference_server_configs: Store[InferenceServerConfig] = Store(
            "InferenceServerConfig", parse_isc
        )
        self.launcher_configs: Store[str] = Store("LauncherConfig", launcher_config_name)
        self.owners: dict[str, Store[OwnerSelector]] = {
            kind: Store(kind, owner_selector) for kind in OWNER_KINDS
        }
        self._informers: dict[str, Informer] = {}
        self._client: KubeClient | None = None
        self._preloaded = False

    @classmethod
    def from_objects(cls, objects: Iterable[JsonObject]) -> WebhookCache:
        """A cache filled once from plain objects (by their `kind`) and never watched.

        For tests and the benchmark, which serve admission requests without a cluster.
        """
        cache = cls()
        by_kind: dict[str, list[JsonObject]] = {}
        for obj in objects:
            by_kind.setdefault(str(obj.get("kind")), []).append(obj)
        for store in cache.stores():
            store.replace(by_kind.get(store.kind, []))
        cache._preloaded = True
        return cache

    # ----- reads (admission path) ----------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True once every store has been filled by its first list (what `/readyz` reports)."""
        if self._preloaded:
            return True
        informers = self._informers.values()
        return bool(informers) and all(informer.has_synced for informer in informers)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get("", namespace)

    def iscs(self, namespace: str) -> list[InferenceServerConfig]:
        return list(self.inference_server_configs.in_namespace(namespace).values())

    def owner(self, kind: str, namespace: str, name: str) -> OwnerSelector | None:
        store = self.owners.get(kind)
        return store.get(namespace, name) if store is not None else None

    # ----- lifecycle -------------------------------------------------------------------------

    def stores(self) -> Iterable[Store[Any]]:
        yield self.namespaces
        yield self.inference_server_configs
        yield self.launcher_configs
        yield from self.owners.values()

    def connect(
        self, client: KubeClient, *, settings: InformerSettings | None = None, owned: bool = False
    ) -> None:
        """One cluster-wide informer per store, feeding it (they start with `running`).

        `owned`: the cache closes `client` when `running` ends.
        """
        for store in self.stores():
            watched = _WATCHED[store.kind]
            informer = Informer(
                KubeListWatch(client, watched.resource),
                settings=settings,
                transform=watched.transform,
            )
            informer.add_handlers(store.handlers())
            self._informers[store.kind] = informer
        self._client = client if owned else None

    @property
    def informers(self) -> Mapping[str, Informer]:
        """The informers by kind (empty until `connect`)."""
        return MappingProxyType(self._informers)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookCache]:
        """Runs the informers on the current event loop until the block ends (the app's
        lifespan); then stops them, and closes the client if the cache owns it."""
        task = asyncio.create_task(run_informers(self._informers), name="webhook-cache")
        task.add_done_callback(_report_end)
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._client is not None:
                await self._client.aclose()

    async def wait_synced(self, timeout_s: float) -> bool:
        """True once every informer has listed; False after `timeout_s`."""
        return await wait_all_synced(self._informers, timeout_s)


def _report_end(task: asyncio.Task[None]) -> None:
    """Informers end only when cancelled; anything else is a bug worth a loud line."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("the watch caches stopped", exc_info=task.exception())


def cluster_cache(connection: ConnectionSettings, *, watch_timeout_s: int) -> WebhookCache:
    """A cache that watches the cluster of `connection`, which is loaded now (a bad kubeconfig
    fails before the server starts); `running()` runs it and closes the connection after."""
    client = KubeClient(http_client(connection), field_manager=FIELD_MANAGER)
    cache = WebhookCache()
    cache.connect(client, settings=InformerSettings(watch_timeout_s=watch_timeout_s), owned=True)
    return cache
