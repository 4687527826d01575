"""The mutating webhook's decision: turn an ordinary vLLM Pod into a requester (issue 4).

A pure function, `mutate_pod(pod, ctx) -> MutationResult`: a Pod (plain JSON data) and a
`MutationContext` in, RFC 6902 operations, warnings and a skip reason out. The server wraps it
in an AdmissionReview; see docs/design/webhook-interfaces.md for the boundaries.

Modules (private): `_model` (keys, settings, result), `_pod_access` (type-checked reads),
`_ports` (the requester's serving ports and the stub's listeners, collisions moved aside),
`_requester_stub` (the stub container), `_isc_match` (launcher mode), `_server_patch` and
`_go_yaml` (direct mode), `_provider_labels` (selector escape), `_mutate` (the checks, in
order). The command-line parser is `webhook.vllm_cmdline`; the metadata keys are
`contract.keys`.
"""

from webhook.mutation._model import (
    MUTATED_VALUE,
    SYSTEM_NAMESPACES,
    Mode,
    MutationContext,
    MutationResult,
    MutationSettings,
    SkipCode,
    default_requester_image,
)
from webhook.mutation._mutate import mutate_pod

__all__ = [
    "MUTATED_VALUE",
    "SYSTEM_NAMESPACES",
    "Mode",
    "MutationContext",
    "MutationResult",
    "MutationSettings",
    "SkipCode",
    "default_requester_image",
    "mutate_pod",
]
