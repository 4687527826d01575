"""The webhook (at admission) and the controller (at bind time) decide alike on ISC routing keys.

Both call `contract.rules.routing_problems`; these tests drive each through its own entry point
(`webhook.validation.validate_custom_resource` on an AdmissionRequest, `controller.core.
decide_server` on a snapshot whose requester names the ISC) so that a second copy of the rule
creeping back into either would show. The reference's rule (contracts §3.1): keys are qualified
names and do not start with `dual-pods.llm-d.ai/`, `kubernetes.io/` or `k8s.io/`; subdomains such
as `app.kubernetes.io/` are allowed (the ecosystem's recommended labels).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import keys, rules
from controller.core import UpdateRequester, decide_server
from crds.models import InferenceServerConfig
from tests.unit.core_fixtures import ISC_NAME, snapshot
from tests.unit.validation_support import CONTEXT, isc, request
from webhook.validation import validate_custom_resource

PREFIXES = [
    "kubernetes.io",
    "k8s.io",
    "dual-pods.llm-d.ai",
    "fma.llm-d.ai",
    "app.kubernetes.io",
    "node.k8s.io",
    "x.dual-pods.llm-d.ai",
    "notkubernetes.io",
    "Kubernetes.io",
    "K8S.IO",
    "example.com",
    "llm-d.ai",
    "",
    "a..b",
    "-a",
    "a" * 254,
]
NAMES = ["name", "x", "model", "a-b_c.d", "", "-bad", "bad-", "UP", "a" * 63, "a" * 64]

_prefix = st.one_of(
    st.none(), st.sampled_from(PREFIXES), st.from_regex(r"[a-zA-Z0-9.-]{1,12}", fullmatch=True)
)
_name = st.one_of(st.sampled_from(NAMES), st.from_regex(r"[a-zA-Z0-9._%-]{0,10}", fullmatch=True))
routing_keys = st.one_of(
    st.builds(lambda prefix, name: name if prefix is None else f"{prefix}/{name}", _prefix, _name),
    st.just("a/b/c"),
)
annotation_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5)
"""Printable: the instance ID hashes routing metadata as Go YAML, which refuses control
characters before any routing rule is looked at (the keys are what this test is about)."""
label_values = st.one_of(
    st.sampled_from(["", "v", "-v", "a" * 63, "a" * 64, "a b"]),
    st.from_regex(r"[a-zA-Z0-9._ -]{0,8}", fullmatch=True),
)


def webhook_admits(labels: dict[str, str], annotations: dict[str, str]) -> bool:
    obj = isc(labels=labels, annotations=annotations)
    return validate_custom_resource(request("InferenceServerConfig", obj), CONTEXT).allowed


def controller_binds(labels: dict[str, str], annotations: dict[str, str]) -> bool:
    """False when the bind-time decision reports a routing problem on the requester."""
    model = InferenceServerConfig.model_validate(isc(labels=labels, annotations=annotations))
    actions = decide_server(snapshot(isc=model, iscs={ISC_NAME: model}))
    errors: list[str] = []
    for action in actions:
        if isinstance(action, UpdateRequester) and keys.STATUS in action.patch.annotations:
            errors += json.loads(action.patch.annotations[keys.STATUS] or "{}").get("Errors") or []
    return not any(error.startswith(("ISC label ", "ISC annotation ")) for error in errors)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.dictionaries(routing_keys, label_values, max_size=3),
    annotations=st.dictionaries(routing_keys, annotation_values, max_size=3),
)
def test_admission_and_bind_time_agree(labels: dict[str, str], annotations: dict[str, str]) -> None:
    admitted = webhook_admits(labels, annotations)
    assert controller_binds(labels, annotations) == admitted
    assert admitted == (not rules.routing_problems(labels, annotations))


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("app.kubernetes.io/name", True),  # the disagreement this rule fixed: both admit it now
        ("node.k8s.io/pool", True),
        ("example.com/model", True),
        ("kubernetes.io/hostname", False),
        ("k8s.io/x", False),
        ("dual-pods.llm-d.ai/dual", False),
        ("Kubernetes.io/x", False),
    ],
)
@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_reserved_prefixes_are_exactly_the_references(field: str, key: str, allowed: bool) -> None:
    metadata: dict[str, Any] = {"labels": {}, "annotations": {}}
    metadata[field] = {key: "v"}
    assert webhook_admits(**metadata) is allowed
    assert controller_binds(**metadata) is allowed


def test_controller_words_problems_as_the_reference() -> None:
    from controller.core._routing import RoutingMetadata, validate

    problems = validate(RoutingMetadata({"k8s.io/a": "-", "a/b/c": "v"}, {"kubernetes.io/x": ""}))
    assert problems == [
        'ISC label key "k8s.io/a" uses a reserved prefix',
        'ISC label value "-" for key "k8s.io/a" is not valid: must be empty or consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character",
        'ISC label key "a/b/c" is not a valid qualified name: a qualified name must have at '
        "most one '/'",
        'ISC annotation key "kubernetes.io/x" uses a reserved prefix',
    ]
