"""Metadata keys on the wire: annotations, labels and finalizers (contracts §2.1-§2.3).

Two prefixes: `dual-pods.llm-d.ai/` is the reference's (every key a reference controller or an
existing cluster understands), `fma.llm-d.ai/` is fma's own (the mutating webhook's opt-in and
markers). A component that reads or writes one of these keys imports it from here; no other
module spells them.
"""

from __future__ import annotations

from typing import Final

DUAL_PODS_PREFIX: Final = "dual-pods.llm-d.ai/"
"""The reference's prefix: keys the controllers and the reference share."""

FMA_PREFIX: Final = "fma.llm-d.ai/"
"""fma's own prefix (the mutating webhook's keys); unknown to the reference."""

# --- Annotations a user writes on a requester (§1.2) -------------------------------------------

SERVER_PATCH: Final = DUAL_PODS_PREFIX + "server-patch"
"""Direct mode: a Go template of a strategic-merge patch that turns the requester into its
provider."""
ISC_ANNOTATION: Final = DUAL_PODS_PREFIX + "inference-server-config"
"""Launcher mode: the name of the InferenceServerConfig."""
ADMIN_PORT: Final = DUAL_PODS_PREFIX + "admin-port"
"""The requester's SPI port, decimal (8081 when absent)."""

# --- Annotations the controllers write ---------------------------------------------------------

STATUS: Final = DUAL_PODS_PREFIX + "status"
"""On a requester: JSON `{"Errors": [...]}` (§2.8)."""
ACCELERATORS: Final = DUAL_PODS_PREFIX + "accelerators"
"""On a requester and a direct provider: the GPU UUIDs, comma-separated."""
REQUESTER: Final = DUAL_PODS_PREFIX + "requester"
"""On a provider: `"<requester UID> <requester name>"`; present iff bound."""
NOMINAL: Final = DUAL_PODS_PREFIX + "nominal"
"""On a direct provider: the nominal hash (§4.1)."""
INSTANCE_ID: Final = DUAL_PODS_PREFIX + "instance-id"
SERVER_PORT: Final = DUAL_PODS_PREFIX + "server-port"
VLLM_CONFIG: Final = DUAL_PODS_PREFIX + "vllm-config"
ROUTING_METADATA: Final = DUAL_PODS_PREFIX + "isc-routing-metadata"
TEMPLATE_HASH: Final = DUAL_PODS_PREFIX + "launcher-populator-template-hash"
CONFIG_HASH: Final = DUAL_PODS_PREFIX + "launcher-config-hash"
LAST_USED: Final = DUAL_PODS_PREFIX + "last-used"
"""fma's addition (reference-differences B2): when a direct provider was last unbound, RFC 3339."""

BIND_ANNOTATIONS: Final = (INSTANCE_ID, SERVER_PORT, VLLM_CONFIG, ROUTING_METADATA)
"""What the controller writes on a launcher when it binds it (§4.4)."""

# --- Labels ------------------------------------------------------------------------------------

DUAL: Final = DUAL_PODS_PREFIX + "dual"
"""On both Pods of a binding: the other Pod's name."""
SLEEPING: Final = DUAL_PODS_PREFIX + "sleeping"
INSTANCE_LABEL: Final = DUAL_PODS_PREFIX + "instance"
LC_NAME: Final = DUAL_PODS_PREFIX + "launcher-config-name"
"""Marks a Pod as a launcher of that LauncherConfig."""
NODE_NAME: Final = DUAL_PODS_PREFIX + "node-name"
STUCK: Final = DUAL_PODS_PREFIX + "launcher-stuck"
COMPONENT: Final = "app.kubernetes.io/component"
COMPONENT_LAUNCHER: Final = "launcher"
"""The `COMPONENT` value of every launcher Pod (select launchers into an InferencePool by it)."""
HOSTNAME: Final = "kubernetes.io/hostname"
"""The node label providers are pinned by (`nodeSelector`)."""

# --- Finalizers --------------------------------------------------------------------------------

REQUESTER_FINALIZER: Final = DUAL_PODS_PREFIX + "requester"
PROVIDER_FINALIZER: Final = DUAL_PODS_PREFIX + "provider"

# --- fma's own keys (the mutating webhook; docs/mutation.md) -----------------------------------

INJECT_LABEL: Final = FMA_PREFIX + "inject"
"""Opt-in label: `enabled` on a namespace, `"true"`/`"false"` on a Pod (a Pod's `false` wins)."""
MUTATED_ANNOTATION: Final = FMA_PREFIX + "mutated"
"""Marker of a Pod the webhook rewrote; its presence makes a second call a no-op."""
ORIGINAL_CONTAINER_ANNOTATION: Final = FMA_PREFIX + "original-container"
"""The replaced vLLM container as compact JSON, kept for audit and for undoing the rewrite."""
ISC_CHOICE_ANNOTATION: Final = FMA_PREFIX + "inference-server-config"
"""A user's explicit choice of InferenceServerConfig (launcher mode) for an ordinary vLLM Pod."""
WEBHOOK_NAMESPACE_LABEL: Final = FMA_PREFIX + "webhook-namespace"
"""Marks the webhook's own namespace, which its webhooks never intercept."""
SERVED_NAMESPACE_LABEL: Final = FMA_PREFIX + "served"
"""Marks a namespace where fma's controllers act (the Pod guard covers it)."""

# --- Who may write what (contracts §11) --------------------------------------------------------

PROTECTED_ANNOTATIONS: Final = frozenset(
    {REQUESTER, STATUS, INSTANCE_ID, SERVER_PORT, VLLM_CONFIG, ROUTING_METADATA}
)
"""Rule 1: only the controllers may set or change these, on any Pod."""
PROTECTED_LABELS: Final = frozenset({DUAL, LC_NAME})
"""Rule 1, labels."""
BOUND_REQUESTER_ANNOTATIONS: Final = frozenset({ISC_ANNOTATION, SERVER_PATCH, ADMIN_PORT})
"""Rule 2, widened to direct mode and the SPI port (reference-differences D2): what defines a bound
requester's server; changing it under a binding would desynchronise requester and provider."""
BOUND_REQUESTER_LABELS: Final = frozenset({DUAL})

# --- fma's records on launcher Pods (reference-differences B1, B2) -----------------------------

INSTANCES_LAST_USED: Final = FMA_PREFIX + "instances-last-used"
"""On a launcher: JSON `{"<instance id>": <unix seconds>}`, when the controller last unbound each
sleeping instance. Written in the unbinding Update, so that least-recently-used eviction keeps its
order across a controller restart (B2)."""
INSTANCE_FOOTPRINTS: Final = FMA_PREFIX + "instance-footprints"
"""On a launcher: JSON `{"<instance id>": {"start": <MiB>, "wake": <MiB>}}`, the per-GPU rise of
used GPU memory measured the last time each instance was started or woken (either key may be
absent). Written in the unbinding Update; the memory gate sizes the next wake or start by it
(B1)."""
