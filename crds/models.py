"""Wire models of fma's custom resources (group `fma.llm-d.ai`, version `v1alpha1`).

These pydantic models are the single source of truth: the controllers parse custom resources
with them, and `fma-gen-crds` derives the CRD schemas from them (see `crds.schema`). Attribute
docstrings become the field descriptions that `kubectl explain` shows, so they are written for
users.

What the models check is what the apiserver checks, no more: JSON names and types, required
fields, bounds and list-map keys. A controller must be able to parse every object the apiserver
stores and report semantic errors (a bad selector operator, a template without the
`inference-server` container, ...) on the object's status instead of failing to read it.
The one deliberate extra is the Go integer width (see `IntBits`): Go controllers fail on an
overflowing value as well.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from contract.objects import API_VERSION, ApiVersion
from crds._scalars import INT32, Int32, Int64, Quantity


class WireModel(BaseModel):
    """Base of the wire models: camelCase JSON names, JSON types without coercion.

    Strict mode matches the apiserver, which rejects `"8000"` for an integer or `1` for a string.
    Unknown fields are ignored, like the apiserver prunes them.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        strict=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON-ready form with wire names, leaving absent optional fields out."""
        return self.model_dump(mode="json", exclude_none=True)


class Status(WireModel):
    """Observed state, written by the fma controllers."""

    observed_generation: Int64 | None = None
    """The metadata.generation that the writer of this status last processed."""

    errors: list[str] | None = None
    """Problems found in the spec, one message each; absent when there are none."""


class ObjectMeta(WireModel):
    """The parts of standard object metadata that fma reads; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: Int64 | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Resource(WireModel):
    """Fields and names shared by the three custom resources.

    Subclasses narrow `kind` to their own name, so parsing an object of another kind fails, and
    add `spec` and `status` (declared there to keep the usual field order in dumps).
    """

    PLURAL: ClassVar[str]
    SINGULAR: ClassVar[str]
    SHORT_NAME: ClassVar[str]

    api_version: ApiVersion = API_VERSION
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


# --- InferenceServerConfig ----------------------------------------------------------------------


class ModelServerConfig(WireModel):
    """How to run the vLLM server process."""

    port: Annotated[int, Field(ge=1, le=65535), INT32]
    """TCP port vLLM listens on. The controllers send sleep and wake-up requests here and append
    `--port <port>` to the options."""

    options: str | None = None
    """vLLM command-line options without `--port`, for example `--model /models/tiny
    --enable-sleep-mode`. Split like a shell command line: fma's launcher honours quotes, a
    reference launcher splits on whitespace only, so avoid quotes where both may serve."""

    # The one snake_case JSON name of the API, kept for wire compatibility.
    env_vars: dict[str, str] | None = Field(default=None, alias="env_vars")
    """Environment variables added to the vLLM process."""

    labels: dict[str, str] | None = None
    """Routing labels put on the launcher Pod while it serves this server. Keys must be
    qualified names outside the `dual-pods.llm-d.ai/`, `kubernetes.io/` and `k8s.io/`
    prefixes; values must be valid label values."""

    annotations: dict[str, str] | None = None
    """Routing annotations put on the launcher Pod while it serves this server, with the same
    key rules as labels."""


class InferenceServerConfigSpec(WireModel):
    """Desired vLLM server configuration and the LauncherConfig whose launchers run it."""

    model_server_config: ModelServerConfig
    launcher_config_name: str
    """Name of the LauncherConfig, in the same namespace, whose launcher Pods host this
    server."""


class InferenceServerConfig(Resource):
    """InferenceServerConfig (ISC) describes one kind of vLLM inference server: its options,
    port, environment and routing metadata. A requester Pod names it in the annotation
    `dual-pods.llm-d.ai/inference-server-config`."""

    PLURAL: ClassVar[str] = "inferenceserverconfigs"
    SINGULAR: ClassVar[str] = "inferenceserverconfig"
    SHORT_NAME: ClassVar[str] = "isc"

    kind: Literal["InferenceServerConfig"] = "InferenceServerConfig"
    spec: InferenceServerConfigSpec
    status: Status | None = None


# --- LauncherConfig ----------------------------------------------------------------------------


class PodTemplateMetadata(WireModel):
    """Metadata for the launcher Pods. Only labels and annotations are kept; other keys are
    dropped."""

    labels: dict[str, str] | None = None
    """Labels copied onto each launcher Pod."""

    annotations: dict[str, str] | None = None
    """Annotations copied onto each launcher Pod."""


class Container(WireModel):
    """A core/v1 Container. Only `name` is checked here; the other fields are kept as given."""

    model_config = ConfigDict(extra="allow")

    name: str
    """Name of the container; the launcher runs in the one named `inference-server`."""


class PodSpec(WireModel):
    """A core/v1 PodSpec for the launcher Pods. It must have a container named
    `inference-server`."""

    # Only `containers` is typed, on purpose: the full PodSpec schema is thousands of lines, and
    # a CRD copy of it would drift from the cluster's own version. The full check belongs to
    # fma's validating webhook, which parses the template as a Pod (stricter, and always as
    # current as the cluster); the CRD keeps the other fields as given
    # (`x-kubernetes-preserve-unknown-fields`).
    model_config = ConfigDict(extra="allow")

    containers: list[Container]
    """The Pod's containers (core/v1 Container objects)."""


class PodTemplate(WireModel):
    """Template of the launcher Pods."""

    metadata: PodTemplateMetadata | None = None
    spec: PodSpec | None = None


class LauncherConfigSpec(WireModel):
    """Desired launcher Pod shape and capacity."""

    pod_template: PodTemplate | None = None
    max_instances: Annotated[int, Field(ge=1), INT32]
    """Most vLLM instances (awake or asleep) one launcher Pod may hold."""


class LauncherConfig(Resource):
    """LauncherConfig (LC) describes launcher Pods: long-lived processes with vLLM already
    imported that start inference server instances on request."""

    PLURAL: ClassVar[str] = "launcherconfigs"
    SINGULAR: ClassVar[str] = "launcherconfig"
    SHORT_NAME: ClassVar[str] = "lcfg"

    kind: Literal["LauncherConfig"] = "LauncherConfig"
    spec: LauncherConfigSpec
    status: Status | None = None


# --- LauncherPopulationPolicy ------------------------------------------------------------------


class LabelSelectorRequirement(WireModel):
    """A label selector requirement: a key, an operator and values."""

    key: str
    """The label key the requirement applies to."""

    operator: str
    """One of `In`, `NotIn`, `Exists` and `DoesNotExist`."""

    values: list[str] | None = None
    """Values for `In` and `NotIn` (non-empty); must be empty for `Exists` and
    `DoesNotExist`."""


class LabelSelector(WireModel):
    """A standard label selector over Node labels; all its terms are ANDed. Replaced as a whole
    on apply (atomic)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    match_labels: dict[str, str] | None = None
    """Labels a node must have, key and value."""

    match_expressions: list[LabelSelectorRequirement] | None = None
    """Requirements a node's labels must meet."""


class ResourceRange(WireModel):
    """Inclusive bounds on a quantity; an absent bound is unbounded."""

    min: Quantity | None = None
    """Smallest allowed quantity, inclusive."""

    max: Quantity | None = None
    """Largest allowed quantity, inclusive."""


class EnhancedNodeSelector(WireModel):
    """Which Nodes the policy applies to: a label selector, optionally narrowed by allocatable
    resources."""

    label_selector: LabelSelector
    allocatable_resources: dict[str, ResourceRange] | None = None
    """Ranges on `status.allocatable`, by resource name (such as `nvidia.com/gpu`). A node must
    have each listed resource, within its range."""


class CountForLauncher(WireModel):
    """How many launcher Pods of one LauncherConfig to keep on each selected Node."""

    launcher_config_name: str
    """Name of the LauncherConfig, in the same namespace."""

    launcher_count: Int32
    """Number of launcher Pods per selected Node. Negative counts act as 0."""


_COUNT_FOR_LAUNCHER_LIST_MAP: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["launcherConfigName"],
}


class LauncherPopulationPolicySpec(WireModel):
    """Desired launcher population on the selected Nodes."""

    enhanced_node_selector: EnhancedNodeSelector
    count_for_launcher: list[CountForLauncher] = Field(
        json_schema_extra=_COUNT_FOR_LAUNCHER_LIST_MAP
    )
    """Launcher counts, at most one entry per LauncherConfig. Where several policies select a
    Node, the largest count for a LauncherConfig wins."""

    @field_validator("count_for_launcher")
    @classmethod
    def _unique_launcher_config_names(
        cls, entries: list[CountForLauncher]
    ) -> list[CountForLauncher]:
        """Reject duplicate names, as the apiserver does for a list-map key."""
        seen: set[str] = set()
        for entry in entries:
            if entry.launcher_config_name in seen:
                msg = f"duplicate launcherConfigName {entry.launcher_config_name!r}"
                raise ValueError(msg)
            seen.add(entry.launcher_config_name)
        return entries


class LauncherPopulationPolicy(Resource):
    """LauncherPopulationPolicy (LPP) asks for unbound launcher Pods to be kept ready on the
    selected Nodes, ahead of demand."""

    PLURAL: ClassVar[str] = "launcherpopulationpolicies"
    SINGULAR: ClassVar[str] = "launcherpopulationpolicy"
    SHORT_NAME: ClassVar[str] = "lpp"

    kind: Literal["LauncherPopulationPolicy"] = "LauncherPopulationPolicy"
    spec: LauncherPopulationPolicySpec | None = None
    status: Status | None = None
