"""charts/fma offline: lint, values schema, Kubernetes schemas, labels, images, modes, versions.

Every value set of `support.VALUE_SETS` is rendered as Kubernetes 1.20 (the local control plane),
1.29 and 1.33 would see it. Objects are checked with `kubernetes-validate --strict` against the
schemas of 1.29 and 1.33 (it ships none for 1.20; the install test proves 1.20 accepts them).
cert-manager's Issuer and Certificate are not in those schemas (they are CRDs, and no package
ships their schemas offline), so `CERT_MANAGER_SCHEMA` checks them against the cert-manager.io/v1
fields the chart uses, unknown fields refused as `--strict` would.
"""

from __future__ import annotations

from typing import Any, Final

import helm_python
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from crds.generate import stale_files
from tests.chart import support
from tests.chart.support import NAMESPACE, RELEASE, VALUE_SETS, Rendered, render

SCHEMA_VERSIONS: Final = ("1.29.0", "1.33.0")
COMPONENTS: Final = {"webhook", "controller", "certificates"}
_STRING: Final = {"type": "string", "minLength": 1}
_ISSUER_REF: Final = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": _STRING, "kind": _STRING, "group": _STRING},
}
_KEY: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
        "size": {"type": "integer"},
        "rotationPolicy": {"enum": ["Never", "Always"]},
    },
}
_USAGES: Final = ["server auth", "client auth", "digital signature", "key encipherment"]
_METADATA: Final = {"type": "object", "required": ["name", "namespace", "labels"]}
CERT_MANAGER_SCHEMA: Final[dict[str, Any]] = {
    "Issuer": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Issuer"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "selfSigned": {"type": "object", "maxProperties": 0},
                    "ca": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["secretName"],
                        "properties": {"secretName": _STRING},
                    },
                },
            },
        },
    },
    "Certificate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Certificate"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["secretName", "issuerRef"],
                "properties": {
                    "secretName": _STRING,
                    "issuerRef": _ISSUER_REF,
                    "commonName": _STRING,
                    "dnsNames": {"type": "array", "items": _STRING, "minItems": 1},
                    "uris": {"type": "array", "items": _STRING, "minItems": 1},
                    "isCA": {"type": "boolean"},
                    "duration": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                    "renewBefore": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                    "usages": {"type": "array", "items": {"enum": _USAGES}},
                    "privateKey": _KEY,
                },
            },
        },
    },
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_chart_crds_are_the_generated_crds() -> None:
    crd_dir = support.CHART_DIR / "crds"
    assert stale_files(crd_dir) == [], "run: fma-gen-crds --out-dir charts/fma/crds"
    generated = {p.name for p in (support.REPO / "crds").glob("*.yaml")}
    assert {p.name for p in crd_dir.iterdir()} == generated
    assert {c["metadata"]["name"] for c in support.chart_crds()} == {
        name.removesuffix(".yaml") for name in generated
    }


@pytest.mark.parametrize("kube_version", support.KUBE_VERSIONS)
def test_lint_strict_passes(value_set: str, kube_version: str) -> None:
    report = support.lint(VALUE_SETS[value_set], kube_version=kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": 2}, "additional properties 'replicas'"),
        ({"webhook": {"replicas": "2"}}, "/webhook/replicas"),
        ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
        ({"webhook": {"podAntiAffinity": "sometimes"}}, "/webhook/podAntiAffinity"),
        ({"controller": {"leaderElection": {"enabled": "yes"}}}, "/controller/leaderElection"),
        ({"certificates": {"mode": "vault"}}, "/certificates/mode"),
        ({"certificates": {"certManager": {"issuerRef": {"kind": "Issuer"}}}}, "'name'"),
        ({"certificates": {"selfManaged": {"renewBefore": "a month"}}}, "renewBefore"),
        ({"servedNamespace": "Not_A_Namespace"}, "/servedNamespace"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
    ],
)
def test_values_schema_refuses(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=complaint):
        support.validate_values(values)


def test_every_value_in_values_yaml_is_in_the_schema() -> None:
    """The defaults pass the schema, and the schema refuses keys it does not describe."""
    support.validate_values({})
    with helm_python.Chart.load(support.CHART_DIR) as chart:
        schema = chart.schema
        defaults = chart.values
    assert schema is not None

    def walk(node: dict[str, Any], values: dict[str, Any], path: str) -> None:
        assert node.get("additionalProperties") is False, f"{path or '/'} accepts unknown keys"
        for key, value in values.items():
            assert key in node["properties"], f"{path}/{key} is not in values.schema.json"
            child = node["properties"][key]
            if isinstance(value, dict) and child.get("additionalProperties") is False:
                walk(child, value, f"{path}/{key}")

    walk(schema, defaults, "")


@pytest.mark.parametrize("kube_version", [f"v{v}" for v in SCHEMA_VERSIONS])
def test_every_object_passes_kubernetes_validate_strict(value_set: str, kube_version: str) -> None:
    rendered = render(VALUE_SETS[value_set], kube_version=kube_version)
    for obj in [*rendered.objects, *support.chart_crds()]:
        where = f"{obj['kind']}/{obj['metadata']['name']} ({value_set}, {kube_version})"
        if obj["apiVersion"].startswith("cert-manager.io/"):
            jsonschema.validate(obj, CERT_MANAGER_SCHEMA[obj["kind"]])
            continue
        try:
            kubernetes_validate.validate(obj, kube_version.lstrip("v"), strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")


@pytest.mark.parametrize("kube_version", support.KUBE_VERSIONS)
def test_every_object_carries_the_standard_labels(value_set: str, kube_version: str) -> None:
    rendered = render(VALUE_SETS[value_set], kube_version=kube_version)
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "fma"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/component"] in COMPONENTS
        assert labels["app.kubernetes.io/part-of"] == "fma"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        for key, value in VALUE_SETS[value_set].get("commonLabels", {}).items():
            assert labels[key] == value
        spec = support.pod_spec(obj)
        if spec is not None and obj["kind"] == "Deployment":
            template = obj["spec"]["template"]["metadata"]["labels"]
            assert obj["spec"]["selector"]["matchLabels"].items() <= template.items()


def _kinds_and_versions(rendered: Rendered) -> dict[str, str]:
    return {o["kind"]: o["apiVersion"] for o in rendered.objects}


def _pod_guard(rendered: Rendered) -> dict[str, Any]:
    validating = rendered.get("ValidatingWebhookConfiguration", "fma-webhook")
    guards: list[dict[str, Any]] = [
        w for w in validating["webhooks"] if w["name"] == "pods.fma.llm-d.ai"
    ]
    assert len(guards) == 1
    return guards[0]


def _name_expressions(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        expression
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        for webhook in rendered.get(kind, "fma-webhook")["webhooks"]
        for expression in (webhook.get("namespaceSelector") or {}).get("matchExpressions", [])
        if expression["key"] == "kubernetes.io/metadata.name"
    ]


@pytest.mark.parametrize(
    ("kube_version", "policy", "cron", "by_name", "match_conditions"),
    [
        ("v1.20.2", "policy/v1beta1", "batch/v1beta1", False, False),
        ("v1.21.0", "policy/v1", "batch/v1", True, False),
        ("v1.27.3", "policy/v1", "batch/v1", True, False),
        ("v1.28.0", "policy/v1", "batch/v1", True, True),
        ("v1.33.0", "policy/v1", "batch/v1", True, True),
    ],
)
def test_newer_features_only_where_the_version_has_them(
    kube_version: str, policy: str, cron: str, by_name: bool, match_conditions: bool
) -> None:
    rendered = render(VALUE_SETS["self-managed"], kube_version=kube_version)
    versions = _kinds_and_versions(rendered)
    assert versions["PodDisruptionBudget"] == policy
    assert versions["CronJob"] == cron
    # five Pod webhooks (two mutating, three guarding); the CR guard has no namespace selector
    assert len(_name_expressions(rendered)) == (5 if by_name else 0)
    assert ("matchConditions" in _pod_guard(rendered)) is match_conditions
    assert ("fma.llm-d.ai/webhook-namespace=true" in rendered.notes) is not by_name


@pytest.mark.parametrize(
    ("value_set", "image", "requester"),
    [
        ("defaults", "ghcr.io/llm-d/fma:0.1.0", "ghcr.io/llm-d/fma:0.1.0"),
        (
            "custom-image",
            "registry.example.com/ml/fma:1.2.3",
            "registry.example.com/ml/fma-stub:1.2.3",
        ),
        ("image-digest", f"ghcr.io/llm-d/fma@sha256:{'ab' * 32}", None),
    ],
)
def test_one_image_from_values(value_set: str, image: str, requester: str | None) -> None:
    values = VALUE_SETS[value_set]
    for mode in ("cert-manager", "self-managed"):
        rendered = render({**values, "certificates": {"mode": mode}})
        workloads = [o for o in rendered.objects if support.pod_spec(o) is not None]
        assert workloads
        for obj in workloads:
            spec = support.pod_spec(obj)
            assert spec is not None
            assert spec.get("imagePullSecrets", []) == values.get("imagePullSecrets", [])
            for c in support.containers(obj):
                assert c["image"] == image
                assert c["imagePullPolicy"] == values.get("image", {}).get(
                    "pullPolicy", "IfNotPresent"
                )
    webhook = support.container(render(values).get("Deployment", "fma-webhook"), "webhook")
    assert f"--requester-image={requester or image}" in webhook["args"]


def test_served_namespace_holds_the_controllers_role() -> None:
    rendered = render(VALUE_SETS["served-namespace"])
    for kind in ("Role", "RoleBinding"):
        assert rendered.get(kind, "fma-controller")["metadata"]["namespace"] == "llm"
    args = support.container(rendered.get("Deployment", "fma-controller"), "controller")["args"]
    assert args[:4] == [
        "--namespace=llm",
        "--sleeper-limit=3",
        "--num-workers=4",
        "--no-memory-check",
    ]
    assert "kubectl label namespace llm fma.llm-d.ai/inject=enabled" in rendered.notes
    with pytest.raises(helm_python.HelmRenderError, match="is the release namespace"):
        render({"servedNamespace": NAMESPACE})


def test_two_controllers_without_a_lease_are_refused() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"needs controller\.leaderElection"):
        render({"controller": {"leaderElection": {"enabled": False}}})


def test_namespaced_objects_stay_in_their_namespaces(value_set: str) -> None:
    rendered = render(VALUE_SETS[value_set])
    served = VALUE_SETS[value_set].get("servedNamespace", "default")
    for obj in rendered.objects:
        namespace = obj["metadata"].get("namespace")
        in_served = obj["kind"] == "NetworkPolicy" or (  # NetworkPolicies select Pods there
            obj["kind"] in ("Role", "RoleBinding") and obj["metadata"]["name"] == "fma-controller"
        )
        if in_served:
            assert namespace == served
        elif obj["kind"].startswith("Cluster") or obj["kind"].endswith("Configuration"):
            assert namespace is None
        else:
            assert namespace == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_webhook_and_controller_are_highly_available() -> None:
    rendered = render()
    for name, component in (("fma-webhook", "webhook"), ("fma-controller", "controller")):
        deployment = rendered.get("Deployment", name)
        selector = deployment["spec"]["selector"]
        assert selector["matchLabels"]["app.kubernetes.io/component"] == component
        assert deployment["spec"]["replicas"] == 2
        spec = deployment["spec"]["template"]["spec"]
        anti = spec["affinity"]["podAntiAffinity"]
        [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["labelSelector"] == selector
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        pdb = rendered.get("PodDisruptionBudget", name)["spec"]
        assert pdb == {"minAvailable": 1, "selector": selector}
        [c] = spec["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    controller = support.container(rendered.get("Deployment", "fma-controller"), "controller")
    assert "--leader-elect" in controller["args"]


def test_single_replica_value_set_turns_off_what_it_says() -> None:
    rendered = render(VALUE_SETS["single-replica"])
    assert rendered.names("PodDisruptionBudget") == {"fma-controller"}
    webhook = rendered.get("Deployment", "fma-webhook")["spec"]["template"]["spec"]
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution" in webhook["affinity"]["podAntiAffinity"]
    )
    controller = support.container(rendered.get("Deployment", "fma-controller"), "controller")
    assert "--no-leader-elect" in controller["args"]
