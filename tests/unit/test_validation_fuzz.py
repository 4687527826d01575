"""Property test: whatever arrives, both validating functions answer with a valid AdmissionReview.

More than 10,000 generated requests in total: near-valid custom resources and Pods with hostile
values in the places the checks read (so the checks themselves are exercised, not only the
parse errors), and arbitrary JSON in every slot. No exception may escape, and every verdict must
encode to a response the apiserver accepts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.validation_support import CONTEXT, CONTROLLER, SETTINGS
from webhook.admission import AdmissionRequest, AdmissionReview, parse_review
from webhook.validation import (
    ValidationContext,
    Verdict,
    validate_custom_resource,
    validate_pod,
)


def fuzz(examples: int) -> settings:
    """No deadline (timing varies across machines); big generated objects are the point."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


KINDS = ["InferenceServerConfig", "LauncherConfig", "LauncherPopulationPolicy"]
TRICKY = [
    "",
    "--port",
    "--port=8000",
    "--enable-sleep-mode",
    "'",
    '"',
    "\\",
    "a\\",
    "--x '{\"k\": 1}'",
    "k8s.io/x",
    "a.kubernetes.io/b",
    "dual-pods.llm-d.ai/requester",
    "dual-pods.llm-d.ai/dual",
    "dual-pods.llm-d.ai/inference-server-config",
    "dual-pods.llm-d.ai/server-patch",
    "dual-pods.llm-d.ai/admin-port",
    "inference-server",
    "nvidia.com/gpu",
    "/dev/shm",
    "Memory",
    "1e1.5",
    "1e99999",
    "80Gi",
    "500m",
    "-1",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "a/b/c",
    "x" * 300,
    "\x00",
    "ü",
    "launcher",
]

strings = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
    ),
    max_leaves=12,
)


# Cheap wrong-typed values for the slots of near-valid objects (deep random JSON is what
# `json_values` is for; generating it in every slot would triple the run time).
junk = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(strings, scalars, max_size=2)
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the realistic value, sometimes a value of the wrong shape."""
    return st.one_of(strategy, strategy, strategy, junk)


string_maps = maybe(st.dictionaries(strings, maybe(strings), max_size=4))
quantities = maybe(st.one_of(st.integers(-10, 10**12), strings))

model_server_configs = st.fixed_dictionaries(
    {"port": maybe(st.integers(0, 70000))},
    optional={
        "options": maybe(strings),
        "env_vars": string_maps,
        "labels": string_maps,
        "annotations": string_maps,
    },
)
isc_specs = st.fixed_dictionaries(
    {"modelServerConfig": maybe(model_server_configs), "launcherConfigName": maybe(strings)}
)

containers = st.fixed_dictionaries(
    {"name": maybe(strings)},
    optional={
        "image": maybe(strings),
        "command": maybe(st.lists(strings, max_size=3)),
        "env": maybe(st.lists(st.fixed_dictionaries({"name": maybe(strings)}), max_size=3)),
        "ports": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"containerPort": maybe(st.integers(-1, 70000))}, optional={"name": strings}
                ),
                max_size=3,
            )
        ),
        "resources": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "limits": maybe(st.dictionaries(strings, quantities, max_size=3)),
                    "requests": maybe(st.dictionaries(strings, quantities, max_size=3)),
                },
            )
        ),
        "volumeMounts": maybe(
            st.lists(
                st.fixed_dictionaries({"name": maybe(strings), "mountPath": maybe(strings)}),
                max_size=2,
            )
        ),
    },
)
volumes = st.lists(
    st.fixed_dictionaries(
        {"name": maybe(strings)},
        optional={"emptyDir": maybe(st.fixed_dictionaries({"medium": maybe(strings)}))},
    ),
    max_size=3,
)
pod_specs = st.fixed_dictionaries(
    {"containers": maybe(st.lists(containers, max_size=3))},
    optional={"initContainers": maybe(st.lists(containers, max_size=2)), "volumes": maybe(volumes)},
)
lc_specs = st.fixed_dictionaries(
    {"maxInstances": maybe(st.integers(-1, 10))},
    optional={
        "podTemplate": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "metadata": maybe(
                        st.fixed_dictionaries(
                            {}, optional={"labels": string_maps, "annotations": string_maps}
                        )
                    ),
                    "spec": maybe(pod_specs),
                },
            )
        )
    },
)
requirements = st.fixed_dictionaries(
    {"key": maybe(strings), "operator": maybe(strings)},
    optional={"values": maybe(st.lists(strings, max_size=3))},
)
lpp_specs = st.fixed_dictionaries(
    {
        "enhancedNodeSelector": maybe(
            st.fixed_dictionaries(
                {
                    "labelSelector": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "matchLabels": string_maps,
                                "matchExpressions": maybe(st.lists(requirements, max_size=3)),
                            },
                        )
                    )
                },
                optional={
                    "allocatableResources": maybe(
                        st.dictionaries(
                            strings,
                            st.fixed_dictionaries(
                                {}, optional={"min": quantities, "max": quantities}
                            ),
                            max_size=3,
                        )
                    )
                },
            )
        ),
        "countForLauncher": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "launcherConfigName": maybe(strings),
                        "launcherCount": maybe(st.integers(-5, 5)),
                    }
                ),
                max_size=3,
            )
        ),
    }
)
SPECS = {
    "InferenceServerConfig": isc_specs,
    "LauncherConfig": lc_specs,
    "LauncherPopulationPolicy": lpp_specs,
}


@st.composite
def custom_resources(draw: st.DrawFn, kind: str) -> Any:
    obj = {
        "apiVersion": draw(st.sampled_from(["fma.llm-d.ai/v1alpha1", "v1"])),
        "kind": draw(st.sampled_from([kind, *KINDS])),
        "metadata": {"name": draw(strings)},
        "spec": draw(maybe(SPECS[kind])),
    }
    return draw(st.one_of(st.just(obj), st.just(obj), json_values))


keys = st.sampled_from([t for t in TRICKY if t.startswith("dual-pods")] + ["app", "x"])
pod_metadata = st.fixed_dictionaries(
    {},
    optional={
        "annotations": maybe(st.dictionaries(keys, maybe(strings), max_size=4)),
        "labels": maybe(st.dictionaries(keys, maybe(strings), max_size=4)),
    },
)
pods = st.one_of(st.fixed_dictionaries({"metadata": maybe(pod_metadata)}), json_values)
contexts = st.sampled_from([CONTEXT, ValidationContext(settings=SETTINGS, launcher_configs=None)])


def admission_requests(kinds: st.SearchStrategy[str], objects: Any) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> AdmissionRequest:
        kind = draw(kinds)
        payload = {
            "uid": draw(st.uuids()).hex,
            "kind": {
                "group": draw(st.sampled_from(["fma.llm-d.ai", ""])),
                "version": "v",
                "kind": kind,
            },
            "resource": {"group": "", "version": "v", "resource": "r"},
            "subResource": draw(st.sampled_from(["", "", "", "status"])),
            "name": draw(strings),
            "namespace": draw(st.sampled_from(["team", "", "other"])),
            "operation": draw(st.sampled_from(["CREATE", "UPDATE", "UPDATE", "DELETE", "CONNECT"])),
            "userInfo": {"username": draw(st.sampled_from([CONTROLLER, "alice", ""]))},
            "object": draw(objects(kind)),
            "oldObject": draw(objects(kind)),
        }
        for slot in ("object", "oldObject"):
            if not isinstance(payload[slot], dict):
                payload[slot] = None
        return AdmissionRequest.model_validate(payload)

    return build()


def assert_valid(verdict: Verdict, uid: str) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.allowed or verdict.message
    wire = verdict.to_review(uid).to_wire()
    encoded = json.dumps(wire)  # must be JSON as-is
    review = AdmissionReview.model_validate_json(encoded)
    assert review.api_version == "admission.k8s.io/v1"
    assert review.kind == "AdmissionReview"
    assert review.request is None
    assert review.response is not None
    assert review.response.uid == uid
    assert review.response.allowed is verdict.allowed
    assert review.response.patch is None
    if not verdict.allowed:
        assert review.response.status is not None
        assert review.response.status.message
        assert review.response.status.code in {400, 403, 422}
    for warning in review.response.warnings or []:
        assert warning
        assert not any(unicodedata.category(c) == "Cc" for c in warning)


@fuzz(4000)
@given(
    admission_requests(st.sampled_from(KINDS), custom_resources),
    contexts,
)
def test_fuzz_custom_resources(request: AdmissionRequest, ctx: ValidationContext) -> None:
    assert_valid(validate_custom_resource(request, ctx), request.uid)


@fuzz(3000)
@given(admission_requests(st.just("Pod"), lambda kind: pods), contexts)
def test_fuzz_pods(request: AdmissionRequest, ctx: ValidationContext) -> None:
    assert_valid(validate_pod(request, ctx), request.uid)


@fuzz(2000)
@given(
    admission_requests(
        st.one_of(st.sampled_from([*KINDS, "Pod"]), strings),
        lambda kind: json_values,
    ),
    contexts,
)
def test_fuzz_anything_through_both(request: AdmissionRequest, ctx: ValidationContext) -> None:
    assert_valid(validate_custom_resource(request, ctx), request.uid)
    assert_valid(validate_pod(request, ctx), request.uid)


@fuzz(1000)
@given(st.one_of(json_values, st.dictionaries(strings, json_values)), st.binary(max_size=64))
def test_fuzz_decoding_raises_only_value_errors(payload: Any, raw: bytes) -> None:
    for candidate in (
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": payload},
        json.dumps(payload).encode(),
        raw,
        base64.b64encode(raw),
    ):
        with contextlib.suppress(ValueError):
            parse_review(candidate)
