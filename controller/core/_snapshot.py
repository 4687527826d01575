"""The input of one inference-server decision, and helpers shared by its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contract import keys, objects
from contract.requester import SPI_PORT
from controller.core import _actions as a
from controller.core._gojson import go_json
from controller.core._memory import ServerMemory, Settings
from controller.core._views import LauncherView, NodeView, PodView
from crds.models import InferenceServerConfig, LauncherConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSnapshot:
    """Everything one pass over one inference server (a requester UID) may look at.

    The I/O layer fills it from its caches: the requester (None once gone), the providers
    bound to its UID, its Node, the ISC/LC it names (or the error reading them), every launcher
    on the node with its instances, the direct providers on the node, the `gpu-map`, the
    server's memory and the clock.
    """

    now: float
    requester_uid: str
    requester: PodView | None
    providers: tuple[PodView, ...] = ()
    node: NodeView | None = None
    memory: ServerMemory = field(default_factory=ServerMemory)
    settings: Settings = field(default_factory=Settings)
    isc: InferenceServerConfig | None = None
    isc_error: str | None = None
    lc: LauncherConfig | None = None
    lc_error: str | None = None
    iscs: Mapping[str, InferenceServerConfig] = field(default_factory=dict)
    """All ISCs by name: unbind checks whether a bound instance became obsolete."""
    launchers: tuple[LauncherView, ...] = ()
    direct_providers: tuple[PodView, ...] = ()
    """Pods with a `nominal` annotation on the requester's node."""
    gpu_map: Mapping[str, Mapping[str, int]] | None = None
    """ConfigMap `gpu-map` parsed: node → {UUID: index}; None while the ConfigMap is missing."""

    def launcher(self, pod: PodView) -> LauncherView:
        """The launcher view of a launcher Pod (instances unknown if not listed)."""
        return next((lv for lv in self.launchers if lv.pod.uid == pod.uid), LauncherView(pod=pod))


def ref(pod: PodView) -> a.PodRef:
    """Preconditions for a write to `pod`."""
    return a.PodRef(name=pod.name, uid=pod.uid, resource_version=pod.resource_version)


def admin_port(requester: PodView) -> int:
    """The requester's SPI port (`admin-port` annotation, default 8081)."""
    return admin_port_of(requester.annotations)


def admin_port_of(annotations: Mapping[str, str]) -> int:
    """`admin_port` from the annotations alone, for callers that hold the Pod's JSON."""
    value = annotations.get(keys.ADMIN_PORT, "")
    return int(value) if value.isdigit() else SPI_PORT


def is_launcher_mode(requester: PodView) -> bool:
    """The ISC key present at all means launcher mode (§1.2)."""
    return keys.ISC_ANNOTATION in requester.annotations


def status_json(errors: list[str]) -> str:
    """`{"Errors":[...]}` or `{"Errors":null}` (§2.8)."""
    return '{"Errors":' + (go_json(errors) if errors else "null") + "}"


def wants_requester_finalizer(provider: PodView | None) -> bool:
    """The requester's finalizer is held from the bind until the unbind (§8.2 step 3).

    fma's change: the reference holds it only while the provider's container is Running, so a
    cold actuation wrote the requester twice (bound, then finalizer) and a requester deleted in
    between could go while its provider was about to start on the GPUs. Held from the bind, it
    is written with the rest of the requester's side, and the unbind always runs first."""
    return provider is not None


def requester_update(
    snap: ServerSnapshot,
    *,
    errors: list[str],
    provider: PodView | None = None,
    instance_id: str | None = None,
) -> list[a.Action]:
    """The one Update that brings status, accelerators, labels and finalizer up to date."""
    req = snap.requester
    if req is None or req.deleting:
        return []
    want_finalizer = wants_requester_finalizer(provider)
    gpus = snap.memory.gpu_uuids
    labels = _changed(
        req.labels,
        {keys.DUAL: provider.name if provider else None, keys.INSTANCE_LABEL: instance_id},
    )
    annotations = _changed(
        req.annotations,
        {keys.STATUS: status_json(errors), keys.ACCELERATORS: ",".join(gpus or ())},
    )
    has = keys.REQUESTER_FINALIZER in req.finalizers
    patch = a.PodPatch(
        labels=labels,
        annotations=annotations,
        add_finalizers=(keys.REQUESTER_FINALIZER,) if want_finalizer and not has else (),
        remove_finalizers=(keys.REQUESTER_FINALIZER,) if has and not want_finalizer else (),
    )
    return [a.UpdateRequester(pod=ref(req), patch=patch)] if patch else []


def _changed(
    current: Mapping[str, str], desired: Mapping[str, str | None]
) -> dict[str, str | None]:
    """The `desired` entries `current` does not hold yet (None: the key must go)."""
    return {key: value for key, value in desired.items() if current.get(key) != value}


def status_only(
    snap: ServerSnapshot,
    errors: list[str],
    *,
    retry: float | None = None,
    provider: PodView | None = None,
) -> list[a.Action]:
    """Report `errors` on the requester; retry after `retry` seconds if given."""
    actions = requester_update(snap, errors=errors, provider=provider)
    if retry is not None:
        actions.append(a.Requeue(after=retry, reason=errors[0] if errors else ""))
    return actions


def container(pod: Mapping[str, Any], name: str = objects.INFERENCE_SERVER) -> Mapping[str, Any]:
    """A container of a Pod as JSON, or {}."""
    spec = pod.get("spec") or {}
    return next((c for c in spec.get("containers") or [] if c.get("name") == name), {})


def cuda_devices(pod: PodView) -> tuple[int, ...]:
    """GPU indices in the `CUDA_VISIBLE_DEVICES` of a direct provider's `inference-server`."""
    env = container(pod.raw).get("env") or []
    value = next((e.get("value", "") for e in env if e.get("name") == "CUDA_VISIBLE_DEVICES"), "")
    return tuple(int(part) for part in str(value).split(",") if part.strip().isdigit())
