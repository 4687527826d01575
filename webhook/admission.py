"""AdmissionReview v1 on the wire: the request the apiserver sends and the responses we return.

The handlers decode one `AdmissionReview`, hand its `request` to a pure function and encode the
answer with one of the builders here, so every response the server can produce is built in one
place and is valid by construction: `apiVersion: admission.k8s.io/v1`, `kind: AdmissionReview`,
`response.uid` echoing the request (the apiserver rejects a response whose uid differs).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"
PATCH_TYPE: Final = "JSONPatch"
# Warnings travel back to clients as HTTP `Warning` headers; the apiserver silently drops a
# warning holding any control character (Go's `unicode.IsControl`: C0, DEL and C1), which a key
# with a newline quoted in a message would otherwise cause.
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_REASONS: Final = {400: "BadRequest", 403: "Forbidden", 422: "Invalid", 500: "InternalError"}

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class _Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored (newer apiservers)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


class GroupVersionKind(_Wire):
    """`request.kind`: the kind of the object (group is empty for core)."""

    group: str = ""
    version: str
    kind: str


class GroupVersionResource(_Wire):
    """`request.resource`: the resource being requested (plural, e.g. `pods`)."""

    group: str = ""
    version: str
    resource: str


class UserInfo(_Wire):
    """Who makes the request, as the apiserver authenticated them."""

    username: str = ""
    uid: str | None = None
    groups: list[str] = Field(default_factory=list)
    extra: dict[str, list[str]] | None = None


class AdmissionRequest(_Wire):
    """`AdmissionReview.request`. `object`/`old_object` stay plain JSON: the checks read them
    with their own models and must cope with anything the apiserver lets through."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    operation: Operation
    user_info: UserInfo = Field(default_factory=UserInfo)
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool = False
    options: dict[str, Any] | None = None


class StatusCause(_Wire):
    """One `metav1.StatusCause`: what kubectl prints after "is invalid: "."""

    reason: str | None = None
    message: str | None = None
    field: str | None = None


class StatusDetails(_Wire):
    """`metav1.StatusDetails`: kubectl prints an Invalid error only through its causes."""

    causes: list[StatusCause] | None = None


class ResponseStatus(_Wire):
    """`response.status` (a `metav1.Status`): why a request was denied."""

    code: int | None = None
    message: str | None = None
    reason: str | None = None
    details: StatusDetails | None = None


class AdmissionResponse(_Wire):
    """`AdmissionReview.response`."""

    uid: str
    allowed: bool
    status: ResponseStatus | None = None
    patch: str | None = None
    """Base64 of a JSON Patch (RFC 6902) document."""
    patch_type: Literal["JSONPatch"] | None = None
    warnings: list[str] | None = None
    audit_annotations: dict[str, str] | None = None


class AdmissionReview(_Wire):
    """The envelope in both directions."""

    api_version: Literal["admission.k8s.io/v1"] = API_VERSION
    kind: Literal["AdmissionReview"] = KIND
    request: AdmissionRequest | None = None
    response: AdmissionResponse | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready form, without absent optional fields."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_review(payload: bytes | str | Mapping[str, Any]) -> AdmissionRequest:
    """Decode an incoming AdmissionReview and return its request.

    Raises `pydantic.ValidationError` (a `ValueError`) when the payload is not an AdmissionReview
    v1 with a request; the server answers that with HTTP 400.
    """
    if isinstance(payload, Mapping):
        review = AdmissionReview.model_validate(payload)
    else:
        review = AdmissionReview.model_validate_json(payload)
    if review.request is None:
        raise ValueError("the AdmissionReview has no request")
    return review.request


def _warnings(warnings: Sequence[str]) -> list[str] | None:
    cleaned = [_CONTROL_CHARS.sub(" ", w).strip() for w in warnings]
    kept = [w for w in cleaned if w]
    return kept or None


def _review(response: AdmissionResponse) -> AdmissionReview:
    return AdmissionReview(response=response)


def allow(uid: str, *, warnings: Sequence[str] = ()) -> AdmissionReview:
    """Admit the request unchanged."""
    return _review(AdmissionResponse(uid=uid, allowed=True, warnings=_warnings(warnings)))


def deny(
    uid: str, message: str, *, code: int = 403, warnings: Sequence[str] = ()
) -> AdmissionReview:
    """Refuse the request; `message` is what `kubectl` prints after "denied the request: "."""
    reason = _REASONS.get(code)
    # kubectl shows an "Invalid" error as "The request is invalid" unless it carries causes, so
    # the message travels as a cause too (kubectl then prints it after "is invalid: ").
    details = (
        StatusDetails(causes=[StatusCause(reason="FieldValueInvalid", message=message)])
        if reason == "Invalid"
        else None
    )
    status = ResponseStatus(code=code, message=message, reason=reason, details=details)
    return _review(
        AdmissionResponse(uid=uid, allowed=False, status=status, warnings=_warnings(warnings))
    )


def patch_response(
    uid: str, patch_ops: Sequence[Mapping[str, Any]], warnings: Sequence[str] = ()
) -> AdmissionReview:
    """Admit the request with a JSON Patch; an empty patch admits it unchanged.

    Raises TypeError/ValueError if an operation is not JSON-serializable: a bug in the caller,
    which the server must report as such rather than send a broken patch.
    """
    if not patch_ops:
        return allow(uid, warnings=warnings)
    document = json.dumps([dict(op) for op in patch_ops], separators=(",", ":"), allow_nan=False)
    response = AdmissionResponse(
        uid=uid,
        allowed=True,
        patch=base64.b64encode(document.encode()).decode("ascii"),
        patch_type=PATCH_TYPE,
        warnings=_warnings(warnings),
    )
    return _review(response)
