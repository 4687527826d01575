"""Watch-backed caches: what the admission handlers know about the cluster.

An admission request must be answered in milliseconds and must not depend on the apiserver
answering a second call while it waits for us, so the handlers never call the API. Instead
`WebhookCache` keeps, from one list + watch per kind (`webhook._reflector`):

- Namespaces → their labels (the `fma.llm-d.ai/inject` opt-in);
- InferenceServerConfigs → parsed `crds.models.InferenceServerConfig`, per namespace (launcher
  mode picks the one equivalent to the Pod);
- LauncherConfigs → their names, per namespace (the ISC guard checks references);
- ReplicaSets and StatefulSets → their label selectors (direct mode nulls the selector's labels
  on the provider so the set does not adopt it).

Stores are written by the reflector threads and read by the event loop. Every write replaces a
namespace's mapping with a new one (copy on write), so a reader always sees a consistent snapshot
and never a dictionary changing under its iteration; writes are rare next to reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import kubernetes.client
from pydantic import ValidationError

from crds.models import GROUP, VERSION, InferenceServerConfig, LauncherConfig
from webhook._reflector import Backoff, ClientTransport, JsonObject, Reflector, Transport

_log = logging.getLogger(__name__)

T = TypeVar("T")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
OWNER_KINDS: Final = ("ReplicaSet", "StatefulSet")


@dataclass(frozen=True)
class OwnerSelector:
    """The label selector of a Pod's controlling set, identified by uid."""

    uid: str
    selector: Mapping[str, Any]


class Store(Generic[T]):
    """Objects of one kind, keyed by namespace then name, converted once on arrival.

    `convert` turns the raw object into what the handlers need (None: keep nothing, e.g. an
    object that does not parse); it runs on the reflector thread, never on the admission path.
    """

    def __init__(self, kind: str, convert: Callable[[JsonObject], T | None]) -> None:
        self.kind = kind
        self._convert = convert
        self._by_namespace: dict[str, Mapping[str, T]] = {}
        self._lock = threading.Lock()

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

    def _set(self, namespace: str, objects: dict[str, T]) -> None:
        if objects:
            self._by_namespace[namespace] = MappingProxyType(objects)
        else:
            self._by_namespace.pop(namespace, None)


def _key(obj: JsonObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# --- conversions (reflector thread) ---------------------------------------------------------


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


# --- the cache the server uses --------------------------------------------------------------


class WebhookCache:
    """The stores the handlers read, and the reflectors that fill them."""

    def __init__(self) -> None:
        self.namespaces: Store[Mapping[str, str]] = Store("Namespace", namespace_labels)
        self.inference_server_configs: Store[InferenceServerConfig] = Store(
            "InferenceServerConfig", parse_isc
        )
        self.launcher_configs: Store[str] = Store("LauncherConfig", launcher_config_name)
        self.owners: dict[str, Store[OwnerSelector]] = {
            kind: Store(kind, owner_selector) for kind in OWNER_KINDS
        }
        self._reflectors: list[Reflector] = []
        self._threads: list[threading.Thread] = []
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
        return bool(self._reflectors) and all(r.synced for r in self._reflectors)

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

    def start(self, transports: Mapping[str, Transport], **reflector_options: Any) -> None:
        """One reflector thread per store; `transports` maps each store's kind to its source."""
        for store in self.stores():
            reflector = Reflector(store.kind, transports[store.kind], store, **reflector_options)
            thread = threading.Thread(
                target=reflector.run, name=f"reflector-{store.kind}", daemon=True
            )
            self._reflectors.append(reflector)
            self._threads.append(thread)
            thread.start()

    def wait_synced(self, timeout: float) -> bool:
        return all(r.wait_synced(timeout) for r in self._reflectors)

    def stop(self, timeout: float = 5.0) -> None:
        for reflector in self._reflectors:
            reflector.stop()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def reflectors(self) -> Sequence[Reflector]:
        return tuple(self._reflectors)


def client_transports(api: kubernetes.client.ApiClient) -> dict[str, Transport]:
    """The production sources of `WebhookCache`'s stores: cluster-wide typed list calls."""
    core = kubernetes.client.CoreV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)

    def crs(plural: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            return custom.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs)

        return call

    return {
        "Namespace": ClientTransport(core.list_namespace),
        "InferenceServerConfig": ClientTransport(crs(InferenceServerConfig.PLURAL)),
        "LauncherConfig": ClientTransport(crs(LauncherConfig.PLURAL)),
        "ReplicaSet": ClientTransport(apps.list_replica_set_for_all_namespaces),
        "StatefulSet": ClientTransport(apps.list_stateful_set_for_all_namespaces),
    }


def start_cache(
    api: kubernetes.client.ApiClient, *, watch_timeout_s: int, backoff: Backoff | None = None
) -> WebhookCache:
    """A `WebhookCache` whose reflectors are running against the cluster of `api`."""
    cache = WebhookCache()
    cache.start(client_transports(api), watch_timeout_s=watch_timeout_s, backoff=backoff)
    return cache
