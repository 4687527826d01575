"""LauncherPopulationPolicy checks: selectors parse, ranges are consistent, names possible."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_support import CONTEXT, lpp, modified, request
from webhook.validation import Verdict, validate_custom_resource

SELECTOR = "spec.enhancedNodeSelector.labelSelector"


def check(obj: dict[str, Any]) -> Verdict:
    return validate_custom_resource(request("LauncherPopulationPolicy", obj), CONTEXT)


def test_valid_policy_is_allowed_without_warnings() -> None:
    assert check(lpp()) == Verdict(True)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "a", "operator": "In"}, "values: must be non-empty for operator In"),
        ({"key": "a", "operator": "NotIn", "values": []}, "must be non-empty for operator NotIn"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "must be empty for operator Exists"),
        ({"key": "a", "operator": "DoesNotExist", "values": ["x"]}, "must be empty for operator"),
        (
            {"key": "a", "operator": "Gt", "values": ["1"]},
            "operator: 'Gt' is not a valid label selector operator",
        ),
        ({"key": "a", "operator": "in", "values": ["x"]}, "'in' is not a valid label selector"),
        ({"key": "a b", "operator": "Exists"}, "matchExpressions[0].key"),
        ({"key": "a", "operator": "In", "values": ["no good"]}, "matchExpressions[0].values[0]"),
    ],
)
def test_bad_match_expressions_are_denied(expression: dict[str, Any], expected: str) -> None:
    verdict = check(lpp(labelSelector={"matchExpressions": [expression]}))
    assert not verdict.allowed
    assert f"{SELECTOR}.matchExpressions[0]" in verdict.message
    assert expected in verdict.message


@pytest.mark.parametrize("operator", ["Exists", "DoesNotExist"])
def test_existence_operators_take_no_values(operator: str) -> None:
    selector = {"matchExpressions": [{"key": "gpu", "operator": operator}]}
    assert check(lpp(labelSelector=selector)) == Verdict(True)


def test_bad_match_labels_are_denied() -> None:
    verdict = check(lpp(labelSelector={"matchLabels": {"-x": "y", "ok": "not ok"}}))
    assert f"{SELECTOR}.matchLabels[-x]" in verdict.message
    assert f"{SELECTOR}.matchLabels[ok]" in verdict.message


def test_empty_selector_selects_every_node_with_a_warning() -> None:
    verdict = check(lpp(labelSelector={}))
    assert verdict.allowed
    assert verdict.warnings == [f"{SELECTOR}: is empty and selects every Node"]


@pytest.mark.parametrize(
    ("bounds", "allowed"),
    [
        ({"min": "2", "max": 1}, False),
        ({"min": "1Gi", "max": "1073741824"}, True),
        ({"min": "1Gi", "max": "1G"}, False),
        ({"min": "500m", "max": "0.5"}, True),
        ({"min": "1e3", "max": "1k"}, True),
        ({"min": "1.5", "max": "1"}, False),
        ({"min": 4}, True),
        ({"max": "8"}, True),
        ({}, True),
    ],
)
def test_allocatable_ranges_compare_quantities(bounds: dict[str, Any], allowed: bool) -> None:
    verdict = check(lpp(allocatableResources={"nvidia.com/gpu": bounds}))
    assert verdict.allowed is allowed
    if not allowed:
        assert "allocatableResources[nvidia.com/gpu]: min (" in verdict.message


def test_go_unparsable_quantity_is_denied() -> None:
    # Matches the CRD pattern, but Go's ParseQuantity needs an integer exponent.
    verdict = check(lpp(allocatableResources={"memory": {"min": "1e1.5"}}))
    assert "allocatableResources[memory].min: '1e1.5' is not a quantity" in verdict.message


def test_resource_names_must_be_qualified() -> None:
    verdict = check(lpp(allocatableResources={"a/b/c": {"min": 1}}))
    assert "allocatableResources[a/b/c]" in verdict.message


def test_launcher_config_references() -> None:
    entries = [
        {"launcherConfigName": "launcher", "launcherCount": 1},
        {"launcherConfigName": "later", "launcherCount": -1},
    ]
    verdict = check(modified(lpp(), "spec.countForLauncher", entries))
    assert verdict.allowed
    assert verdict.warnings == [
        'spec.countForLauncher[1].launcherConfigName: LauncherConfig "later" does not exist in '
        'namespace "team" (yet); nothing is launched for this reference until it is created',
        "spec.countForLauncher[1].launcherCount: is negative and acts as 0",
    ]
    bad = [{"launcherConfigName": "Not A Name", "launcherCount": 1}]
    assert (
        "spec.countForLauncher[0].launcherConfigName"
        in check(modified(lpp(), "spec.countForLauncher", bad)).message
    )


def test_duplicate_launcher_config_names_are_denied() -> None:
    entry = {"launcherConfigName": "launcher", "launcherCount": 1}
    verdict = check(modified(lpp(), "spec.countForLauncher", [entry, entry]))
    assert "spec.countForLauncher" in verdict.message
    assert "duplicate launcherConfigName 'launcher'" in verdict.message


def test_empty_counts_warn_and_missing_spec_is_denied() -> None:
    verdict = check(modified(lpp(), "spec.countForLauncher", []))
    assert verdict.warnings == [
        "spec.countForLauncher: is empty, so this policy keeps no launchers"
    ]
    obj = lpp()
    del obj["spec"]
    assert "spec: is required" in check(obj).message
