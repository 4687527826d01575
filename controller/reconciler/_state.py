"""The controller's view of the world: informer stores, launcher streams, parsed CRs, gpu-map.

Everything here is read-only and synchronous (the informers and streams write; decisions read),
so a snapshot is taken between two awaits and is consistent with itself. CRs are parsed into
their pydantic models, and Pods into their `PodView`s, once per resourceVersion, not once per
decision: a hot actuation decides about ten times on the same few Pods.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from contract.launcher import InstanceState
from contract.objects import GPU_MAP
from controller.core import LauncherView, NodeView, PodView, node_view, pod_view
from controller.launcherapi import LauncherView as StreamView
from controller.reconciler import _pods as p
from controller.reconciler._instances import InstanceBook, revision_of
from crds.models import InferenceServerConfig, LauncherConfig
from kube import (
    CONFIG_MAPS,
    INFERENCE_SERVER_CONFIGS,
    LAUNCHER_CONFIGS,
    NODES,
    PODS,
    Handlers,
    Informer,
    JsonObject,
    Store,
    metadata,
)

_log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class _PerVersion(Generic[T]):
    """What `build` makes of an object, kept per key until the object's resourceVersion changes.

    The stores replace an object on every change and never edit one, so a resourceVersion
    names one content; an object without one (built by a test) is built afresh each time.
    """

    def __init__(self, build: Callable[[JsonObject], T]) -> None:
        self.build = build
        self._cache: dict[str, tuple[str, T]] = {}

    def get(self, key: str, obj: JsonObject) -> T:
        version = str(metadata(obj).get("resourceVersion") or "")
        cached = self._cache.get(key)
        if cached is not None and version and cached[0] == version:
            return cached[1]
        value = self.build(obj)
        if key and version:
            self._cache[key] = (version, value)
        return value

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)


class _Parsed(Generic[M]):
    """CR objects parsed into `model` (or the reason they do not parse), per version."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._parsed: _PerVersion[tuple[M | None, str | None]] = _PerVersion(self._parse)

    def _parse(self, obj: JsonObject) -> tuple[M | None, str | None]:
        try:
            return self.model.model_validate(obj), None
        except ValidationError as exc:
            return None, f"invalid: {exc.errors()[0].get('msg', exc)}"

    def get(self, store: Store, namespace: str, name: str) -> tuple[M | None, str | None]:
        obj = store.get_by_name(namespace, name)
        if obj is None:
            self._parsed.forget(name)
            return None, "not found"
        return self._parsed.get(name, obj)


class InstanceSource(Protocol):
    """Where launcher instance lists come from (`LauncherWatches` in production)."""

    def view(self, key: str) -> StreamView | None:
        """The latest instances of launcher `key` (its Pod UID); None until listed."""
        ...


class ClusterState:
    """Read access to what the informers and launcher streams hold, as decision inputs."""

    def __init__(
        self,
        namespace: str,
        informers: Mapping[str, Informer],
        watches: InstanceSource,
        book: InstanceBook,
    ) -> None:
        self.namespace = namespace
        self.pods = informers[PODS.plural].store
        self.nodes = informers[NODES.plural].store
        self.config_maps = informers[CONFIG_MAPS.plural].store
        self.isc_store = informers[INFERENCE_SERVER_CONFIGS.plural].store
        self.lc_store = informers[LAUNCHER_CONFIGS.plural].store
        self.watches = watches
        self.book = book
        self._iscs = _Parsed(InferenceServerConfig)
        self._lcs = _Parsed(LauncherConfig)
        self._gpu_map = _PerVersion(lambda obj: parse_gpu_map(obj.get("data") or {}))
        self._node_views = _PerVersion(node_view)
        self._views = _PerVersion(pod_view)
        """Each Pod's view (by UID; dropped with the Pod): a hot actuation decides about ten
        times on the same few Pods, and every pass on a node reads its Node."""
        informers[PODS.plural].add_handlers(Handlers(on_delete=self._forget_view))

    # ----- Pods ----------------------------------------------------------------------------------

    def view(self, pod: JsonObject) -> PodView:
        """`pod_view(pod)`, built once per (UID, resourceVersion)."""
        return self._views.get(str(metadata(pod).get("uid") or ""), pod)

    def _forget_view(self, pod: JsonObject) -> None:
        self._views.forget(str(metadata(pod).get("uid") or ""))

    def pod(self, name: str) -> JsonObject | None:
        return self.pods.get_by_name(self.namespace, name)

    def pod_by_uid(self, uid: str) -> JsonObject | None:
        found = self.pods.by_index(p.BY_UID, uid) if uid else []
        return found[0] if found else None

    def pods_by(self, index: str, value: str) -> list[JsonObject]:
        return self.pods.by_index(index, value)

    def requesters(self, *, node: str | None = None, isc: str | None = None) -> list[JsonObject]:
        """Requesters on `node`, naming `isc`, or (neither given) all of them."""
        if node is not None:
            candidates = self.pods.by_index(p.BY_NODE, node)
        elif isc is not None:
            candidates = self.pods.by_index(p.BY_ISC, isc)
        else:
            candidates = self.pods.objects()
        return [pod for pod in candidates if p.is_requester(pod)]

    # ----- Nodes, CRs, gpu-map -------------------------------------------------------------------

    def node(self, name: str | None) -> NodeView | None:
        obj = self.nodes.get(name) if name else None
        if obj is None:
            self._node_views.forget(str(name))
            return None
        return self._node_views.get(str(name), obj)

    def isc(self, name: str) -> tuple[InferenceServerConfig | None, str | None]:
        return self._iscs.get(self.isc_store, self.namespace, name)

    def all_iscs(self) -> dict[str, InferenceServerConfig]:
        found = {}
        for obj in self.isc_store.objects():
            name = str(metadata(obj).get("name") or "")
            model, _error = self.isc(name)
            if model is not None:
                found[name] = model
        return found

    def lc(self, name: str) -> tuple[LauncherConfig | None, str | None]:
        return self._lcs.get(self.lc_store, self.namespace, name)

    def gpu_map(self) -> dict[str, dict[str, int]] | None:
        """ConfigMap `gpu-map` as node → {UUID: index}; unparsable entries skipped (§2.4)."""
        obj = self.config_maps.get_by_name(self.namespace, GPU_MAP)
        return self._gpu_map.get(GPU_MAP, obj) if obj is not None else None

    # ----- launchers -----------------------------------------------------------------------------

    def raw_instances(self, launcher_uid: str) -> Mapping[str, Mapping[str, Any]] | None:
        """The instances the launcher's stream reported last (None: not listed yet)."""
        view = self.watches.view(launcher_uid)
        return view.instances if view is not None else None

    def launcher_view(self, pod: JsonObject | PodView, now: float) -> LauncherView:
        view = pod if isinstance(pod, PodView) else self.view(pod)
        raw = self.raw_instances(view.uid)
        if raw is None:
            return LauncherView(pod=view)
        return LauncherView(pod=view, instances=self.book.views(view.uid, raw, now))

    def launchers_on(self, node: str | None, now: float) -> tuple[LauncherView, ...]:
        if not node:
            return ()
        pods = self.pods.by_index(p.LAUNCHERS_ON, node)
        return tuple(self.launcher_view(pod, now) for pod in pods)

    def all_launchers(self, now: float) -> tuple[LauncherView, ...]:
        pods = [pod for pod in self.pods.objects() if p.is_launcher(pod)]
        return tuple(self.launcher_view(pod, now) for pod in pods)

    def direct_providers_on(self, node: str | None) -> tuple[PodView, ...]:
        if not node:
            return ()
        return tuple(self.view(pod) for pod in self.pods.by_index(p.NOMINAL_ON, node))

    def instance_at(self, ip: str, port: int) -> tuple[str, str, int] | None:
        """(launcher UID, instance ID, its revision) of the live instance at `ip:port`."""
        for pod in self.pods.by_index(p.LAUNCHER_IP, ip):
            raw = self.raw_instances(p.uid(pod)) or {}
            for instance_id, instance in raw.items():
                state = InstanceState.from_wire(instance)
                if state.port == port and state.running:
                    return p.uid(pod), instance_id, revision_of(instance)
        return None

    def instance_revision(self, launcher_uid: str, instance_id: str) -> int | None:
        instance = (self.raw_instances(launcher_uid) or {}).get(instance_id)
        return revision_of(instance) if instance is not None else None


def parse_gpu_map(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """`gpu-map` data: each node's JSON object of UUID → non-negative index; bad entries skipped."""
    parsed: dict[str, dict[str, int]] = {}
    for node, text in data.items():
        try:
            entry = json.loads(str(text))
        except ValueError:
            _log.warning("gpu-map: the entry of node %s is not JSON; skipped", node)
            continue
        if not isinstance(entry, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry.values()
        ):
            _log.warning("gpu-map: the entry of node %s is not {UUID: index}; skipped", node)
            continue
        parsed[str(node)] = {str(k): int(v) for k, v in entry.items()}
    return parsed
