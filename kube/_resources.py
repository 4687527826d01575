"""The resource kinds fma reads and writes, and how their REST paths are built.

Why our own table rather than the official client's typed APIs: fma speaks plain JSON over one
async HTTP client (see `kube._client`), so all it needs per kind is the group, version, plural
and scope; one small dataclass makes every call site uniform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from contract.objects import GROUP, VERSION
from crds.models import (
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
)

JsonObject = dict[str, Any]
"""A Kubernetes object (or any JSON object) exactly as the apiserver sends it."""


@dataclass(frozen=True, kw_only=True)
class ResourceKind:
    """One REST resource: enough to build its URLs and to name it in logs and metrics."""

    kind: str
    plural: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """`v1` for the core group, else `<group>/<version>` (what objects carry)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The REST path; without `namespace` a namespaced kind is addressed cluster-wide."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        elif not self.namespaced and namespace:
            raise ValueError(f"{self.kind} is cluster-scoped; got namespace {namespace!r}")
        parts.append(self.plural)
        if name is not None:
            if not name:
                raise ValueError(f"{self.kind}: empty name")
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        elif subresource:
            raise ValueError(f"{self.kind}: a subresource needs a name")
        return "/".join(parts)


PODS: Final = ResourceKind(kind="Pod", plural="pods")
NODES: Final = ResourceKind(kind="Node", plural="nodes", namespaced=False)
CONFIG_MAPS: Final = ResourceKind(kind="ConfigMap", plural="configmaps")
EVENTS: Final = ResourceKind(kind="Event", plural="events")
NAMESPACES: Final = ResourceKind(kind="Namespace", plural="namespaces", namespaced=False)
LEASES: Final = ResourceKind(
    kind="Lease", plural="leases", group="coordination.k8s.io", version="v1"
)
REPLICA_SETS: Final = ResourceKind(kind="ReplicaSet", plural="replicasets", group="apps")
STATEFUL_SETS: Final = ResourceKind(kind="StatefulSet", plural="statefulsets", group="apps")
MUTATING_WEBHOOK_CONFIGURATIONS: Final = ResourceKind(
    kind="MutatingWebhookConfiguration",
    plural="mutatingwebhookconfigurations",
    group="admissionregistration.k8s.io",
    namespaced=False,
)
VALIDATING_WEBHOOK_CONFIGURATIONS: Final = ResourceKind(
    kind="ValidatingWebhookConfiguration",
    plural="validatingwebhookconfigurations",
    group="admissionregistration.k8s.io",
    namespaced=False,
)
INFERENCE_SERVER_CONFIGS: Final = ResourceKind(
    kind="InferenceServerConfig", plural=InferenceServerConfig.PLURAL, group=GROUP, version=VERSION
)
LAUNCHER_CONFIGS: Final = ResourceKind(
    kind="LauncherConfig", plural=LauncherConfig.PLURAL, group=GROUP, version=VERSION
)
LAUNCHER_POPULATION_POLICIES: Final = ResourceKind(
    kind="LauncherPopulationPolicy",
    plural=LauncherPopulationPolicy.PLURAL,
    group=GROUP,
    version=VERSION,
)


def object_key(obj: JsonObject) -> str:
    """`<namespace>/<name>`, or `<name>` for cluster-scoped objects (client-go's cache key)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = str(meta.get("name") or "")
    return f"{namespace}/{name}" if namespace else name


def metadata(obj: JsonObject) -> JsonObject:
    """The object's metadata (empty if absent), for read-only use."""
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
