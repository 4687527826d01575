"""The Pod guard (contracts §11 and reference-differences D2): controller-owned metadata is the
controllers' alone, on CREATE and UPDATE; a bound requester's server definition is frozen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.validation_support import CONTEXT, CONTROLLER, request
from webhook.validation import MESSAGE_BOUND, MESSAGE_MANAGED, Verdict, validate_pod

ISC = "dual-pods.llm-d.ai/inference-server-config"
PATCH = "dual-pods.llm-d.ai/server-patch"
ADMIN_PORT = "dual-pods.llm-d.ai/admin-port"
DUAL = "dual-pods.llm-d.ai/dual"
REQUESTER = "dual-pods.llm-d.ai/requester"
MANAGED_ANNOTATIONS = [
    REQUESTER,
    "dual-pods.llm-d.ai/status",
    "dual-pods.llm-d.ai/instance-id",
    "dual-pods.llm-d.ai/server-port",
    "dual-pods.llm-d.ai/vllm-config",
    "dual-pods.llm-d.ai/isc-routing-metadata",
]
MANAGED_LABELS = [DUAL, "dual-pods.llm-d.ai/launcher-config-name"]
UNPROTECTED_ANNOTATIONS = [
    "dual-pods.llm-d.ai/nominal",
    "dual-pods.llm-d.ai/accelerators",
    "dual-pods.llm-d.ai/launcher-config-hash",
    "dual-pods.llm-d.ai/vllm-instance-signature",
    "example.com/anything",
]
UNPROTECTED_LABELS = [
    "dual-pods.llm-d.ai/sleeping",
    "dual-pods.llm-d.ai/instance",
    "dual-pods.llm-d.ai/launcher-stuck",
    "app",
]


def pod(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Any:
    metadata: dict[str, Any] = {"name": "p", "namespace": "team"}
    if annotations is not None:
        metadata["annotations"] = annotations
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}}


def create(obj: Any, user: str = "alice") -> Verdict:
    return validate_pod(request("Pod", obj, user=user), CONTEXT)


def update(old: Any, new: Any, user: str = "alice") -> Verdict:
    return validate_pod(request("Pod", new, operation="UPDATE", old=old, user=user), CONTEXT)


def bound_requester(mode_key: str = ISC) -> Any:
    return pod({mode_key: "tiny", ADMIN_PORT: "8081"}, {DUAL: "launcher-abc", "app": "chat"})


# --- CREATE ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", MANAGED_ANNOTATIONS)
def test_create_with_managed_annotation_is_denied(key: str) -> None:
    verdict = create(pod({key: "uid name"}))
    assert not verdict.allowed
    assert verdict.code == 403
    assert verdict.message.startswith(MESSAGE_MANAGED)
    assert f"metadata.annotations[{key}] (added)" in verdict.message
    assert "Fix: " in verdict.message


@pytest.mark.parametrize("key", MANAGED_LABELS)
def test_create_with_managed_label_is_denied(key: str) -> None:
    verdict = create(pod(labels={key: "x"}))
    assert f"metadata.labels[{key}] (added)" in verdict.message


@pytest.mark.parametrize("key", MANAGED_ANNOTATIONS + MANAGED_LABELS)
def test_controller_may_create_anything(key: str) -> None:
    assert create(pod({key: "x"}, {key: "x"}), user=CONTROLLER) == Verdict(True)


def test_empty_values_count_as_absent() -> None:
    assert create(pod({REQUESTER: ""}, {DUAL: ""})).allowed


def test_ordinary_pods_and_requesters_are_created_freely() -> None:
    assert create(pod()) == Verdict(True)
    assert create(pod({ISC: "tiny", ADMIN_PORT: "9000"}, {"app": "chat"})).allowed
    assert create(pod({PATCH: "spec: {}"})).allowed
    assert create({"metadata": {"annotations": None, "labels": "junk"}}).allowed


def test_exemption_is_exact_not_a_pattern() -> None:
    for user in (
        "system:serviceaccount:other:fma-fma-controllers",
        "system:serviceaccount:fma-system:evil-fma-controllers",
        CONTROLLER + "x",
        "",
    ):
        assert not create(pod({REQUESTER: "u n"}), user=user).allowed


# --- UPDATE: rule 1 (managed keys) -------------------------------------------------------------


@pytest.mark.parametrize("key", MANAGED_ANNOTATIONS)
@pytest.mark.parametrize(
    ("before", "after", "change"),
    [(None, "v", "added"), ("v", "w", "changed"), ("v", None, "removed"), ("v", "", "removed")],
)
def test_update_of_managed_annotation_is_denied(
    key: str, before: str | None, after: str | None, change: str
) -> None:
    old = pod({key: before} if before is not None else {})
    new = pod({key: after} if after is not None else {})
    verdict = update(old, new)
    assert not verdict.allowed
    assert verdict.message.startswith(MESSAGE_MANAGED)
    assert f"metadata.annotations[{key}] ({change})" in verdict.message
    assert update(old, new, user=CONTROLLER) == Verdict(True)


def test_removing_requester_or_dual_from_a_launcher_is_denied() -> None:
    launcher = pod(
        {REQUESTER: "uid req", "dual-pods.llm-d.ai/isc-routing-metadata": "{}"},
        {DUAL: "req", "dual-pods.llm-d.ai/launcher-config-name": "lc"},
    )
    assert not update(launcher, pod({}, launcher["metadata"]["labels"])).allowed
    assert not update(launcher, pod(launcher["metadata"]["annotations"], {})).allowed
    changed = pod({**launcher["metadata"]["annotations"], REQUESTER: "uid2 other"})
    assert not update(launcher, changed).allowed


def test_unchanged_managed_keys_and_other_keys_are_free() -> None:
    old = pod({REQUESTER: "u n"}, {DUAL: "d"})
    extra_annotations = dict.fromkeys(UNPROTECTED_ANNOTATIONS, "x")
    extra_labels = dict.fromkeys(UNPROTECTED_LABELS, "y")
    new = pod({REQUESTER: "u n", **extra_annotations}, {DUAL: "d", **extra_labels})
    assert update(old, new) == Verdict(True)


# --- UPDATE: rule 2 (bound requester) ----------------------------------------------------------


@pytest.mark.parametrize("mode_key", [ISC, PATCH])
@pytest.mark.parametrize("key", [ISC, PATCH, ADMIN_PORT])
@pytest.mark.parametrize("value", ["other", None])
def test_bound_requester_definition_is_frozen(mode_key: str, key: str, value: str | None) -> None:
    old = bound_requester(mode_key)
    annotations = dict(old["metadata"]["annotations"])
    if value is None:
        annotations.pop(key, None)
    else:
        annotations[key] = value
    new = pod(annotations, old["metadata"]["labels"])
    verdict = update(old, new)
    if annotations == old["metadata"]["annotations"]:
        assert verdict.allowed  # removing an absent key changes nothing
        return
    assert not verdict.allowed
    assert verdict.message.startswith(MESSAGE_BOUND)
    assert f"metadata.annotations[{key}]" in verdict.message
    assert update(old, new, user=CONTROLLER).allowed


def test_bound_requester_dual_label_is_reported_once_under_rule_one() -> None:
    old = bound_requester()
    verdict = update(old, pod(old["metadata"]["annotations"], {"app": "chat"}))
    assert verdict.message.startswith(MESSAGE_MANAGED)
    assert MESSAGE_BOUND not in verdict.message
    assert verdict.message.count("metadata.labels[dual-pods.llm-d.ai/dual]") == 1


def test_both_rules_are_reported_together() -> None:
    old = bound_requester()
    new = pod({ISC: "other", ADMIN_PORT: "8081"}, {"app": "chat"})
    verdict = update(old, new)
    assert MESSAGE_MANAGED in verdict.message
    assert MESSAGE_BOUND in verdict.message


def test_bound_requester_other_labels_are_free() -> None:
    old = bound_requester()
    new = pod(old["metadata"]["annotations"], {**old["metadata"]["labels"], "extra": "x"})
    assert update(old, new) == Verdict(True)


@pytest.mark.parametrize("labels", [{}, {DUAL: ""}])
def test_unbound_requester_may_change_its_mode(labels: dict[str, str]) -> None:
    old = pod({ISC: "tiny", ADMIN_PORT: "8081"}, labels)
    new = pod({PATCH: "spec: {}", ADMIN_PORT: "9000"}, labels)
    assert update(old, new) == Verdict(True)


def test_a_pod_with_only_dual_is_not_a_bound_requester() -> None:
    # A launcher carries `dual` but no mode annotation: rule 2 does not apply to its annotations.
    old = pod({ADMIN_PORT: "8081"}, {DUAL: "req"})
    assert update(old, pod({ADMIN_PORT: "9"}, {DUAL: "req"})).allowed


# --- other operations and malformed input ------------------------------------------------------


def test_delete_and_connect_are_allowed() -> None:
    for operation in ("DELETE", "CONNECT"):
        req = request("Pod", None, operation=operation, old=pod({REQUESTER: "x"}))
        assert validate_pod(req, CONTEXT) == Verdict(True)


def test_missing_object_is_a_bad_request() -> None:
    verdict = create(None)
    assert not verdict.allowed
    assert verdict.code == 400


def test_verdict_becomes_a_valid_review() -> None:
    verdict = create(pod({REQUESTER: "x"}))
    wire = verdict.to_review("uid-9").to_wire()
    assert wire["response"]["uid"] == "uid-9"
    assert wire["response"]["allowed"] is False
    assert wire["response"]["status"] == {
        "code": 403,
        "message": verdict.message,
        "reason": "Forbidden",
    }
