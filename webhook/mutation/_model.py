"""Plain data of the Pod mutation: metadata keys, settings, context, result and skip reasons.

`webhook.mutation.mutate_pod` is a pure function: the server fills a `MutationContext` from its
watch-backed caches and its flags, and turns the `MutationResult` into an AdmissionReview
response. Nothing here touches the network or the cluster, so the golden and fuzz tests can drive
the whole decision with plain objects.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from crds.models import InferenceServerConfig

# The metadata keys the mutation reads and writes live in `contract.keys`, the container name
# and the GPU resource in `contract.objects`, the stub's ports and environment names in
# `contract.requester`: the one place each is declared. The mutation modules import them there.

MUTATED_VALUE: Final = "v1"
"""Version of the rewrite recorded in the `mutated` marker, so a later format can tell old stubs
apart."""

SYSTEM_NAMESPACES: Final = frozenset({"kube-system", "kube-public", "kube-node-lease"})

MAX_ANNOTATIONS_BYTES: Final = 256 * 1024
"""The apiserver rejects a Pod whose annotations (keys plus values) exceed 256 KiB."""

Mode = Literal["launcher", "direct"]

SkipCode = Literal[
    "system_namespace",
    "own_namespace",
    "already_mutated",
    "opted_out",
    "not_opted_in",
    "provider",
    "already_requester",
    "not_vllm",
    "several_vllm",
    "unparseable",
    "no_gpu",
    "conflict",
    "malformed",
    "too_large",
    "internal_error",
]
"""Why a Pod was left unchanged, as a bounded value for metrics and logs (the reason text is
for people and may quote the Pod)."""


def default_requester_image() -> str:
    """`ghcr.io/llm-d/fma:<installed fma version>`: one image runs every fma component."""
    try:
        version = importlib.metadata.version("fma")
    except importlib.metadata.PackageNotFoundError:
        version = "latest"
    return f"ghcr.io/llm-d/fma:{version}"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class MutationSettings:
    """How the requester stub looks; set from the webhook's flags.

    The stub only holds the GPUs and answers probes, so it asks for little CPU and memory and
    sets no CPU limit (throttling would delay the readiness relay). It drops every capability
    so that it is admitted in namespaces enforcing Pod Security "restricted" container rules.
    """

    requester_image: str = field(default_factory=default_requester_image)
    requester_command: tuple[str, ...] = ("fma-requester",)
    requester_image_pull_policy: str | None = None
    requester_requests: Mapping[str, str] = field(
        default_factory=lambda: _frozen({"cpu": "10m", "memory": "64Mi"})
    )
    requester_limits: Mapping[str, str] = field(
        default_factory=lambda: _frozen({"memory": "256Mi"})
    )
    requester_security_context: Mapping[str, Any] | None = field(
        default_factory=lambda: _frozen(
            {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        )
    )
    readiness_period_seconds: int = 1
    """Short, so the requester's readiness follows the server's within about a second."""
    webhook_namespace: str = "fma-system"
    """The webhook's own namespace, never mutated (its Pods must start without the webhook)."""
    control_trust: str | None = None
    """The control CA bundle (PEM) the stub checks the controller's calls against (contracts
    §14); None: the install's compatibility mode, in which the stub accepts any caller."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MutationContext:
    """Everything besides the Pod that the decision depends on.

    `namespace` is the admission request's namespace (a Pod being created often has none in its
    metadata). `iscs` are the InferenceServerConfigs of that namespace. `owner_selector` is the
    label selector of the Pod's controller (a ReplicaSet's or StatefulSet's `spec.selector`, a
    `LabelSelector`; a plain label map is accepted too), or None when unknown.
    """

    namespace: str
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    iscs: Sequence[InferenceServerConfig] = ()
    owner_selector: Mapping[str, Any] | None = None
    settings: MutationSettings = field(default_factory=MutationSettings)


@dataclass(frozen=True, slots=True)
class MutationResult:
    """The outcome: RFC 6902 operations (empty when skipped), warnings for the admission
    response, the skip reason and its code, and the requester mode chosen."""

    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    mode: Mode | None = None
    skip_code: SkipCode | None = None


class Skip(Exception):  # noqa: N818 - a decision, not an error
    """Raised inside the mutation to leave the Pod untouched.

    `warn` is False for the expected, quiet cases (not opted in, already mutated, no vLLM
    container): an admission warning on every ordinary Pod would be noise. Every skip of a Pod
    that looks like it wanted the rewrite warns, and its reason names the field and the fix.
    """

    def __init__(self, reason: str, *, code: SkipCode = "malformed", warn: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code: SkipCode = code
        self.warn = warn


def quote(value: object, limit: int = 60) -> str:
    """`repr`-quote a user-supplied value for a message, cut so one field cannot flood it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
