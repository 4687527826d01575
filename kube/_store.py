"""An indexed in-memory store of one resource kind: what an informer keeps and readers query.

Reads and writes all happen on the controller's one event loop, so there are no locks; the
informer is the only writer. Objects are the apiserver's JSON dicts and are shared, not copied:
readers must treat them as frozen (copy before building a write, see `kube._writes`).

Indexes answer the questions the reconciler asks without a scan, e.g. "Pods on node n", "the
provider bound to requester uid u", "launchers with config hash h". An index function maps an
object to zero or more index values; the store keeps value → keys and updates it on every
change, so a lookup costs O(result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from kube._resources import JsonObject, metadata, object_key

IndexFunc = Callable[[JsonObject], Iterable[str]]
"""Maps an object to its index values (none: the object is not in that index)."""

_NO_KEYS: Final[frozenset[str]] = frozenset()


def label_index(label: str) -> IndexFunc:
    """Index on the value of one label (objects without it are not indexed)."""

    def values(obj: JsonObject) -> Iterable[str]:
        value = (metadata(obj).get("labels") or {}).get(label)
        return (value,) if value is not None else ()

    return values


def annotation_index(annotation: str) -> IndexFunc:
    """Index on the value of one annotation (objects without it are not indexed)."""

    def values(obj: JsonObject) -> Iterable[str]:
        value = (metadata(obj).get("annotations") or {}).get(annotation)
        return (value,) if value is not None else ()

    return values


def node_name_index(obj: JsonObject) -> Iterable[str]:
    """Index Pods on `spec.nodeName` (unscheduled Pods are not indexed)."""
    node = (obj.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


def namespace_index(obj: JsonObject) -> Iterable[str]:
    namespace = metadata(obj).get("namespace")
    return (namespace,) if namespace else ()


@dataclass(frozen=True)
class Change:
    """One difference found by `Store.replace`: added (old None), updated, or deleted (new None)."""

    old: JsonObject | None
    new: JsonObject | None


class Store:
    """Objects of one kind by key (`namespace/name`), plus named indexes over them."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._objects: dict[str, JsonObject] = {}
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    # ----- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> JsonObject | None:
        """The object with `key` (`namespace/name`, or `name` when cluster-scoped)."""
        return self._objects.get(key)

    def get_by_name(self, namespace: str, name: str) -> JsonObject | None:
        return self._objects.get(f"{namespace}/{name}" if namespace else name)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __len__(self) -> int:
        return len(self._objects)

    def keys(self) -> list[str]:
        return list(self._objects)

    def objects(self) -> list[JsonObject]:
        return list(self._objects.values())

    def by_index(self, index: str, value: str) -> list[JsonObject]:
        """Objects whose index function yields `value` for `index` (KeyError: no such index)."""
        keys = self._indexes[index].get(value, _NO_KEYS)
        return [self._objects[key] for key in sorted(keys)]

    def index_keys(self, index: str, value: str) -> frozenset[str]:
        return frozenset(self._indexes[index].get(value, _NO_KEYS))

    def index_values(self, index: str) -> list[str]:
        """Every value `index` currently holds (e.g. every node that has Pods)."""
        return sorted(self._indexes[index])

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Adds an index, built at once over the objects already stored."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = func
        self._indexes[name] = {}
        for key, obj in self._objects.items():
            self._index_add(name, key, obj)

    # ----- writes (the informer's) -------------------------------------------------------------

    def upsert(self, obj: JsonObject) -> JsonObject | None:
        """Stores `obj`; returns the object it replaced, if any."""
        key = object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        for name in self._indexers:
            self._index_add(name, key, obj)
        return old

    def delete(self, obj: JsonObject) -> JsonObject | None:
        """Removes the object with `obj`'s key; returns what was stored (None: nothing)."""
        key = object_key(obj)
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objects: Iterable[JsonObject], *, list_version: str = "") -> list[Change]:
        """Makes the store hold exactly `objects` (a fresh LIST); returns what changed.

        Unchanged objects (same resourceVersion) are not reported, so a relist after a 410
        produces events only for what really happened while the watch was away. A stored object
        newer than the list (`list_version`) was written through after the list's snapshot
        (`Informer.write_through`) and stays: the watch that follows the list delivers it.
        """
        fresh = {object_key(obj): obj for obj in objects}
        changes: list[Change] = []
        for key in [k for k in self._objects if k not in fresh]:
            if not newer(self._objects[key], list_version):
                changes.append(Change(self.delete(self._objects[key]), None))
        for key, obj in fresh.items():
            old = self._objects.get(key)
            if old is not None and newer(old, _version(obj)):
                continue
            if old is None or _version(old) != _version(obj) or not _version(obj):
                self.upsert(obj)
                changes.append(Change(old, obj))
        return changes

    # ----- index plumbing ----------------------------------------------------------------------

    def _index_add(self, name: str, key: str, obj: JsonObject) -> None:
        index = self._indexes[name]
        for value in set(self._indexers[name](obj)):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: JsonObject) -> None:
        for name, func in self._indexers.items():
            index = self._indexes[name]
            for value in set(func(obj)):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


def _version(obj: JsonObject) -> str:
    return str(metadata(obj).get("resourceVersion") or "")


def newer(obj: JsonObject, version: str) -> bool:
    """Whether `obj` is newer than resourceVersion `version` (False when either is not a number).

    Kubernetes calls resourceVersions opaque, but every apiserver backed by etcd3 uses etcd's
    revision, and client-go's mutation cache relies on the same comparison.
    """
    mine = _version(obj)
    return mine.isdigit() and version.isdigit() and int(mine) > int(version)
