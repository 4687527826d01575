"""The validating webhook's pure logic: verdicts on fma's custom resources and on Pods.

`validate_custom_resource` checks InferenceServerConfigs, LauncherConfigs and
LauncherPopulationPolicies for what their CRD schema cannot say; `validate_pod` keeps the
controllers' annotations and labels out of everyone else's hands. Both take the decoded
`AdmissionRequest` and a `ValidationContext`, do no I/O, and return a `Verdict`, which
`Verdict.to_review(uid)` turns into the AdmissionReview response.

Decisions worth knowing (details in the modules):
- A LauncherConfig named by an ISC or LPP that does not exist is a warning, not a denial:
  objects are applied in any order (`_references`).
- `nvidia.com/gpu` asked by a launcher template is a warning: the controllers set it to 0
  anyway (`_podspec`).
- An UPDATE that leaves an invalid spec unchanged is admitted with warnings, so old objects stay
  manageable and deletable (`_custom`).
"""

from __future__ import annotations

from webhook.validation._custom import validate_custom_resource
from webhook.validation._pods import MESSAGE_BOUND, MESSAGE_MANAGED, validate_pod
from webhook.validation._verdict import (
    ValidationContext,
    ValidationSettings,
    Verdict,
)

__all__ = [
    "MESSAGE_BOUND",
    "MESSAGE_MANAGED",
    "ValidationContext",
    "ValidationSettings",
    "Verdict",
    "validate_custom_resource",
    "validate_pod",
]
