"""Dispatch of the CR guard: kinds, operations, subresources and the unchanged-spec rule."""

from __future__ import annotations

import copy

import webhook.validation
from tests.unit.validation_support import CONTEXT, isc, launcher_config, lpp, modified, request
from webhook.validation import Verdict, validate_custom_resource

INVALID_ISC = isc(options="--port 1")


def test_public_names() -> None:
    assert sorted(webhook.validation.__all__) == [
        "MESSAGE_BOUND",
        "MESSAGE_MANAGED",
        "ValidationContext",
        "ValidationSettings",
        "Verdict",
        "validate_custom_resource",
        "validate_pod",
    ]


def test_each_kind_goes_to_its_checks() -> None:
    for kind, obj in (
        ("InferenceServerConfig", isc()),
        ("LauncherConfig", launcher_config()),
        ("LauncherPopulationPolicy", lpp()),
    ):
        assert validate_custom_resource(request(kind, obj), CONTEXT) == Verdict(True)
        assert validate_custom_resource(request(kind, obj, operation="UPDATE", old=obj), CONTEXT)


def test_a_kind_sent_as_another_fails_to_parse() -> None:
    verdict = validate_custom_resource(request("LauncherConfig", isc()), CONTEXT)
    assert not verdict.allowed
    assert verdict.message.startswith('LauncherConfig "x" is invalid: kind: ')


def test_unknown_kinds_are_allowed_with_a_warning() -> None:
    verdict = validate_custom_resource(request("Pod", {"metadata": {}}), CONTEXT)
    assert verdict.allowed
    assert "does not check /Pod" in verdict.warnings[0]


def test_delete_and_status_writes_are_not_checked() -> None:
    delete = request("InferenceServerConfig", None, operation="DELETE", old=INVALID_ISC)
    assert validate_custom_resource(delete, CONTEXT) == Verdict(True)
    status = request(
        "InferenceServerConfig", INVALID_ISC, operation="UPDATE", sub_resource="status"
    )
    assert validate_custom_resource(status, CONTEXT) == Verdict(True)


def test_subject_uses_the_name_when_known() -> None:
    named = validate_custom_resource(request("InferenceServerConfig", INVALID_ISC), CONTEXT)
    assert named.message.startswith('InferenceServerConfig "x" is invalid: ')
    unnamed = request("InferenceServerConfig", INVALID_ISC, name="")
    assert validate_custom_resource(unnamed, CONTEXT).message.startswith(
        "InferenceServerConfig is invalid: "
    )


def test_update_that_makes_the_spec_invalid_is_denied() -> None:
    update = request("InferenceServerConfig", INVALID_ISC, operation="UPDATE", old=isc())
    assert not validate_custom_resource(update, CONTEXT).allowed


def test_update_leaving_an_invalid_spec_unchanged_is_allowed_with_warnings() -> None:
    new = copy.deepcopy(INVALID_ISC)
    new["metadata"]["finalizers"] = []
    new["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    update = request("InferenceServerConfig", new, operation="UPDATE", old=INVALID_ISC)
    verdict = validate_custom_resource(update, CONTEXT)
    assert verdict.allowed
    assert verdict.warnings[-1].startswith("admitted because spec is unchanged, but ")
    assert "must not set --port" in verdict.warnings[-1]


def test_missing_object_is_a_bad_request() -> None:
    verdict = validate_custom_resource(request("LauncherConfig", None), CONTEXT)
    assert (verdict.allowed, verdict.code) == (False, 400)


def test_many_problems_are_capped() -> None:
    labels = {f"k8s.io/k{i}": "v" for i in range(30)}
    verdict = validate_custom_resource(
        request("InferenceServerConfig", isc(labels=labels)), CONTEXT
    )
    assert verdict.message.count("(fix: ") == 20
    assert verdict.message.endswith("; and 10 more problems")


def test_schema_paths_for_nested_items() -> None:
    obj = modified(lpp(), "spec.countForLauncher[0].launcherCount", 2**31)
    verdict = validate_custom_resource(request("LauncherPopulationPolicy", obj), CONTEXT)
    assert "spec.countForLauncher[0].launcherCount: Input should fit in int32" in verdict.message
