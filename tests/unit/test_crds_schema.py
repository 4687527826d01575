"""The generated CRDs: names per contracts §3, structural schemas a v1.20 apiserver accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from crds.definitions import DEFINITIONS, CrdDefinition
from crds.schema import SchemaError, structural

Schema = dict[str, Any]

# Keys a v1.20 apiserver allows on the root schema (apiextensions validation).
ROOT_KEYS = {"description", "type", "properties", "required"}
NOT_STRUCTURAL = {"$ref", "$defs", "title", "default", "nullable", "allOf", "oneOf", "not"}
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def committed(definition: CrdDefinition) -> Schema:
    """The CRD as committed, which the staleness test ties to the models."""
    document: Schema = yaml.safe_load(definition.path.read_text(encoding="utf-8"))
    return document


def openapi(definition: CrdDefinition) -> Schema:
    schema: Schema = committed(definition)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Yield (path, schema) for every schema node."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def at(definition: CrdDefinition, path: str) -> Schema:
    return dict(walk(openapi(definition)))[path]


def definition(kind: str) -> CrdDefinition:
    return next(d for d in DEFINITIONS if d.kind == kind)


@pytest.mark.parametrize(
    ("kind", "plural", "singular", "short"),
    [
        ("InferenceServerConfig", "inferenceserverconfigs", "inferenceserverconfig", "isc"),
        ("LauncherConfig", "launcherconfigs", "launcherconfig", "lcfg"),
        (
            "LauncherPopulationPolicy",
            "launcherpopulationpolicies",
            "launcherpopulationpolicy",
            "lpp",
        ),
    ],
)
def test_names_scope_and_version(kind: str, plural: str, singular: str, short: str) -> None:
    crd = committed(definition(kind))
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.fma.llm-d.ai"
    spec = crd["spec"]
    assert spec["group"] == "fma.llm-d.ai"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (kind, plural, singular)
    assert names["shortNames"] == [short]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("crd", DEFINITIONS, ids=lambda d: d.kind)
def test_schema_is_structural(crd: CrdDefinition) -> None:
    root = openapi(crd)
    assert set(root) <= ROOT_KEYS
    assert root["type"] == "object"
    assert root["properties"]["metadata"] == {"type": "object"}
    for path, node in walk(root):
        where = path or "<root>"
        assert not NOT_STRUCTURAL & set(node), where
        assert not any(key.startswith("x-kubernetes-validations") for key in node), where
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, where
            assert node.get("anyOf") == INT_OR_STRING, where
            continue
        assert "anyOf" not in node, where
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, where
        if node["type"] == "array":
            assert "items" in node, where
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], dict), where
            assert "properties" not in node, where
        assert node.get("x-kubernetes-preserve-unknown-fields", True) is True, where
        assert set(node.get("required", [])) <= set(node.get("properties", {})), where
        if "x-kubernetes-map-type" in node:
            assert node["type"] == "object", where
        if "pattern" in node:
            re.compile(node["pattern"])


@pytest.mark.parametrize("crd", DEFINITIONS, ids=lambda d: d.kind)
def test_every_field_is_described(crd: CrdDefinition) -> None:
    for path, node in walk(openapi(crd)):
        if path != ".metadata" and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{crd.kind}{path} has no description"


def test_inference_server_config_fields() -> None:
    isc = definition("InferenceServerConfig")
    root = openapi(isc)
    assert root["required"] == ["spec"]
    spec = at(isc, ".spec")
    assert set(spec["required"]) == {"modelServerConfig", "launcherConfigName"}
    assert set(at(isc, ".spec.launcherConfigName")) == {"type", "description"}  # no minLength
    config = at(isc, ".spec.modelServerConfig")
    assert set(config["properties"]) == {"port", "options", "env_vars", "labels", "annotations"}
    assert config["required"] == ["port"]
    port = at(isc, ".spec.modelServerConfig.port")
    assert (port["type"], port["format"], port["minimum"], port["maximum"]) == (
        "integer",
        "int32",
        1,
        65535,
    )
    for name in ("env_vars", "labels", "annotations"):
        assert at(isc, f".spec.modelServerConfig.{name}")["additionalProperties"] == {
            "type": "string"
        }


def test_launcher_config_fields() -> None:
    lc = definition("LauncherConfig")
    assert openapi(lc)["required"] == ["spec"]
    assert at(lc, ".spec")["required"] == ["maxInstances"]
    max_instances = at(lc, ".spec.maxInstances")
    assert (max_instances["format"], max_instances["minimum"]) == ("int32", 1)
    assert "maximum" not in max_instances
    assert "required" not in at(lc, ".spec.podTemplate")
    assert set(at(lc, ".spec.podTemplate.metadata")["properties"]) == {"labels", "annotations"}
    pod_spec = at(lc, ".spec.podTemplate.spec")
    assert pod_spec["x-kubernetes-preserve-unknown-fields"] is True
    assert pod_spec["required"] == ["containers"]
    container = at(lc, ".spec.podTemplate.spec.containers[]")
    assert container["x-kubernetes-preserve-unknown-fields"] is True
    assert container["required"] == ["name"]


def test_launcher_population_policy_fields() -> None:
    lpp = definition("LauncherPopulationPolicy")
    assert "required" not in openapi(lpp)
    assert set(at(lpp, ".spec")["required"]) == {"enhancedNodeSelector", "countForLauncher"}
    assert at(lpp, ".spec.enhancedNodeSelector")["required"] == ["labelSelector"]

    selector = at(lpp, ".spec.enhancedNodeSelector.labelSelector")
    assert selector["x-kubernetes-map-type"] == "atomic"
    assert set(selector["properties"]) == {"matchLabels", "matchExpressions"}
    requirement = at(lpp, ".spec.enhancedNodeSelector.labelSelector.matchExpressions[]")
    assert requirement["required"] == ["key", "operator"]

    bounds = at(lpp, ".spec.enhancedNodeSelector.allocatableResources{}")
    assert set(bounds["properties"]) == {"min", "max"}
    assert "required" not in bounds
    for bound in bounds["properties"].values():
        assert bound["x-kubernetes-int-or-string"] is True
        assert bound["anyOf"] == INT_OR_STRING

    counts = at(lpp, ".spec.countForLauncher")
    assert counts["x-kubernetes-list-type"] == "map"
    assert counts["x-kubernetes-list-map-keys"] == ["launcherConfigName"]
    entry = at(lpp, ".spec.countForLauncher[]")
    assert entry["type"] == "object"
    assert set(entry["required"]) == {"launcherConfigName", "launcherCount"}
    count = at(lpp, ".spec.countForLauncher[].launcherCount")
    assert (count["type"], count["format"]) == ("integer", "int32")
    assert "minimum" not in count


@pytest.mark.parametrize("crd", DEFINITIONS, ids=lambda d: d.kind)
def test_common_status(crd: CrdDefinition) -> None:
    status = at(crd, ".status")
    assert set(status["properties"]) == {"observedGeneration", "errors"}
    assert "required" not in status
    assert at(crd, ".status.observedGeneration")["format"] == "int64"
    assert at(crd, ".status.errors")["items"] == {"type": "string"}


@pytest.mark.parametrize("crd", DEFINITIONS, ids=lambda d: d.kind)
def test_printer_columns(crd: CrdDefinition) -> None:
    [version] = committed(crd)["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    assert columns[-1] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since creation.",
    }
    for column in columns:
        assert column["jsonPath"].startswith(".")
        assert column["type"] in {"integer", "number", "string", "boolean", "date"}


@pytest.mark.parametrize("crd", DEFINITIONS, ids=lambda d: d.kind)
def test_kubernetes_client_knows_every_key(crd: CrdDefinition) -> None:
    """Round-trip through the official client's CRD model: a misspelt key would be dropped."""
    from kubernetes.client import ApiClient, V1CustomResourceDefinition

    if not hasattr(V1CustomResourceDefinition, "from_dict"):
        pytest.skip("this kubernetes client has no from_dict")
    manifest = committed(crd)
    parsed = V1CustomResourceDefinition.from_dict(manifest)
    assert ApiClient().sanitize_for_serialization(parsed) == manifest


# --- the converter on its own ------------------------------------------------------------------


class _Inner(BaseModel):
    """Inner docstring."""

    model_config = ConfigDict(extra="allow")

    a: int


class _Outer(BaseModel):
    inner: _Inner = Field(description="Field description.")
    maybe: _Inner | None = None


def test_converter_inlines_refs_and_drops_null_branches() -> None:
    schema = structural(_Outer.model_json_schema())
    assert schema["required"] == ["inner"]
    inner = schema["properties"]["inner"]
    assert inner["description"] == "Field description."
    assert inner["x-kubernetes-preserve-unknown-fields"] is True
    assert inner["properties"] == {"a": {"type": "integer"}}
    maybe = schema["properties"]["maybe"]
    assert maybe["description"] == "Inner docstring."
    assert maybe["type"] == "object"


class _Defaulted(BaseModel):
    n: int = 3


class _Union(BaseModel):
    v: int | str


class _Exclusive(BaseModel):
    v: int = Field(gt=0)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Defaulted, "no defaults"),
        (_Union, "unions"),
        (_Exclusive, "exclusiveMinimum"),
    ],
)
def test_converter_refuses_what_is_not_structural(model: type[BaseModel], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        structural(model.model_json_schema())


def test_converter_reflows_docstring_lines() -> None:
    class Doc(BaseModel):
        """First line
        continues here.

        Second paragraph."""

    assert structural(Doc.model_json_schema())["description"] == (
        "First line continues here.\n\nSecond paragraph."
    )
