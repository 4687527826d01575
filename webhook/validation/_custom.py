"""The validating webhook for fma's custom resources: ISC, LC and LPP on CREATE and UPDATE.

Each object is first parsed with the wire models of `crds.models` (what the controllers will
parse), then checked for what the schema cannot express.

Updates of an object whose `spec` is unchanged are admitted even when the spec is invalid, with
the problems as warnings. Objects stored before this webhook existed (or before a rule was added)
must stay manageable: a controller removing a finalizer, or a user adding a label, must not be
blocked by a spec problem they are not touching; deletion must never get stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from contract.objects import GROUP
from crds.models import (
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
)
from webhook.admission import AdmissionRequest
from webhook.validation._isc import check_inference_server_config
from webhook.validation._launcherconfig import check_launcher_config
from webhook.validation._lpp import check_launcher_population_policy
from webhook.validation._verdict import CODE_BAD_REQUEST, Findings, ValidationContext, Verdict

_R = TypeVar("_R", InferenceServerConfig, LauncherConfig, LauncherPopulationPolicy)
_Check = Callable[[Mapping[str, Any], str, ValidationContext, Findings], None]


def _isc(raw: Mapping[str, Any], namespace: str, ctx: ValidationContext, f: Findings) -> None:
    isc = _parse(InferenceServerConfig, raw, f)
    if isc is not None:
        check_inference_server_config(isc, namespace, ctx, f)


def _lc(raw: Mapping[str, Any], namespace: str, ctx: ValidationContext, f: Findings) -> None:
    # The LC model keeps the template's PodSpec untyped, so its checks read the raw JSON.
    if _parse(LauncherConfig, raw, f) is not None:
        check_launcher_config(raw, f)


def _lpp(raw: Mapping[str, Any], namespace: str, ctx: ValidationContext, f: Findings) -> None:
    lpp = _parse(LauncherPopulationPolicy, raw, f)
    if lpp is not None:
        check_launcher_population_policy(lpp, namespace, ctx, f)


_CHECKS: Final[dict[str, _Check]] = {
    "InferenceServerConfig": _isc,
    "LauncherConfig": _lc,
    "LauncherPopulationPolicy": _lpp,
}


def validate_custom_resource(request: AdmissionRequest, ctx: ValidationContext) -> Verdict:
    """Check an ISC, LC or LPP being created or updated."""
    kind = request.kind.kind
    if request.operation not in ("CREATE", "UPDATE") or request.sub_resource:
        return Verdict(True)
    check = _CHECKS.get(kind) if request.kind.group == GROUP else None
    if check is None:
        return Verdict(
            True,
            warnings=[
                f"fma's validating webhook does not check {request.kind.group}/{kind}; "
                "its registration should not send it"
            ],
        )
    raw = request.object
    if not isinstance(raw, dict):
        return Verdict(False, f"the request carries no {kind} object", code=CODE_BAD_REQUEST)
    findings = Findings()
    check(raw, request.namespace, ctx, findings)
    subject = f'{kind} "{request.name}"' if request.name else kind
    verdict = findings.verdict(subject)
    if (
        not verdict.allowed
        and request.operation == "UPDATE"
        and _same_spec(raw, request.old_object)
    ):
        note = f"admitted because spec is unchanged, but {verdict.message}"
        return Verdict(True, warnings=[*verdict.warnings, note])
    return verdict


def _same_spec(new: Mapping[str, Any], old: object) -> bool:
    return isinstance(old, dict) and old.get("spec") == new.get("spec")


def _parse(model: type[_R], raw: Mapping[str, Any], findings: Findings) -> _R | None:
    """Parse with the wire model; on failure record each schema error with its field path."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            findings.deny(
                _path(detail["loc"]),
                detail["msg"],
                f"write it as the CRD schema says (kubectl explain {model.SINGULAR}.spec)",
            )
        return None


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(object)"
