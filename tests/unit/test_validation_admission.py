"""AdmissionReview v1 models and builders: every response is a valid AdmissionReview."""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from webhook.admission import (
    AdmissionReview,
    allow,
    deny,
    parse_review,
    patch_response,
)

REQUEST: dict[str, Any] = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "p",
        "namespace": "ns",
        "operation": "UPDATE",
        "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
        "object": {"metadata": {"name": "p"}},
        "oldObject": {"metadata": {"name": "p"}},
        "dryRun": False,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
        "someFutureField": 1,
    },
}


def assert_valid_response(wire: dict[str, Any], uid: str) -> None:
    """The properties the apiserver checks on a webhook's answer."""
    assert wire["apiVersion"] == "admission.k8s.io/v1"
    assert wire["kind"] == "AdmissionReview"
    assert "request" not in wire
    response = wire["response"]
    assert response["uid"] == uid
    assert isinstance(response["allowed"], bool)
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        assert isinstance(json.loads(base64.b64decode(response["patch"])), list)
    for warning in response.get("warnings", []):
        assert warning
        assert not any(unicodedata.category(c) == "Cc" for c in warning)
    AdmissionReview.model_validate(wire)


def test_parse_review_reads_every_field() -> None:
    request = parse_review(json.dumps(REQUEST).encode())
    assert request.uid == REQUEST["request"]["uid"]
    assert request.operation == "UPDATE"
    assert request.user_info.username == "alice"
    assert request.user_info.groups == ["system:authenticated"]
    assert request.kind.kind == "Pod"
    assert request.resource.resource == "pods"
    assert request.object == {"metadata": {"name": "p"}}
    assert request.old_object == {"metadata": {"name": "p"}}
    assert request.options is not None
    assert request.sub_resource == ""
    assert parse_review(REQUEST) == request


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        json.dumps({**REQUEST, "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
        json.dumps({**REQUEST, "request": {**REQUEST["request"], "operation": "PATCH"}}).encode(),
    ],
)
def test_parse_review_rejects_what_is_not_a_v1_request(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_review(payload)


def test_allow() -> None:
    wire = allow("u", warnings=["careful"]).to_wire()
    assert wire == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": True, "warnings": ["careful"]},
    }
    assert_valid_response(wire, "u")
    assert "warnings" not in allow("u").to_wire()["response"]


def test_deny_carries_code_reason_and_message() -> None:
    wire = deny("u", "spec.x: bad (fix: y)", code=422).to_wire()
    assert wire["response"] == {
        "uid": "u",
        "allowed": False,
        "status": {
            "code": 422,
            "message": "spec.x: bad (fix: y)",
            "reason": "Invalid",
            # kubectl prints an Invalid error's message only from its causes.
            "details": {
                "causes": [{"reason": "FieldValueInvalid", "message": "spec.x: bad (fix: y)"}]
            },
        },
    }
    assert deny("u", "no").to_wire()["response"]["status"]["code"] == 403
    assert_valid_response(wire, "u")


def test_patch_response_is_base64_json_patch() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations/a", "value": "b"}]
    wire = patch_response("u", ops, ["w"]).to_wire()
    assert wire["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(wire["response"]["patch"])) == ops
    assert wire["response"]["warnings"] == ["w"]
    assert_valid_response(wire, "u")


def test_empty_patch_is_a_plain_allow() -> None:
    assert patch_response("u", []).to_wire() == allow("u").to_wire()


def test_patch_that_is_not_json_is_an_error() -> None:
    with pytest.raises(ValueError):
        patch_response("u", [{"op": "add", "path": "/x", "value": float("nan")}])


def test_warnings_lose_control_characters_and_empties() -> None:
    wire = allow("u", warnings=["a\nb\tc\x85d", "", "  \x00 "]).to_wire()
    assert wire["response"]["warnings"] == ["a b c d"]


def test_response_survives_a_round_trip() -> None:
    review = deny("u", "m", code=400, warnings=["w"])
    assert AdmissionReview.model_validate_json(review.model_dump_json()) == review


def test_request_requires_identity_fields() -> None:
    with pytest.raises(ValidationError):
        parse_review(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"operation": "CREATE"},
            }
        )
